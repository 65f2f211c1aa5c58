#!/usr/bin/env bash
# What access control costs per request: the same keep-alive load (wrk, $CONNS connections)
# on a plain route and on a protected one (a 50-entry allow list with the client's block last,
# and basic authentication against a bcrypt htpasswd entry, `htpasswd -B`: its default cost, 5), for
# ringress (io_uring and epoll), nginx (`allow` x50 + `auth_basic_user_file`) and HAProxy
# (`acl src` + `http_auth` against a userlist) in one run.
#
# Each proxy runs one worker pinned to CPU $PROXY_CPU; wrk and the upstream (nginx, `return
# 200`) share CPU $LOAD_CPU. The figure is proxy CPU time per request (utime+stime from
# /proc/PID/stat over the run, divided by requests), plain and protected taking turns on the
# same proxy process; each cell is the median of $RUNS runs, and the ratio protected/plain is
# what the target (ringress at most 1.15x) is about. nginx and HAProxy run crypt(3) on every
# request; ringress remembers a worker's recent verdicts (README, Basic authentication).
#
# Usage: bench/access_cost.sh   (env: RUNS=5 DURATION=5 CONNS=64 PROXY_CPU=0 LOAD_CPU=1 PROXIES=...)
# Writes bench/results/access-cost-<date>.md and raw/<date>/*.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_UP=18090 PORT_PROXY=18091
ulimit -n 65536 2>/dev/null || true

. bench/support/need.sh
. bench/support/loopback.sh
need wrk nginx:nginx-light haproxy taskset:util-linux htpasswd:apache2-utils
cargo build --release --quiet
BIN=$PWD/target/release/ringress

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
work=$(mktemp -d /tmp/ringress-access-cost.XXXXXX)
raw=bench/results/raw/access-cost-$stamp
mkdir -p "$raw"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT INT TERM

start_upstream $PORT_UP ok

# 49 blocks that do not hold the client, then loopback: every request walks the whole list.
blocks=()
for i in $(seq 1 49); do blocks+=("10.$i.0.0/16"); done
blocks+=("127.0.0.0/8")
htpasswd -cbB "$work/htpasswd" bench 'bench-secret' 2>/dev/null
auth="Authorization: Basic $(printf 'bench:bench-secret' | base64)"

# --- nginx: one server per host ---
{
  echo "daemon off; master_process off; worker_processes 1; error_log $work/nginx-error.log; pid $work/nginx.pid;"
  echo "events { worker_connections 8192; }"
  echo "http { access_log off; keepalive_requests 1000000; upstream up { server 127.0.0.1:$PORT_UP; keepalive 128; }"
  for host in plain protected; do
    echo "  server { listen 127.0.0.1:$PORT_PROXY; server_name $host.bench; location / {"
    if [ $host = protected ]; then
      for b in "${blocks[@]}"; do echo "    allow $b;"; done
      echo "    deny all; auth_basic \"bench\"; auth_basic_user_file $work/htpasswd;"
    fi
    echo "    proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host;"
    echo "    proxy_set_header X-Real-IP \$remote_addr; proxy_set_header X-Forwarded-For \$remote_addr; } }"
  done
  echo "}"
} > "$work/nginx.conf"

# --- HAProxy: one frontend, the protection by Host ---
cat > "$work/haproxy.cfg" <<EOC
global
  nbthread 1
  maxconn 8000
userlist users
  user bench password $(cut -d: -f2- "$work/htpasswd")
defaults
$(haproxy_defaults)
frontend fe
  bind 127.0.0.1:$PORT_PROXY
  acl protected hdr(host) -i protected.bench
  acl allowed src ${blocks[*]}
  http-request deny if protected !allowed
  http-request auth realm bench if protected !{ http_auth(users) }
  default_backend be
backend be
  server up 127.0.0.1:$PORT_UP
EOC

# --- ringress: two Ingresses, one protected ---
route() { # name, annotations
  printf -- '---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: %s\n  namespace: default\n  annotations: {%s}\nspec:\n  ingressClassName: ringress\n  rules:\n  - host: %s.bench\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}\n' "$1" "$2" "$1"
}
{
  route plain ""
  list=$(IFS=,; echo "${blocks[*]}")
  route protected "nginx.ingress.kubernetes.io/whitelist-source-range: \"$list\", nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-secret: users"
  printf -- '---\napiVersion: v1\nkind: Secret\nmetadata: {name: users, namespace: default}\ntype: Opaque\ndata:\n  auth: %s\n' "$(base64 -w0 "$work/htpasswd")"
  printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: up, namespace: default}\nspec: {ports: [{name: http, port: 80, targetPort: %s}]}\n' $PORT_UP
  printf -- '---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: up-1, namespace: default, labels: {kubernetes.io/service-name: up}}\naddressType: IPv4\nendpoints: [{addresses: ["127.0.0.1"]}]\nports: [{name: http, port: %s}]\n' $PORT_UP
  printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: ringress, namespace: ringress}\ndata:\n  keep-alive-requests: "1000000"\n'
} > "$work/manifests.yaml"

