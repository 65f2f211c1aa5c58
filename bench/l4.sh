#!/usr/bin/env bash
# The L4 load balancer against HAProxy (`mode tcp`) and nginx's stream module, in one run.
#
# Each proxy forwards one TCP port, with one worker pinned to CPU $PROXY_CPU; the clients and
# upstreams share CPU $LOAD_CPU. Two measurements per proxy and run:
#   - throughput: iperf3 (client -> proxy -> iperf3 server) for $DURATION s, both directions
#     (-R for the reverse): Gbit/s, and the proxy's CPU time per GB moved;
#   - new connections: redis-benchmark -k 0 (a new connection for every PING) against
#     redis-server behind the proxy: connections per second, and proxy CPU per connection;
#   - idle connections: $IDLE clients each make one PING through the proxy and stay open:
#     the proxy's resident memory per idle connection.
# Medians over $RUNS; ratios against HAProxy in the same run.
#
# Usage: bench/l4.sh   (env: RUNS=3 DURATION=5 IDLE=4000 PROXIES="ringress-uring ringress-epoll haproxy nginx")
# Writes bench/results/l4-<date>.md and raw/<date>/l4-*.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
IDLE=${IDLE:-4000}
ulimit -n "$(ulimit -Hn)"
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-19100} PORT_IPERF=19101 PORT_REDIS=19102 PORT_REDIS_PROXY=19103
read -r -a proxies <<< "${PROXIES:-ringress-uring ringress-epoll haproxy nginx}"

. bench/support/need.sh
need iperf3 redis-server redis-benchmark:redis-tools haproxy nginx:nginx-light taskset:util-linux \
  /usr/lib/nginx/modules/ngx_stream_module.so:libnginx-mod-stream
cargo build --release --quiet
BIN=$PWD/target/release/ringress

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
work=$(mktemp -d /tmp/ringress-l4.XXXXXX)
raw=bench/results/raw/$stamp
mkdir -p "$raw"
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$work"; }
trap cleanup EXIT INT TERM

taskset -c "$LOAD_CPU" iperf3 -s -B 127.0.0.1 -p $PORT_IPERF >/dev/null 2>&1 & pids+=($!)
taskset -c "$LOAD_CPU" redis-server --port $PORT_REDIS --bind 127.0.0.1 --save "" --appendonly no --maxclients 10000 >/dev/null & pids+=($!)

