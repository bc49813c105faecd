#!/usr/bin/env bash
# Builds hook.js into a component with componentize-js (from npm, installed with `npm ci` from this folder's
# package-lock.json into target/js-toolchain, as the Python example keeps its venv in target/).
# Usage: build.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/example-hooks}
toolchain=$root/target/js-toolchain
if ! command -v npm >/dev/null; then
    echo "==> installing nodejs npm" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if ! cmp -s "$here/package-lock.json" "$toolchain/package-lock.json" || ! cmp -s "$here/package.json" "$toolchain/package.json" \
    || [ ! -d "$toolchain/node_modules" ]; then
    mkdir -p "$toolchain"
    cp "$here/package.json" "$here/package-lock.json" "$toolchain/"
    (cd "$toolchain" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
# Rebuild only when the source or the contract changed: componentize takes ~8 s.
target=$out/port-policy-js.wasm
if [ ! -f "$target" ] || [ "$here/hook.js" -nt "$target" ] || [ "$here/build.mjs" -nt "$target" ] \
    || [ "$root/hooks-sdk/wit/hook.wit" -nt "$target" ]; then
    (cd "$here" && JS_TOOLCHAIN=$toolchain node build.mjs "$root/hooks-sdk/wit" "$target")
fi
