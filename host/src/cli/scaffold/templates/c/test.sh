#!/usr/bin/env bash
# Native unit tests: hook.c and test_hook.c built with this machine's C compiler against the same bindings.
set -euo pipefail
cd "$(dirname "$0")"
command -v wit-bindgen >/dev/null || { echo "missing wit-bindgen: cargo install --locked wit-bindgen-cli@0.61.1" >&2; exit 1; }
mkdir -p build
out=$(wit-bindgen c wit --world hook --out-dir build/native-gen 2>&1) || { echo "$out" >&2; exit 1; }
# -w: the generated file carries wasm-only attributes that a native compiler ignores.
cc -D_GNU_SOURCE -w -Ibuild/native-gen -o build/test test_hook.c hook.c build/native-gen/hook.c
build/test
