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
# Usage: bench/compare.sh            (env: RUNS=5 DURATION=8 CONNS=64 PROXY_CPU=0 LOAD_CPU=1)
# Writes bench/results/compare-<date>.md, .svg and raw/<date>/*.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT_UP=18080 PORT_PROXY=18081
ulimit -n 1048576 2>/dev/null || ulimit -n 65536 2>/dev/null || true

need=()
for c in wrk nginx haproxy taskset; do command -v $c >/dev/null || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=(); for c in "${need[@]}"; do case $c in nginx) pkgs+=(nginx-light);; taskset) pkgs+=(util-linux);; *) pkgs+=("$c");; esac; done
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
fi
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
# --- the upstream: nginx, one worker, on the load CPU ---
cat > "$work/upstream.conf" <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/up-error.log; pid $work/up.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:$PORT_UP reuseport backlog=4096; location / { return 200 "$body"; } } }
EOC
taskset -c "$LOAD_CPU" nginx -c "$work/upstream.conf" -p "$work" & pids+=($!)

# --- the proxies ---
cat > "$work/nginx.conf" <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/nginx-error.log; pid $work/nginx.pid;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000;
  upstream up { server 127.0.0.1:$PORT_UP; keepalive 128; }
  server { listen 127.0.0.1:$PORT_PROXY backlog=4096 deferred;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme; } } }
EOC
cat > "$work/haproxy.cfg" <<EOC
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
  option forwardfor
frontend fe
  bind 127.0.0.1:$PORT_PROXY defer-accept
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Real-IP %[src]
  default_backend be
backend be
  server up 127.0.0.1:$PORT_UP
EOC
bench/support/manifests.sh $PORT_UP > "$work/manifests.yaml"

start_proxy() { # name -> sets PROXY_PID
  case $1 in
    nginx) taskset -c "$PROXY_CPU" nginx -c "$work/nginx.conf" -p "$work" & PROXY_PID=$! ;;
    haproxy) taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" -db & PROXY_PID=$! ;;
    ringress-uring|ringress-epoll|ringress-tokio-uring)
      taskset -c "$PROXY_CPU" "$BIN" run --manifests "$work/manifests.yaml" --http 127.0.0.1:$PORT_PROXY \
        --admin 127.0.0.1:0 --workers 1 --io "${1#ringress-}" 2>"$work/$1.log" & PROXY_PID=$! ;;
  esac
  pids+=("$PROXY_PID")
  for _ in $(seq 50); do curl -sf -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$PORT_PROXY/" && return 0; sleep 0.1; done
  echo "$1 did not come up" >&2; return 1
}
stop_proxy() { kill "$PROXY_PID" 2>/dev/null || true; wait "$PROXY_PID" 2>/dev/null || true; sleep 0.3; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# One wrk run: prints "rps p50_us p99_us cpu_us_per_req".
measure() { # name mode run
  local extra=() t0 t1 out reqs
  [ "$2" = close ] && extra=(-H "Connection: close")
  t0=$(cpu_ticks "$PROXY_PID")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H 'Host: bench.local' "${extra[@]}" "http://127.0.0.1:$PORT_PROXY/")
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

read -r -a proxies <<< "${PROXIES:-ringress-uring ringress-epoll nginx haproxy}"
read -r -a modes <<< "${MODES:-keepalive close}"
echo "runs=$RUNS duration=${DURATION}s conns=$CONNS proxy_cpu=$PROXY_CPU load_cpu=$LOAD_CPU" | tee "$raw/setup.txt"
for run in $(seq "$RUNS"); do
  # Proxies take turns within each run, so drift on a shared machine hits all of them alike.
  for p in "${proxies[@]}"; do
    start_proxy "$p"
    for m in "${modes[@]}"; do
      taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d1s -H 'Host: bench.local' "http://127.0.0.1:$PORT_PROXY/" >/dev/null # warm-up
      r=$(measure "$p" "$m" "$run")
      echo "$run $p $m $r" | tee -a "$raw/results.txt"
    done
    stop_proxy
  done
done

python3 bench/report.py "$raw/results.txt" "bench/results/compare-$stamp" "$(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
cp "bench/results/compare-$stamp.md" bench/results/latest.md
cp "bench/results/compare-$stamp.svg" bench/results/latest.svg
cat bench/results/latest.md
