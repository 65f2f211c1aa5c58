# A conventional multi-stage build, for those with registry access (docker build with BuildKit,
# buildah bud, kaniko). It builds the same layout as scripts/image.sh, which needs no registry
# and no engine and is what this repository's tests build and run: its build stage calls that
# script's staging step (STAGE=), so the two cannot drift. The result: the stripped binary with
# cap_net_bind_service as a permitted file capability, exactly the shared libraries it links, a
# CA bundle, /etc/passwd and /etc/group with uid 65532, and nothing else (FROM scratch).
#
#   docker build -t ringress:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/ringress:0.1.0 --push .
FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends binutils libcap2-bin python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ringress
# Set by buildx per platform; each platform's builder stages its own binary.
ARG TARGETARCH=amd64
RUN STAGE=/rootfs scripts/image.sh "${TARGETARCH}=target/release/ringress"

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ringress" \
      org.opencontainers.image.description="Kubernetes Ingress controller and edge proxy" \
      org.opencontainers.image.source="https://github.com/ringress/ringress" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# COPY must keep the file capability (security.capability); buildah's does (checked here).
# `getcap` on the unpacked binary tells: without it, uid 65532 binds only ports above 1023.
COPY --from=build /rootfs/ /
ENV PATH=/usr/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
EXPOSE 80/tcp 443/tcp
ENTRYPOINT ["/usr/bin/ringress"]
CMD ["run"]
