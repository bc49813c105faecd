#!/usr/bin/env bash
# Runs every test: unit tests (no root needed) and the kernel end-to-end tests (root; they create and
# remove their own network namespaces and never touch the machine's own network).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
[ "$(id -u)" = 0 ] || { echo "the kernel tests need root" >&2; exit 1; }

echo "==> building the test hook component (wasm32-wasip2)"
cargo build --locked -q -p wasmcni-test-hook --target wasm32-wasip2 --release

echo "==> cargo test (unit + kernel e2e, hooks included)"
cargo test --locked 2>&1
