#!/usr/bin/env bash
# Builds hook.c into {{name}}.wasm: C bindings generated from wit/hook.wit, clang for wasm32 with
# wasi-libc, then `wasm-tools component new`.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
for tool in clang wasm-ld wit-bindgen wasm-tools; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
    echo "missing: ${missing[*]}. On Debian 12: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    echo "and: cargo install --locked wit-bindgen-cli@0.61.1 wasm-tools@1.263.0" >&2
    exit 1
fi
rm -rf build && mkdir -p build
out=$(wit-bindgen c wit --world hook --out-dir build/gen 2>&1) || { echo "$out" >&2; exit 1; }
# A reactor: no main; the component runs _initialize when instantiated.
clang --target=wasm32-wasi -mexec-model=reactor -Oz -Wall -Wextra -Werror -Ibuild/gen -Wl,--strip-all \
    -o build/core.wasm hook.c build/gen/hook.c build/gen/hook_component_type.o
if wasm-tools print build/core.wasm | grep -q '(import "wasi_snapshot_preview1"'; then
    echo "hook.c pulls in WASI (stdio, files, clocks?): keep to malloc and string.h" >&2
    exit 1
fi
wasm-tools component new build/core.wasm -o {{name}}.wasm
wasm-tools validate {{name}}.wasm
echo "built {{name}}.wasm"
