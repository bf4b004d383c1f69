# syntax=docker/dockerfile:1
#
# slb-sync agent image: docker build -t registry.example.com/slb-sync:0.1.0 .
#
# Final image: debian:bookworm-slim, not distroless or scratch, for two reasons:
# - The SLB SDK (aliyun-openapi-core-rust-sdk → reqwest → native-tls) links OpenSSL. We
#   link it dynamically against Debian's libssl3, which Debian patches for security, rather
#   than vendoring a static copy that only a rebuild of this image would update. The builder
#   is Debian bookworm too, so glibc and libssl versions match at run time.
# - Workloads deliver `slb-sync wait-drained` into their pods with an init container that
#   runs `cp /usr/local/bin/slb-sync /slb-sync/slb-sync` from this image
#   (deploy/examples/*/workload.yaml), so the image must contain `cp`; distroless
#   (gcr.io/distroless/cc-debian12:nonroot) has no cp, and a self-copying subcommand is
#   not wanted. bookworm-slim has coreutils.
# It runs as the unprivileged uid/gid 65532 (the distroless "nonroot" id).

# Same toolchain line as development (rustc 1.95; the crate's MSRV is 1.89).
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions the tests ran with.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin slb-sync \
 && install -D -m 0755 target/release/slb-sync /out/slb-sync

FROM debian:bookworm-slim
# libssl3 for the SLB SDK's TLS; ca-certificates to verify the SLB, STS and Kubernetes
# API endpoints.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
COPY --from=build /out/slb-sync /usr/local/bin/slb-sync
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/slb-sync"]
CMD ["run"]
