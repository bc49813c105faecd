#!/usr/bin/env bash
# Builds app.py into a component with componentize-py (from PyPI, into a venv under target/).
# Usage: build.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/example-hooks}
venv=$root/target/py-venv
if [ ! -x "$venv/bin/componentize-py" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
    fi
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "componentize-py==0.25.1"
fi
# Rebuild only when the source or the contract changed: componentize takes ~10 s.
target=$out/mtu-clamp-py.wasm
if [ ! -f "$target" ] || [ "$here/app.py" -nt "$target" ] || [ "$root/hooks-sdk/wit/hook.wit" -nt "$target" ]; then
    (cd "$here" && "$venv/bin/componentize-py" -d "$root/hooks-sdk/wit" -w hook componentize app -o "$target" >/dev/null)
fi
