#!/usr/bin/env bash
# Builds every example hook into target/example-hooks/<name>.wasm (WebAssembly components), installing the
# toolchains it needs from the registries. Used by scripts/test.sh and scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/example-hooks
mkdir -p "$out"

# Rust hooks: the wasm32-wasip2 target emits components directly.
rust_hooks=(static-ip egress-guard ingress-allowlist egress-by-label)
args=(); for h in "${rust_hooks[@]}"; do args+=(-p "$h"); done
cargo build --locked -q --target wasm32-wasip2 --release "${args[@]}"
for h in "${rust_hooks[@]}"; do cp "target/wasm32-wasip2/release/${h//-/_}.wasm" "$out/$h.wasm"; done

for extra in example-hooks/*/build.sh; do
    [ -f "$extra" ] && bash "$extra" "$PWD/$out"
done
ls -la "$out"
