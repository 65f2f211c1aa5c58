#!/usr/bin/env bash
# Builds ringress's container image from locally built release binaries, with no registry and
# no container engine: FROM scratch plus the stripped binary (cap_net_bind_service as a file
# capability), exactly the shared libraries it links, a CA bundle, /etc/passwd and /etc/group
# with the unprivileged user 65532, and OCI labels. Every timestamp is the commit's time
# (SOURCE_DATE_EPOCH), so two builds of one commit give the same digest.
#
#   scripts/image.sh                                   # amd64, from target/release/ringress
#   scripts/image.sh amd64=target/release/ringress arm64=target/aarch64-unknown-linux-gnu/release/ringress
#
# Writes to $OUT (default target/image):
#   ringress-<version>.oci.tar             oci-archive (one platform: its manifest; several: an
#                                          image index): podman load, skopeo, ctr import
#   ringress-<version>-<arch>.docker.tar   docker-archive per platform: docker load,
#                                          kind load image-archive, ctr -n k8s.io images import
# Environment: OUT, IMAGE (repository name, default ringress), TAG (default Cargo.toml's
# version), SOURCE_DATE_EPOCH (default the HEAD commit's time), SYSROOT_<arch> (where a
# cross-built binary's libraries are, default /usr/<triple> as Debian's cross packages lay it
# out), CA_BUNDLE (default /etc/ssl/certs/ca-certificates.crt).
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
OUT=${OUT:-target/image}
IMAGE=${IMAGE:-ringress}
TAG=${TAG:-$version}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
fi
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
export SOURCE_DATE_EPOCH

[ $# -gt 0 ] || set -- amd64=target/release/ringress
for tool in python3 readelf setcap; do
  command -v "$tool" >/dev/null || { echo "image.sh: $tool is needed (Debian: python3, binutils, libcap2-bin)" >&2; exit 1; }
done
[ -s "$CA_BUNDLE" ] || { echo "image.sh: no CA bundle at $CA_BUNDLE (Debian: ca-certificates)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

# The libraries a binary needs, as absolute paths inside its root: the ELF interpreter and the
# DT_NEEDED closure, looked up where the dynamic loader would look for that architecture.
needed_libs() {
  local bin=$1 root=$2 triple=$3
  local -a dirs=("$root/lib/$triple" "$root/usr/lib/$triple" "$root/lib" "$root/usr/lib" "$root/lib64")
  local -a queue=("$bin") seen=()
  local interp
  interp=$(readelf -lW "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
  [ -n "$interp" ] && echo "$interp"
  while [ ${#queue[@]} -gt 0 ]; do
    local f=${queue[0]}
    queue=("${queue[@]:1}")
    local lib
    for lib in $(readelf -dW "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      case " ${seen[*]} " in *" $lib "*) continue ;; esac
      seen+=("$lib")
      local d found=
      for d in "${dirs[@]}"; do
        if [ -e "$d/$lib" ]; then found="$d/$lib"; break; fi
      done
      [ -n "$found" ] || { echo "image.sh: $bin needs $lib, not found under $root" >&2; return 1; }
      echo "${found#"$root"}"
      queue+=("$found")
    done
  done
}

platforms=()
for spec in "$@"; do
  arch=${spec%%=*}
  bin=${spec#*=}
  case "$arch" in
    amd64) triple=x86_64-linux-gnu ;;
    arm64) triple=aarch64-linux-gnu ;;
    *) echo "image.sh: unknown architecture $arch (amd64 or arm64)" >&2; exit 1 ;;
  esac
  [ -x "$bin" ] || { echo "image.sh: $bin: no such binary (cargo build --release first)" >&2; exit 1; }
  if [ "$(uname -m)" = "$( [ "$arch" = amd64 ] && echo x86_64 || echo aarch64)" ]; then
    root=/
  else
    sysvar=SYSROOT_$arch
    # Debian's cross packages put the target's libraries at /usr/<triple>/lib.
    root=${!sysvar:-/usr/$triple}
  fi
  rootfs=${STAGE:-$work/$arch}
  mkdir -p "$rootfs/usr/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
  # Stripped: symbols and debug info are most of the release binary's size.
  objcopy=objcopy
  [ "$root" = / ] || objcopy=${triple}-objcopy
  command -v "$objcopy" >/dev/null || objcopy=objcopy
  "$objcopy" --strip-all "$bin" "$rootfs/usr/bin/ringress" 2>/dev/null || cp "$bin" "$rootfs/usr/bin/ringress"
  chmod 0755 "$rootfs/usr/bin/ringress"
  # Ports 80 and 443 as uid 65532: the capability rides on the file, permitted only; ringress
  # makes it effective itself at start. Under no_new_privs (allowPrivilegeEscalation: false)
  # the kernel still grants it when the container's bounding set has NET_BIND_SERVICE, which
  # the DaemonSet adds; without it ringress still starts (and can bind ports above 1023).
  setcap cap_net_bind_service=+p "$rootfs/usr/bin/ringress"
  for lib in $(needed_libs "$bin" "${root%/}" "$triple"); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "${root%/}$lib" "$rootfs$lib"
  done
  cp -L "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
  printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  platforms+=("$arch=$rootfs")
done
if [ -n "${STAGE:-}" ]; then
  [ ${#platforms[@]} = 1 ] || { echo "image.sh: STAGE takes one platform" >&2; exit 1; }
  exit 0
fi

python3 scripts/oci.py --out "$OUT" --image "$IMAGE" --tag "$TAG" --version "$version" \
  --revision "$revision" "${platforms[@]}"
