#!/usr/bin/env bash
# hostPort vs hostNetwork, reproduced on one machine with network namespaces (run as root).
#
# Operators who exposed ingress-nginx through a hostPort saw forwarding collapse with the CPU
# in softirq; on hostNetwork it went past 5k QPS. The difference is the path: a hostPort
# packet is DNAT-ed by iptables (the CNI portmap rules), tracked by conntrack, forwarded, and
# crosses one more veth into the pod; on hostNetwork it lands on the node's own socket.
#
# This script builds client, node, pod and upstream namespaces (bench/support/hostport-lib.sh
# draws them), and runs the same proxy in both placements: listening in the node namespace
# (hostNetwork), and in the pod namespace behind a portmap-style DNAT (hostPort). The
# upstream is nginx (`return 200`) in a namespace of its own. For each proxy and placement:
#   - keep-alive (64 connections) and a new connection per request, at saturation (wrk):
#     requests/s, p99, softirq time per request (all CPUs, /proc/stat), proxy CPU per request,
#     and conntrack entries in the node namespace at the end;
#   - a fixed rate of $RATE requests/s (oha, constant rate with latency correction, 64
#     connections): achieved rate, p50/p99/p99.9, errors.
# The proxy is pinned to CPU $PROXY_CPU; wrk/oha and the upstream share CPU $LOAD_CPU.
#
# Usage: sudo bench/hostport.sh   (env: RUNS=3 DURATION=8 RATE=5000 PROXIES="ringress nginx"
#                                  HP_PREFIX=rgxhp HP_NET=10.231 — names and /16 used)
# Refuses to start if its namespaces, links or addresses exist; tears everything down on exit,
# Ctrl-C or failure. Writes bench/results/hostport-<date>.md and .svg, raw/<date>/hostport-*.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/support/hostport-lib.sh
RUNS=${RUNS:-3}
DURATION=${DURATION:-8}
RATE=${RATE:-5000}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
read -r -a proxies <<< "${PROXIES:-ringress nginx}"

[ "$(id -u)" = 0 ] || { echo "hostport.sh: run as root (it creates network namespaces and iptables rules)" >&2; exit 1; }
. bench/support/need.sh
need ip:iproute2 iptables conntrack wrk nginx:nginx-light taskset:util-linux
command -v oha >/dev/null || PATH=$HOME/.cargo/bin:$PATH
command -v oha >/dev/null || cargo install oha --locked --quiet
hp_check_free
cargo build --release --quiet
BIN=$PWD/target/release/ringress

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
work=$(mktemp -d /tmp/ringress-hostport.XXXXXX)
raw=bench/results/raw/$stamp
mkdir -p "$raw"
cleanup() { set +e; hp_teardown; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
hp_setup

N=$HP_NET
body=$(head -c 64 /dev/zero | tr '\0' 'x')
cat > "$work/upstream.conf" <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/up-error.log; pid $work/up.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server { listen $N.2.2:8080 reuseport backlog=4096; location / { return 200 "$body"; } } }
EOC
ip netns exec "$HP_PREFIX-up" taskset -c "$LOAD_CPU" nginx -c "$work/upstream.conf" -p "$work" &

nginx_conf() { # listen address
cat <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/nginx-error.log; pid $work/nginx.pid;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server $N.2.2:8080; keepalive 128; }
  server { listen $1:80 backlog=4096 deferred;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; } } }
EOC
}
UPSTREAM_IP=$N.2.2 bench/support/manifests.sh 8080 > "$work/manifests.yaml"

# Where each placement listens, and the namespace it runs in.
listen_ns() { case $1 in hostNetwork) echo node;; hostPort) echo pod;; esac; }
listen_ip() { case $1 in hostNetwork) echo "$N.0.1";; hostPort) echo "$N.1.2";; esac; }

