#!/usr/bin/env bash
# ringress vs nginx vs HAProxy as reverse proxies in front of the same upstream, in one run.
#
# Each proxy runs one worker pinned to CPU $PROXY_CPU; wrk and the upstream (nginx, `return
# 200`) share CPU $LOAD_CPU. For HTTP/1.1 keep-alive (64 connections) and a new connection per
# request, it records requests/s, p50/p99 latency and proxy CPU time per request (utime+stime
# from /proc/PID/stat over the run, divided by requests). ringress runs with io_uring and with
# epoll. Each cell is the median of $RUNS runs; CPU/request is also given as a ratio to the
# better of nginx and HAProxy in the same run, which is the only figure that means anything
# on a shared, noisy machine.
#
# TLS and HTTP/2 modes (MODES="h2c h2 https tls-full tls-resume tls12-resume", or MODES=all):
# h2load with 16 connections x 16 streams over h2c and over TLS (ALPN h2); wrk over HTTPS/1.1
# keep-alive; full TLS 1.3 handshakes (4 x openssl s_time -new, handshake only); a new TLS 1.3
# connection per request (wrk, Connection: close: wrk keeps its session, so these are
# ticket resumptions with a fresh X25519 exchange); resumed TLS 1.2 handshakes (4 x openssl
# s_time -reuse). Every proxy serves the same ECDSA P-256 certificate, made here with
# openssl, with TLS 1.2 and 1.3 enabled (nginx 1.22 would otherwise stop at TLS 1.2, whose
# resumption skips the key exchange: not a like-for-like comparison).
#
# Access log (MODES="keepalive keepalive-log"): the keep-alive run again with every proxy
# writing an access log to a file: nginx with ingress-nginx's upstreaminfo format, buffered
# (buffer=64k flush=1s, its cheapest setting); HAProxy `option httplog` to stdout, redirected
# to a file; ringress its default line, rotated at 100 MiB. The report adds ringress's CPU per
# request with the log over without, in the same run.
#
# Compression (MODES="gzip gzip-off"): a 64 KiB HTML page from the upstream, with
# Accept-Encoding: gzip (every proxy at gzip level 1, ingress-nginx's default: nginx's gzip
# module, HAProxy's libslz, ringress's use-gzip) and without (the same page relayed as it is).
#
# SSL passthrough (MODES="passthrough passthrough-close", ringress and HAProxy): TLS to the
# HTTPS port, SNI `localhost`, relayed untouched to a TLS backend (the upstream nginx's TLS
# port, on the load CPU): ringress with --enable-ssl-passthrough and an ssl-passthrough
# Ingress, HAProxy `mode tcp` choosing its backend by `req.ssl_sni` after `req.ssl_hello_type 1`.
# Keep-alive (64 connections) and a new TLS connection per request (SNI read every time).
#
# Per-route features (MODES="keepalive route-canary route-affinity route-limit", ringress
# only): the keep-alive run against a route with a canary taking 20% by weight, with cookie
# affinity (every request carries its session cookie, as a returning browser does), and with
# limit-rps and limit-connections set too high to trip. The report gives each one's CPU per
# request over the plain route's, same proxy, same run (target: <= 1.10x).
#
# Usage: bench/compare.sh            (env: RUNS=5 DURATION=8 CONNS=64 PROXY_CPU=0 LOAD_CPU=1 MODES=...
#                                     PROXIES=... GZIP_LEVEL=1 (the gzip modes) PERF=1 records a call-graph profile of ringress
#                                     per mode into raw/<date>/*.perf.data;
#                                     BASELINE=path/to/older/ringress adds "baseline-uring" (and
#                                     baseline-epoll with PROXIES) taking turns with the others:
#                                     a regression check in the same run)
# Writes bench/results/compare-<date>.md, .svg and raw/<date>/*.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_UP=18080 PORT_PROXY=18081 PORT_H2C=18082 PORT_TLS=18443 PORT_UP_TLS=18444
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true

. bench/support/need.sh
. bench/support/loopback.sh
need wrk nginx:nginx-light haproxy taskset:util-linux h2load:nghttp2-client openssl
cargo build --release --quiet
BIN=$PWD/target/release/ringress

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
work=$(mktemp -d /tmp/ringress-bench.XXXXXX)
raw=bench/results/raw/$stamp
mkdir -p "$raw"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT INT TERM

body=$(head -c 64 /dev/zero | tr '\0' 'x')
# --- one certificate for every proxy (and the passthrough backend) ---
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=bench.local \
  -addext subjectAltName=DNS:bench.local -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
cat "$work/cert.pem" "$work/key.pem" > "$work/bundle.pem"

