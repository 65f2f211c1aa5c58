#!/usr/bin/env bash
# Runs every test: unit tests and the end-to-end suites, which drive the real binary with
# curl, wrk and h2load against real upstreams on loopback. Installs what they need if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
command -v curl >/dev/null || missing+=(curl)
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
# bench/hostport.sh's report (tests/hostport_script.rs), setpriv to run it as non-root, and
# mount for the access log's full-disk test (a small tmpfs).
command -v python3 >/dev/null || missing+=(python3)
command -v setpriv >/dev/null || missing+=(util-linux)
command -v mount >/dev/null || missing+=(mount)
# The L4 load balancer's tests drive a real redis through it.
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
# TLS tests: openssl s_client; nginx serves TLS upstreams (tests/upstream_tls.rs).
command -v openssl >/dev/null || missing+=(openssl)
command -v nginx >/dev/null || missing+=(nginx)
# Basic authentication's tests hash their passwords with Apache's htpasswd.
command -v htpasswd >/dev/null || missing+=(apache2-utils)
# The image test (tests/image.rs): scripts/image.sh's tools, and podman with runc to run it.
command -v readelf >/dev/null || missing+=(binutils)
command -v setcap >/dev/null || missing+=(libcap2-bin)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
[ -s /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
fi
exec cargo test --locked --workspace "$@"