start_proxy() { # proxy placement -> PROXY_PID
  local ns ip; ns=$(listen_ns "$2"); ip=$(listen_ip "$2")
  if [ "$2" = hostPort ]; then hp_hostport_on; else hp_hostport_off; fi
  # Started as plain commands, so $! is the proxy itself (ip netns exec and taskset exec it).
  case $1 in
    nginx)
      nginx_conf "$ip" > "$work/nginx.conf"
      ip netns exec "$HP_PREFIX-$ns" taskset -c "$PROXY_CPU" nginx -c "$work/nginx.conf" -p "$work" & ;;
    ringress)
      ip netns exec "$HP_PREFIX-$ns" taskset -c "$PROXY_CPU" "$BIN" run --manifests "$work/manifests.yaml" \
        --http "$ip:80" --https "$ip:443" --admin 127.0.0.1:0 --workers 1 2>"$work/ringress.log" & ;;
  esac
  PROXY_PID=$!
  for _ in $(seq 50); do
    hp_in client curl -sf -o /dev/null -H 'Host: bench.local' "http://$N.0.1/" && return 0
    sleep 0.1
  done
  echo "$1 ($2) did not come up" >&2; cat "$work/ringress.log" >&2 2>/dev/null || true; return 1
}
stop_proxy() { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; sleep 0.3; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# One saturation run: prints "rps p99_us softirq_us_per_req cpu_us_per_req conntrack errors".
saturate() { # name placement mode run
  local extra=() s0 s1 c0 c1 out
  [ "$3" = close ] && extra=(-H "Connection: close")
  hp_conntrack_flush
  s0=$(hp_softirq_ticks); c0=$(cpu_ticks "$PROXY_PID")
  out=$(hp_in client taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
    -H 'Host: bench.local' "${extra[@]}" "http://$N.0.1/")
  s1=$(hp_softirq_ticks); c1=$(cpu_ticks "$PROXY_PID")
  echo "$out" > "$raw/hostport-$1-$2-$3-$4.txt"
  read -r rps p99 reqs errs < <(echo "$out" | hp_parse_wrk)
  awk -v rps="$rps" -v p99="$p99" -v reqs="$reqs" -v ds=$((s1 - s0)) -v dc=$((c1 - c0)) -v hz="$hz" \
    -v ct="$(hp_conntrack)" -v e="$errs" \
    'BEGIN {printf "%s %s %.3f %.3f %s %s\n", rps, p99, ds*1e6/hz/reqs, dc*1e6/hz/reqs, ct, e}'
}

# The fixed-rate run: prints "achieved_rps p50_us p99_us p999_us errors".
fixed_rate() { # name placement run
  local out
  out=$(hp_in client taskset -c "$LOAD_CPU" oha --no-tui --output-format json -z "${DURATION}s" -q "$RATE" \
    --latency-correction -c "$CONNS" -H 'Host: bench.local' "http://$N.0.1/")
  echo "$out" > "$raw/hostport-$1-$2-rate-$3.json"
  echo "$out" | hp_parse_oha
}

{ echo "runs=$RUNS duration=${DURATION}s conns=$CONNS rate=$RATE proxy_cpu=$PROXY_CPU load_cpu=$LOAD_CPU"
  echo "machine: $(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"; } | tee "$raw/hostport-setup.txt"
for run in $(seq "$RUNS"); do
  for p in "${proxies[@]}"; do
    for placement in hostNetwork hostPort; do
      start_proxy "$p" "$placement"
      # Warm-up: upstream connections pooled, caches warm.
      hp_in client taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -H 'Host: bench.local' "http://$N.0.1/" >/dev/null
      for mode in keepalive close; do
        r=$(saturate "$p" "$placement" "$mode" "$run")
        echo "sat $run $p $placement $mode $r" | tee -a "$raw/hostport-results.txt"
      done
      r=$(fixed_rate "$p" "$placement" "$run")
      echo "rate $run $p $placement $RATE $r" | tee -a "$raw/hostport-results.txt"
      stop_proxy
    done
  done
done

python3 bench/hostport_report.py "$raw/hostport-results.txt" "bench/results/hostport-$stamp" "$(sed -n 2p "$raw/hostport-setup.txt" | sed "s/^machine: //")"
cp "bench/results/hostport-$stamp.md" bench/results/hostport-latest.md
cp "bench/results/hostport-$stamp.svg" bench/results/hostport-latest.svg
cat bench/results/hostport-latest.md
