#!/usr/bin/env bash
# The project's test command: every crate of the workspace, every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo test --workspace --locked "$@"