# Each proxy forwards $PORT to iperf3 and $PORT_REDIS_PROXY to redis.
lb() { # name port target_port
  cat <<EOC
---
apiVersion: v1
kind: Service
metadata: {name: $1, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: ringress.dev/lb
  ports: [{name: tcp, port: $2, targetPort: tcp}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: $1-1, namespace: default, labels: {kubernetes.io/service-name: $1}}
addressType: IPv4
endpoints: [{addresses: ["127.0.0.1"]}]
ports: [{name: tcp, port: $3}]
EOC
}
{ lb iperf $PORT $PORT_IPERF; lb redis $PORT_REDIS_PROXY $PORT_REDIS; } > "$work/manifests.yaml"
cat > "$work/haproxy.cfg" <<EOC
global
  nbthread 1
  maxconn 9000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1h
  timeout server 1h
listen iperf
  bind 127.0.0.1:$PORT
  server up 127.0.0.1:$PORT_IPERF
listen redis
  bind 127.0.0.1:$PORT_REDIS_PROXY
  server up 127.0.0.1:$PORT_REDIS
EOC
cat > "$work/nginx.conf" <<EOC
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off; master_process off; worker_processes 1; error_log $work/nginx-error.log; pid $work/nginx.pid;
events { worker_connections 20000; }
stream {
  server { listen 127.0.0.1:$PORT; proxy_pass 127.0.0.1:$PORT_IPERF; }
  server { listen 127.0.0.1:$PORT_REDIS_PROXY; proxy_pass 127.0.0.1:$PORT_REDIS; }
}
EOC

start_proxy() { # name -> PROXY_PID
  case $1 in
    haproxy) taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db & PROXY_PID=$! ;;
    nginx) taskset -c "$PROXY_CPU" nginx -c "$work/nginx.conf" -p "$work" & PROXY_PID=$! ;;
    ringress-*)
      taskset -c "$PROXY_CPU" "$BIN" run --manifests "$work/manifests.yaml" --http 127.0.0.1:0 --https 127.0.0.1:0 \
        --admin 127.0.0.1:0 --workers 1 --lb-address 127.0.0.1 --io "${1#ringress-}" 2>"$work/$1.log" & PROXY_PID=$! ;;
  esac
  pids+=("$PROXY_PID")
  for _ in $(seq 100); do
    redis-cli -p $PORT_REDIS_PROXY PING 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  echo "$1 did not come up" >&2; return 1
}
stop_proxy() { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; sleep 0.3; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# iperf3 through the proxy: prints "gbit_per_s cpu_s_per_gb".
throughput() { # name direction(up|down) run
  local flags=() t0 t1 out
  [ "$2" = down ] && flags=(-R)
  t0=$(cpu_ticks "$PROXY_PID")
  out=$(taskset -c "$LOAD_CPU" iperf3 -c 127.0.0.1 -p $PORT -t "$DURATION" -J "${flags[@]}")
  t1=$(cpu_ticks "$PROXY_PID")
  echo "$out" > "$raw/l4-$1-$2-$3.json"
  echo "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
e = d["end"]["sum_received"]
print("%.3f %.0f" % (e["bits_per_second"] / 1e9, e["bytes"]))' | awk -v dt=$((t1 - t0)) -v hz="$hz" '{printf "%s %.4f\n", $1, (dt/hz) / ($2/1e9)}'
}

# redis-benchmark, a new connection per PING: prints "conns_per_s cpu_us_per_conn".
connections() { # name run
  local t0 t1 out
  t0=$(cpu_ticks "$PROXY_PID")
  out=$(taskset -c "$LOAD_CPU" redis-benchmark -p $PORT_REDIS_PROXY -n 100000 -c 16 -k 0 -t ping_inline --csv 2>&1)
  t1=$(cpu_ticks "$PROXY_PID")
  echo "$out" > "$raw/l4-$1-conn-$2.txt"
  local rps; rps=$(echo "$out" | awk -F'"' '/PING_INLINE/ {print $4}')
  awk -v r="$rps" -v dt=$((t1 - t0)) -v hz="$hz" 'BEGIN {printf "%s %.2f\n", r, dt*1e6/hz/100000}'
}

# $IDLE connections that made one PING each and wait: prints "kib_per_connection".
idle() { # name run
  local before after ready
  before=$(awk '/VmRSS/ {print $2}' "/proc/$PROXY_PID/status")
  coproc IDLERS { exec python3 bench/support/idle_clients.py $PORT_REDIS_PROXY "$IDLE" 600 redis; }
  read -r ready <&"${IDLERS[0]}"
  [ "$ready" = ready ] || { echo "idle clients failed" >&2; return 1; }
  sleep 1
  after=$(awk '/VmRSS/ {print $2}' "/proc/$PROXY_PID/status")
  kill "$IDLERS_PID"; wait "$IDLERS_PID" 2>/dev/null || true
  awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN {printf "%.2f\n", (a - b) / n}'
}

echo "runs=$RUNS duration=${DURATION}s proxy_cpu=$PROXY_CPU load_cpu=$LOAD_CPU" | tee "$raw/l4-setup.txt"
for run in $(seq "$RUNS"); do
  for p in "${proxies[@]}"; do
    start_proxy "$p"
    for dir in up down; do
      echo "tput $run $p $dir $(throughput "$p" "$dir" "$run")" | tee -a "$raw/l4-results.txt"
    done
    echo "conn $run $p $(connections "$p" "$run")" | tee -a "$raw/l4-results.txt"
    echo "idle $run $p $(idle "$p" "$run")" | tee -a "$raw/l4-results.txt"
    stop_proxy
  done
done

python3 - "$raw/l4-results.txt" "bench/results/l4-$stamp.md" "$(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'EOP'
import statistics, sys
from collections import defaultdict
src, out, machine = sys.argv[1:4]
tput, conn, idle = defaultdict(list), defaultdict(list), defaultdict(list)
runs = defaultdict(dict)
for l in open(src):
    f = l.split()
    if f[0] == "tput":
        tput[(f[2], f[3])].append((float(f[4]), float(f[5])))
        runs[(f[1], "tput-" + f[3])][f[2]] = float(f[5])
    elif f[0] == "idle":
        idle[f[2]].append(float(f[3]))
    elif f[0] == "conn":
        conn[f[2]].append((float(f[3]), float(f[4])))
        runs[(f[1], "conn")][f[2]] = float(f[3])
proxies = [p for p in ["ringress-uring", "ringress-epoll", "haproxy", "nginx"] if any(k[0] == p for k in tput) or p in conn]
def ratio(p, mode):
    rs = [v[p] / v["haproxy"] for (r, m), v in runs.items() if m == mode and p in v and v.get("haproxy")]
    return statistics.median(rs) if rs else float("nan")
med = lambda xs, i: statistics.median(x[i] for x in xs)
md = [f"Machine: {machine}. One proxy worker pinned to its own CPU; iperf3/redis-benchmark and the upstreams on the other.",
      f"Median of {len(set(k[0] for k in runs))} runs; ratios against HAProxy (`mode tcp`) in the same run.", "",
      "### Throughput, one TCP stream (iperf3; target: at least HAProxy's, with at most 0.8x its CPU per GB)", "",
      "| proxy | direction | Gbit/s | CPU s per GB | CPU/GB vs haproxy |", "|---|---|---:|---:|---:|"]
for d in ["up", "down"]:
    for p in proxies:
        v = tput.get((p, d))
        if v:
            md.append(f"| {p} | {'client to server' if d == 'up' else 'server to client'} | {med(v, 0):.2f} | {med(v, 1):.3f} | {ratio(p, 'tput-' + d):.2f}x |")
md += ["", "### New connections, a PING each (redis-benchmark -k 0, 16 clients; target: at least 1.2x HAProxy's)", "",
       "| proxy | connections/s | CPU µs per connection | connections/s vs haproxy |", "|---|---:|---:|---:|"]
for p in proxies:
    v = conn.get(p)
    if v:
        md.append(f"| {p} | {med(v, 0):,.0f} | {med(v, 1):.1f} | {ratio(p, 'conn'):.2f}x |")
md += ["", "### Idle connections (one PING each, then held open)", "",
       "| proxy | RSS per idle connection, KiB |", "|---|---:|"]
for p in proxies:
    if idle.get(p):
        md.append(f"| {p} | {statistics.median(idle[p]):.1f} |")
open(out, "w").write("\n".join(md) + "\n")
print("\n".join(md))
EOP
cp "bench/results/l4-$stamp.md" bench/results/l4-latest.md
