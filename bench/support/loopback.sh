# Sourced by the loopback benches (compare.sh, access_cost.sh): the pieces they share. Expects
# $work (a scratch directory), $LOAD_CPU and the array `pids` (killed on exit).

# The upstream every proxy forwards to: nginx, one worker on the load CPU, answering 200 with
# $2 on 127.0.0.1:$1, keep-alive connections never recycled.
start_upstream() { # port body
  cat > "$work/upstream.conf" <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/up-error.log; pid $work/up.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:$1 reuseport backlog=4096; location / { return 200 "$2"; } } }
EOC
  taskset -c "$LOAD_CPU" nginx -c "$work/upstream.conf" -p "$work" & pids+=($!)
}

# HAProxy's defaults section as every bench configures it (HTTP mode, upstream connections
# reused, X-Forwarded-For added).
haproxy_defaults() {
  cat <<EOC
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
  option forwardfor
EOC
}

# A process's CPU time so far (utime + stime), in clock ticks.
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