# --- the upstream: nginx, one worker, on the load CPU ---
start_upstream $PORT_UP "$body" $PORT_UP_TLS "$work/cert.pem" "$work/key.pem"

# --- the proxies ---
cat > "$work/location.conf" <<EOC
location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
  proxy_set_header Host \$host; proxy_set_header X-Real-IP \$remote_addr;
  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme; }
EOC
nginx_conf() { # access_log directive
cat <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/nginx-error.log; pid $work/nginx.pid;
events { worker_connections 8192; }
http { $1 keepalive_requests 1000000;
  gzip on; gzip_comp_level ${GZIP_LEVEL:-1}; gzip_http_version 1.1; gzip_min_length 256; gzip_proxied any; gzip_vary on;
  gzip_types application/atom+xml application/javascript application/json application/xml text/css text/plain;
  upstream up { server 127.0.0.1:$PORT_UP; keepalive 128; }
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m; ssl_session_tickets on;
  server { listen 127.0.0.1:$PORT_PROXY backlog=4096 deferred; include $work/location.conf; }
  server { listen 127.0.0.1:$PORT_H2C http2 backlog=4096; include $work/location.conf; }
  server { listen 127.0.0.1:$PORT_TLS ssl http2 backlog=4096 deferred;
    ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem; include $work/location.conf; } }
EOC
}
nginx_conf "access_log off;" > "$work/nginx.conf"
nginx_conf "log_format upstreaminfo '\$remote_addr - \$remote_user [\$time_local] \"\$request\" \$status \$body_bytes_sent \"\$http_referer\" \"\$http_user_agent\" \$request_length \$request_time [\$proxy_host] \$upstream_addr \$upstream_response_length \$upstream_response_time \$upstream_status \$request_id'; access_log $work/nginx-access.log upstreaminfo buffer=64k flush=1s;" > "$work/nginx-log.conf"
haproxy_conf() { # extra global lines, extra defaults lines
cat <<EOC
global
  nbthread 1
  maxconn 8000
$1
defaults
$2
$(haproxy_defaults)
frontend fe
  bind 127.0.0.1:$PORT_PROXY defer-accept
  bind 127.0.0.1:$PORT_H2C proto h2
  bind 127.0.0.1:$PORT_TLS ssl crt $work/bundle.pem alpn h2,http/1.1 defer-accept
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http unless { ssl_fc }
  http-request set-header X-Real-IP %[src]
  default_backend be
backend be
  compression algo gzip
  compression type text/html text/plain
  server up 127.0.0.1:$PORT_UP
EOC
}
haproxy_conf "" "" > "$work/haproxy.cfg"
cat > "$work/haproxy-pass.cfg" <<EOC
global
  nbthread 1
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:$PORT_PROXY
  mode http
  default_backend be
frontend tls
  bind 127.0.0.1:$PORT_TLS
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend pass if { req.ssl_sni -i localhost }
backend be
  mode http
  server up 127.0.0.1:$PORT_UP
backend pass
  server up 127.0.0.1:$PORT_UP_TLS
EOC
haproxy_conf "  log stdout format raw local0" "  log global
  option httplog" > "$work/haproxy-log.cfg"
secret() {
  echo "---"; echo "apiVersion: v1"; echo "kind: Secret"; echo "metadata: {name: bench-tls, namespace: default}"
  echo "type: kubernetes.io/tls"; echo "stringData:"
  echo "  tls.crt: |"; sed 's/^/    /' "$work/cert.pem"; echo "  tls.key: |"; sed 's/^/    /' "$work/key.pem"
}
mkdir -p "$work/nolog" "$work/log" "$work/pass"
# ringress's ConfigMap: gzip on at ingress-nginx's default level (1), as for nginx and HAProxy.
export EXTRA_CONFIG="  use-gzip: \"true\"
  gzip-level: \"${GZIP_LEVEL:-1}\""
{ bench/support/manifests.sh $PORT_UP; secret; } > "$work/nolog/manifests.yaml"
{ bench/support/manifests.sh $PORT_UP "$work/ringress-access.log"; secret; } > "$work/log/manifests.yaml"
# The passthrough modes: host localhost passed through to the upstream's TLS port.
{ cat "$work/nolog/manifests.yaml"; cat <<EOC
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: pass, annotations: {nginx.ingress.kubernetes.io/ssl-passthrough: "true"}}
spec:
  ingressClassName: ringress
  rules:
  - host: localhost
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: up-tls, port: {number: 443}}}}
---
apiVersion: v1
kind: Service
metadata: {name: up-tls}
spec: {ports: [{name: https, port: 443, targetPort: $PORT_UP_TLS}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up-tls-1, labels: {kubernetes.io/service-name: up-tls}}
addressType: IPv4
endpoints: [{addresses: ["127.0.0.1"]}]
ports: [{name: https, port: $PORT_UP_TLS}]
EOC
} > "$work/pass/manifests.yaml"

