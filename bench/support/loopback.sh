# Sourced by the loopback benches (compare.sh, access_cost.sh): the pieces they share. Expects
# $work (a scratch directory), $LOAD_CPU and the array `pids` (killed on exit).

# The upstream every proxy forwards to: nginx, one worker on the load CPU, answering 200 with
# $2 on 127.0.0.1:$1, keep-alive connections never recycled. /text64k is a 64 KiB HTML page
# (the compression modes' response): words from a small vocabulary in a fixed pseudo-random
# order, which gzip -1 shrinks about 3x, as it does real pages. With $3, the same answer over
# TLS on that port (the SSL passthrough modes' backend).
start_upstream() { # port body [tls_port cert.pem key.pem]
  python3 - "$work/text64k.html" <<'EOP'
import random, sys
random.seed(7)
words = ("ingress proxy route service endpoint cluster node request response header cookie "
         "session upstream backend gateway secret certificate annotation namespace pod deploy "
         "the a of to and in is for with on by as at from that this be are or an it").split()
out = ["<!doctype html><html><head><title>bench</title></head><body>\n"]
n = len(out[0])
while n < 65536:
    line = "<p class=\"row\">" + " ".join(random.choice(words) for _ in range(12)) + f" {random.randrange(100000)}</p>\n"
    out.append(line); n += len(line)
open(sys.argv[1], "w").write("".join(out)[:65536])
EOP
  local tls_server=""
  [ -n "${3:-}" ] && tls_server="server { listen 127.0.0.1:$3 ssl reuseport backlog=4096; ssl_certificate $4; ssl_certificate_key $5; location / { return 200 \"$2\"; } }"
  cat > "$work/upstream.conf" <<EOC
daemon off; master_process off; worker_processes 1; error_log $work/up-error.log; pid $work/up.pid;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:$1 reuseport backlog=4096; location / { return 200 "$2"; }
    location = /text64k { default_type text/html; etag off; alias $work/text64k.html; } }
  $tls_server }
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
