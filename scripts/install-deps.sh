#!/usr/bin/env bash
# Installs the system packages the build needs, kubectl for tests/deploy/docs_kubectl.rs
# (which runs the docs' kubectl commands against mock-kube) and the rustfmt/clippy
# components, only when they are missing.
# - gcc: `ring` (rustls's crypto, HMAC-SHA1 of the SLB signature) compiles C and assembly.
# - pkg-config and libssl-dev: for the tests only. The product has no OpenSSL (rustls);
#   the dev-dependency aliyun-openapi-core-rust-sdk (the oracle our signer is checked
#   against, tests/slb_signer_oracle.rs, and the baseline of benches/transport.rs) uses
#   reqwest 0.11 with native-tls, which links OpenSSL. `cargo build --bin slb-sync` (the
#   Dockerfile) needs neither.
set -euo pipefail

missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists openssl 2>/dev/null || missing+=(libssl-dev)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
# Debian's kubectl. The docs' overlays need kustomize `patches` and server-side field
# validation (kubectl 1.27 or later); an older packaged kubectl fails those tests loudly.
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" \
    || rustup component add "$component" 2>/dev/null || true
done
