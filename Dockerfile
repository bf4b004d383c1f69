# syntax=docker/dockerfile:1
#
# slb-sync agent image: docker build -t registry.example.com/slb-sync:0.1.0 .
#
# No OpenSSL anywhere: TLS (SLB, ECS, STS, Kubernetes API) is rustls with the `ring`
# provider, compiled into the binary, which links only glibc. The final image needs the
# root certificates (the agent uses the platform's roots, like kube), copied from the
# builder as one bundle: installing Debian's ca-certificates package would pull openssl
# and libssl3 back in as its dependencies.
#
# Final image: debian:bookworm-slim, not distroless or scratch: workloads deliver
# `slb-sync wait-drained` into their pods with an init container that runs
# `cp /usr/local/bin/slb-sync /slb-sync/slb-sync` from this image
# (deploy/examples/*/workload.yaml), so the image must contain `cp`; distroless
# (gcr.io/distroless/cc-debian12:nonroot) has no cp, and a self-copying subcommand is not
# wanted. bookworm-slim has coreutils and the glibc the builder (bookworm too) linked.
# It runs as the unprivileged uid/gid 65532 (the distroless "nonroot" id).

# Same toolchain line as development (rustc 1.95; the crate's MSRV is 1.89).
# It has gcc (ring compiles C) and ca-certificates; no other system package is needed.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# --locked: build exactly the dependency versions the tests ran with.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin slb-sync \
 && install -D -m 0755 target/release/slb-sync /out/slb-sync

FROM debian:bookworm-slim
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
# The root certificates that verify the SLB, ECS and STS endpoints (where rustls's
# platform roots look first; SSL_CERT_FILE overrides).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/slb-sync /usr/local/bin/slb-sync
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/slb-sync"]
CMD ["run"]