# Whether a mode runs with the access logs on.
logged() { [[ $1 == *-log ]]; }
# Which configuration a mode runs with: a proxy restarts when it changes.
profile() { case $1 in *-log) echo log;; passthrough*) echo pass;; *) echo nolog;; esac; }

start_proxy() { # name mode -> sets PROXY_PID
  local suffix="" dir; dir=$(profile "$2")
  logged "$2" && suffix=-log
  local flags=(); [ "$dir" = pass ] && flags=(--enable-ssl-passthrough)
  case $1 in
    nginx) taskset -c "$PROXY_CPU" nginx -c "$work/nginx$suffix.conf" -p "$work" & PROXY_PID=$! ;;
    haproxy)
      if logged "$2"; then
        taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy-log.cfg" -db > "$work/haproxy-access.log" & PROXY_PID=$!
      elif [ "$dir" = pass ]; then
        taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy-pass.cfg" -db & PROXY_PID=$!
      else
        taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db & PROXY_PID=$!
      fi ;;
    ringress-uring|ringress-epoll|ringress-tokio-uring|baseline-uring|baseline-epoll)
      local bin=$BIN; [[ $1 == baseline-* ]] && bin=$BASELINE
      taskset -c "$PROXY_CPU" "$bin" run --manifests "$work/$dir/manifests.yaml" --http 127.0.0.1:$PORT_PROXY \
        --https 127.0.0.1:$PORT_TLS --default-ssl-certificate default/bench-tls \
        --admin 127.0.0.1:0 --workers 1 --io "${1#*-}" "${flags[@]}" 2>"$work/$1.log" & PROXY_PID=$! ;;
  esac
  pids+=("$PROXY_PID")
  for _ in $(seq 50); do curl -sf -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$PORT_PROXY/" && return 0; sleep 0.1; done
  echo "$1 did not come up" >&2; return 1
}
stop_proxy() {
  kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; sleep 0.3
  rm -f "$work"/*access.log*
}

# ringress serves h2c on its plain port (the first bytes tell); the others on their own.
h2c_port() { case $1 in ringress*|baseline*) echo $PORT_PROXY;; *) echo $PORT_H2C;; esac; }

# h2load (16 x 16) or openssl s_time: prints "rps nan nan cpu_us_per_req errors" (no
# percentiles from these clients: the table shows "-").
measure_other() { # name mode run
  local t0 t1 out reqs rate errs hz; hz=$(getconf CLK_TCK)
  t0=$(cpu_ticks "$PROXY_PID")
  case $2 in
    h2c|h2)
      local url="http://127.0.0.1:$(h2c_port "$1")/"; [ "$2" = h2 ] && url="https://127.0.0.1:$PORT_TLS/"
      out=$(taskset -c "$LOAD_CPU" h2load -c16 -m16 -t1 -D "$DURATION" -H ':authority: bench.local' "$url")
      reqs=$(echo "$out" | awk '/^requests:/ {print $8}'); errs=$(echo "$out" | awk '/^requests:/ {print $10+$12}')
      rate=$(echo "$out" | awk '/^finished in/ {print $4}') ;;
    tls-full|tls12-resume)
      # Four clients: one s_time waits on every round trip and would leave the proxy idle.
      local flags=(-new) i clients=(); [ "$2" = tls12-resume ] && flags=(-reuse -tls1_2)
      for i in 1 2 3 4; do
        taskset -c "$LOAD_CPU" openssl s_time -connect 127.0.0.1:$PORT_TLS "${flags[@]}" -time "$DURATION" \
          > "$work/s_time.$i" 2>&1 & clients+=($!)
      done
      wait "${clients[@]}"
      out=$(cat "$work"/s_time.?)
      reqs=$(echo "$out" | awk '/connections in/ && /real seconds/ {n+=$1} END {print n}')
      rate=$(echo "$reqs $DURATION" | awk '{print $1/$2}'); errs=0 ;;
  esac
  t1=$(cpu_ticks "$PROXY_PID")
  echo "$out" > "$raw/$1-$2-$3.txt"
  awk -v r="$rate" -v reqs="$reqs" -v dt=$((t1 - t0)) -v hz="$hz" -v e="$errs" \
    'BEGIN {printf "%s nan nan %.3f %s\n", r, (reqs > 0 ? dt*1e6/hz/reqs : 0), e}'
}

# One wrk run: prints "rps p50_us p99_us cpu_us_per_req".
measure() { # name mode run
  case $2 in h2c|h2|tls-full|tls12-resume) measure_other "$@"; return;; esac
  local extra=() t0 t1 out reqs url="http://127.0.0.1:$PORT_PROXY/"
  [ "$2" = close ] || [ "$2" = tls-resume ] && extra=(-H "Connection: close")
  logged "$2" && extra=(-H "User-Agent: wrk")
  [ "$2" = https ] || [ "$2" = tls-resume ] && url="https://127.0.0.1:$PORT_TLS/"
  [ "$2" = passthrough-close ] && extra=(-H "Connection: close")
  [[ $2 == passthrough* ]] && url="https://localhost:$PORT_TLS/"
  local host=bench.local
  case $2 in
    gzip) url="http://127.0.0.1:$PORT_PROXY/text64k" extra=(-H "Accept-Encoding: gzip") ;;
    gzip-off) url="http://127.0.0.1:$PORT_PROXY/text64k" ;;
    route-canary) host=canary.local ;;
    route-affinity) host=affinity.local extra=(-H "Cookie: INGRESSCOOKIE=0123456789abcdef") ;;
    route-limit) host=limit.local ;;
  esac
  t0=$(cpu_ticks "$PROXY_PID")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $host" "${extra[@]}" "$url")
  t1=$(cpu_ticks "$PROXY_PID")
  echo "$out" > "$raw/$1-$2-$3.txt"
  reqs=$(echo "$out" | awk '/requests in/ {print $1}')
  local errs; errs=$(echo "$out" | awk '/Non-2xx/ {print $NF}'); errs=${errs:-0}
  local hz; hz=$(getconf CLK_TCK)
  echo "$out" | awk -v reqs="$reqs" -v dt=$((t1 - t0)) -v hz="$hz" -v errs="$errs" '
    function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return (v+0)*1000; if (v ~ /s$/) return (v+0)*1e6; return v }
    /Requests\/sec/ {rps=$2} / 50%/ {p50=us($2)} / 99%/ {p99=us($2)}
    END {printf "%s %s %s %.3f %s\n", rps, p50, p99, dt*1e6/hz/reqs, errs}'
}

default_proxies="ringress-uring ringress-epoll nginx haproxy"
[ -n "${BASELINE:-}" ] && default_proxies="ringress-uring baseline-uring ringress-epoll nginx haproxy"
read -r -a proxies <<< "${PROXIES:-$default_proxies}"
MODES=${MODES:-keepalive close}
[ "$MODES" = all ] && MODES="keepalive close h2c h2 https tls-full tls-resume tls12-resume"
read -r -a modes <<< "$MODES"
echo "runs=$RUNS duration=${DURATION}s conns=$CONNS proxy_cpu=$PROXY_CPU load_cpu=$LOAD_CPU" | tee "$raw/setup.txt"
for run in $(seq "$RUNS"); do
  # Proxies take turns within each run, so drift on a shared machine hits all of them alike.
  for p in "${proxies[@]}"; do
    started=
    for m in "${modes[@]}"; do
      # The per-route feature modes are ringress's alone.
      [[ $m == route-* && $p != ringress* && $p != baseline* ]] && continue
      # nginx-light has no stream module: the passthrough modes are ringress's and HAProxy's.
      [[ $m == passthrough* && $p == nginx ]] && continue
      # A proxy is restarted only when its configuration changes (access log, passthrough).
      if [ -z "$started" ] || [ "$(profile "$started")" != "$(profile "$m")" ]; then
        [ -n "$started" ] && stop_proxy
        start_proxy "$p" "$m"; started=$m
      fi
      taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -H 'Host: bench.local' "http://127.0.0.1:$PORT_PROXY/" >/dev/null # warm-up
      [ "$m" = h2 ] || [ "$m" = https ] && taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -H 'Host: bench.local' "https://127.0.0.1:$PORT_TLS/" >/dev/null
      perf_pid=
      if [ -n "${PERF:-}" ] && [[ $p == ringress* || $p == baseline* ]]; then
        perf record -q -g -p "$PROXY_PID" -o "$raw/$p-$m-$run.perf.data" 2>/dev/null & perf_pid=$!
      fi
      r=$(measure "$p" "$m" "$run")
      [ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
      echo "$run $p $m $r" | tee -a "$raw/results.txt"
    done
    stop_proxy
  done
done

python3 bench/report.py "$raw/results.txt" "bench/results/compare-$stamp" "$(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cp "bench/results/compare-$stamp.md" bench/results/latest.md
cp "bench/results/compare-$stamp.svg" bench/results/latest.svg
cat bench/results/latest.md
