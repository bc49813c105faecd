#!/usr/bin/env bash
# Builds mtu_clamp.c into a component: Debian's clang (wasm32) with wasi-libc linked statically, the C
# bindings wit-bindgen generates from hooks-sdk/wit, then `wasm-tools component new`. Installs the toolchain
# from apt and crates.io when missing. Usage: build.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/example-hooks}
export PATH="$HOME/.cargo/bin:$PATH"

missing=()
command -v clang >/dev/null || missing+=(clang)
command -v wasm-ld >/dev/null || missing+=(lld)
[ -f /usr/lib/wasm32-wasi/libc.a ] || missing+=(wasi-libc)
ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || missing+=(libclang-rt-14-dev-wasm32)
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Pinned so the generated C matches what mtu_clamp.c was written against (~12 min to build once).
wit-bindgen --version 2>/dev/null | grep -q '0.61.1' || cargo install -q --locked wit-bindgen-cli@0.61.1
wasm-tools --version 2>/dev/null | grep -q '1.263.0' || cargo install -q --locked wasm-tools@1.263.0

target=$out/mtu-clamp-c.wasm
if [ -f "$target" ] && [ "$target" -nt "$here/mtu_clamp.c" ] && [ "$target" -nt "$root/hooks-sdk/wit/hook.wit" ]; then
    exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wit-bindgen c "$root/hooks-sdk/wit" --world hook --out-dir "$work/gen" >/dev/null 2>&1
# A reactor: no main; the component runs _initialize when instantiated.
clang --target=wasm32-wasi -mexec-model=reactor -Oz -Wall -Wextra -Werror -I"$work/gen" -Wl,--strip-all \
    -o "$work/core.wasm" "$here/mtu_clamp.c" "$work/gen/hook.c" "$work/gen/hook_component_type.o"
# Without stdio/files/clocks the core module imports no WASI at all, so no preview1 adapter is needed.
if wasm-tools print "$work/core.wasm" | grep -q '(import "wasi_snapshot_preview1"'; then
    echo "mtu_clamp.c pulls in WASI (stdio, files, clocks?): keep it to malloc and string.h" >&2
    exit 1
fi
wasm-tools component new "$work/core.wasm" -o "$target"
wasm-tools validate "$target"
