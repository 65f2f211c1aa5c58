#!/usr/bin/env bash
# Resident memory per idle keep-alive client connection: ringress (io_uring, epoll), nginx and
# HAProxy as proxies in front of the same upstream, each holding $CONNS connections that have
# made one request and then wait. Reports (RSS with connections - RSS before) / $CONNS, the
# median of $RUNS runs (each with a fresh proxy) and the range.
# Usage: bench/idle_memory.sh            (env: CONNS=5000 RUNS=3; the proxy needs about 2x CONNS fds)
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-5000}
RUNS=${RUNS:-3}
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
for c in nginx haproxy python3; do command -v $c >/dev/null || { echo "$c is needed (bench/compare.sh installs nginx and haproxy)"; exit 1; }; done
cargo build --release --quiet
BIN=$PWD/target/release/ringress
work=$(mktemp -d /tmp/ringress-idle.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT INT TERM
PORT_UP=18090 PORT_PROXY=18091
cat > "$work/up.conf" <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/up.log; pid $work/up.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$PORT_UP; location / { return 200 "$(head -c 64 /dev/zero | tr '\0' x)"; } } }
EOC
nginx -c "$work/up.conf" -p "$work" & pids+=($!)
cat > "$work/nginx.conf" <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/nginx.log; pid $work/nginx.pid;
worker_rlimit_nofile $((CONNS * 2 + 100));
events { worker_connections $((CONNS + 100)); }
http { access_log off; keepalive_timeout 300s; upstream up { server 127.0.0.1:$PORT_UP; keepalive 16; }
  server { listen 127.0.0.1:$PORT_PROXY backlog=4096; location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOC
cat > "$work/haproxy.cfg" <<EOC
global
  nbthread 1
  maxconn $((CONNS + 100))
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 60s
  timeout http-keep-alive 300s
  http-reuse always
frontend fe
  bind 127.0.0.1:$PORT_PROXY
  default_backend be
backend be
  server up 127.0.0.1:$PORT_UP
EOC
bench/support/manifests.sh $PORT_UP > "$work/m.yaml"
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
printf '| proxy | RSS before | RSS with %d idle connections | per connection (median of %d) | range |\n|---|---:|---:|---:|---:|\n' "$CONNS" "$RUNS"
measure() {
  local p=$1 pid
  case $p in
    nginx) nginx -c "$work/nginx.conf" -p "$work" & pid=$! ;;
    haproxy) haproxy -f "$work/haproxy.cfg" -db 2>/dev/null & pid=$! ;;
    *) "$BIN" run --manifests "$work/m.yaml" --http 127.0.0.1:$PORT_PROXY --admin 127.0.0.1:0 --workers 1 \
         --io "${p#ringress-}" --idle-timeout 300 2>/dev/null & pid=$! ;;
  esac
  pids+=("$pid")
  for _ in $(seq 50); do curl -sf -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$PORT_PROXY/" && break; sleep 0.1; done
  before=$(rss "$pid")
  python3 bench/support/idle_clients.py $PORT_PROXY "$CONNS" 8 > "$work/clients.out" & cpid=$!
  for _ in $(seq 100); do grep -q ready "$work/clients.out" 2>/dev/null && break; sleep 0.2; done
  sleep 1
  after=$(rss "$pid")
  echo "$before $after"
  wait "$cpid" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true; sleep 0.3
}
for p in ringress-uring ringress-epoll nginx haproxy; do
  for _ in $(seq "$RUNS"); do measure "$p"; done | python3 -c '
import statistics, sys
name, conns = sys.argv[1], int(sys.argv[2])
runs = [tuple(map(int, l.split())) for l in sys.stdin if l.strip()]
per = sorted((after - before) / conns for before, after in runs)
med = lambda xs: statistics.median(xs)
print("| %s | %d KiB | %d KiB | %.1f KiB | %.1f-%.1f |" % (name, med([b for b, _ in runs]), med([a for _, a in runs]), med(per), per[0], per[-1]))
' "$p" "$CONNS"
done
