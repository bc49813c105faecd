#!/usr/bin/env bash
# Native unit tests: mtu_clamp.c and test_mtu_clamp.c built with the machine's C compiler against the
# bindings wit-bindgen generates (the wasm import is replaced by a capturing stub).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
command -v wit-bindgen >/dev/null || bash "$here/build.sh" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wit-bindgen c "$root/hooks-sdk/wit" --world hook --out-dir "$work/gen" >/dev/null 2>&1
# -w: the generated file carries wasm-only attributes that a native compiler ignores.
cc -D_GNU_SOURCE -w -I"$work/gen" -o "$work/test" "$here/test_mtu_clamp.c" "$here/mtu_clamp.c" "$work/gen/hook.c"
"$work/test"
