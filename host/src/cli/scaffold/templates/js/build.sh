#!/usr/bin/env bash
# Builds hook.js into {{name}}.wasm with componentize-js (~10 s; the component carries the JS engine).
# Installs the toolchain into node_modules/ on first use (commit the package-lock.json it writes);
# JS_TOOLCHAIN=DIR uses one installed elsewhere instead.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null || { echo "missing npm: install Node.js 20 or newer" >&2; exit 1; }
if [ -z "${JS_TOOLCHAIN:-}" ] && [ ! -d node_modules ]; then
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
node build.mjs wit {{name}}.wasm
echo "built {{name}}.wasm"
