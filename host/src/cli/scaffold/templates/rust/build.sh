#!/usr/bin/env bash
# Builds the hook into {{name}}.wasm (the wasm32-wasip2 target emits a component directly).
set -euo pipefail
cd "$(dirname "$0")"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{module}}.wasm" {{name}}.wasm
echo "built {{name}}.wasm"
