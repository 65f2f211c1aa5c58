#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT one after another, makes one request on
each (waiting for its response, so no burst of concurrent upstream connections), prints
"ready", then holds them all idle for HOLD seconds. The request is an HTTP/1.1 GET, or with a
fourth argument `redis`, a PING to a redis-server (through an L4 proxy); with `tls`, the GET
goes over TLS (the certificate is not checked)."""
import resource
import socket
import ssl
import sys
import time

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
redis = len(sys.argv) > 4 and sys.argv[4] == "redis"
tls = len(sys.argv) > 4 and sys.argv[4] == "tls"
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 100), hard))
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = ctx.wrap_socket(s, server_hostname="bench.local")
    s.sendall(b"PING\r\n" if redis else b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n")
    socks.append(s)
    data = b""
    done = (lambda d: d.endswith(b"+PONG\r\n")) if redis else (
        lambda d: b"\r\n\r\n" in d and len(d.split(b"\r\n\r\n", 1)[1]) >= 64)
    while not done(data):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed early: " + repr(data[:200]))
        data += chunk
print("ready", flush=True)
time.sleep(hold)
