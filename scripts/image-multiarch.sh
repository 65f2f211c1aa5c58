#!/usr/bin/env bash
# Builds ringress for amd64 and arm64 and writes one multi-platform image (an OCI image index
# in target/image/ringress-<version>.oci.tar) plus a docker-archive per platform, through
# scripts/image.sh. arm64 is cross-compiled on an amd64 machine with Debian's cross toolchain
# (C code: mimalloc, aws-lc, ring) and rustup's arm64 standard library:
#   apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-user
#   rustup target add aarch64-unknown-linux-gnu
# With SMOKE=1 it then runs the arm64 binary under qemu-user (qemu-aarch64 -L /usr/aarch64-linux-gnu)
# on the bundled example and checks that it serves a request.
set -euo pipefail
cd "$(dirname "$0")/.."
arm=aarch64-unknown-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
cargo build --release --locked --bin ringress
cargo build --release --locked --bin ringress --target "$arm"
scripts/image.sh amd64=target/release/ringress "arm64=target/$arm/release/ringress"

if [ "${SMOKE:-0}" = 1 ]; then
  log=$(mktemp)
  qemu-aarch64 -L /usr/aarch64-linux-gnu "target/$arm/release/ringress" run --io epoll \
    --manifests examples/demo.yaml --http 127.0.0.1:18080 --https 127.0.0.1:18443 \
    --admin 127.0.0.1:18254 --demo-upstream 127.0.0.1:9091 2>"$log" &
  pid=$!
  trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
  for _ in $(seq 100); do grep -q "ringress ready" "$log" && break; sleep 0.2; done
  grep "ringress ready" "$log"
  file "target/$arm/release/ringress" 2>/dev/null || true
  curl -sS -H 'Host: demo.example.com' http://127.0.0.1:18080/hello
fi