start_proxy() { # name -> sets PROXY_PID
  case $1 in
    nginx) taskset -c "$PROXY_CPU" nginx -c "$work/nginx.conf" -p "$work" & PROXY_PID=$! ;;
    haproxy) taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db & PROXY_PID=$! ;;
    ringress-*) taskset -c "$PROXY_CPU" "$BIN" run --manifests "$work/manifests.yaml" --http 127.0.0.1:$PORT_PROXY \
        --https 127.0.0.1:0 --admin 127.0.0.1:0 --workers 1 --io "${1#*-}" 2>"$work/$1.log" & PROXY_PID=$! ;;
  esac
  pids+=("$PROXY_PID")
  for _ in $(seq 50); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" -H 'Host: protected.bench' "http://127.0.0.1:$PORT_PROXY/")" = 200 ] && return 0
    sleep 0.1
  done
  echo "$1 did not come up (or does not admit the bench user)" >&2; return 1
}

measure() { # proxy host run -> "rps cpu_us_per_req non2xx"
  local t0 t1 out reqs hz; hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks "$PROXY_PID")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s -H "Host: $2.bench" -H "$auth" "http://127.0.0.1:$PORT_PROXY/")
  t1=$(cpu_ticks "$PROXY_PID")
  echo "$out" > "$raw/$1-$2-$3.txt"
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local errs; errs=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); errs=${errs:-0}
  echo "$out" | awk -v reqs="$reqs" -v dt=$((t1 - t0)) -v hz="$hz" -v e="$errs" \
    '/Requests\/sec/ {rps=$2} END {printf "%s %.3f %s\n", rps, (reqs > 0 ? dt*1e6/hz/reqs : 0), e}'
}

read -r -a proxies <<< "${PROXIES:-ringress-uring ringress-epoll nginx haproxy}"
echo "runs=$RUNS duration=${DURATION}s conns=$CONNS proxy_cpu=$PROXY_CPU load_cpu=$LOAD_CPU" | tee "$raw/setup.txt"
for run in $(seq "$RUNS"); do
  for p in "${proxies[@]}"; do
    start_proxy "$p"
    for host in plain protected; do
      taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -H "Host: $host.bench" -H "$auth" "http://127.0.0.1:$PORT_PROXY/" >/dev/null
      echo "$run $p $host $(measure "$p" "$host" "$run")" | tee -a "$raw/results.txt"
    done
    kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; sleep 0.3
  done
done

out=bench/results/access-cost-$stamp.md
python3 - "$raw/results.txt" "$out" "$RUNS" "$DURATION" "$CONNS" <<'EOP'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
cells = {}
for run, proxy, host, rps, cpu, errs in rows:
    cells.setdefault((proxy, host), []).append((float(rps), float(cpu), int(errs)))
proxies = list(dict.fromkeys(r[1] for r in rows))
med = lambda v: statistics.median(v)
with open(sys.argv[2], "w") as f:
    f.write(f"# Access-control cost: a 50-entry allow list and basic auth (bcrypt) vs a plain route\n\n")
    f.write(f"Keep-alive, {sys.argv[5]} connections, {sys.argv[4]} s per run, median of {sys.argv[3]} runs; "
            "one proxy worker on its own CPU. CPU is the proxy's CPU time per request.\n\n")
    f.write("| proxy | plain req/s | protected req/s | plain CPU µs/req | protected CPU µs/req | protected/plain CPU | non-2xx |\n")
    f.write("|---|---|---|---|---|---|---|\n")
    for p in proxies:
        a, b = cells[(p, "plain")], cells[(p, "protected")]
        ca, cb = med([x[1] for x in a]), med([x[1] for x in b])
        errs = sum(x[2] for x in a + b)
        f.write(f"| {p} | {med([x[0] for x in a]):,.0f} | {med([x[0] for x in b]):,.0f} | {ca:.2f} | {cb:.2f} | {cb/ca:.2f}x | {errs} |\n")
print(open(sys.argv[2]).read())
EOP
