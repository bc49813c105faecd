#!/usr/bin/env bash
# Builds app.py into {{name}}.wasm with componentize-py (~10 s; the component carries the interpreter).
# Uses componentize-py from PATH, or installs it into .venv/ (needs Python 3.11+ with venv).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v componentize-py >/dev/null; then
    if [ ! -x .venv/bin/componentize-py ]; then
        python3 -m venv .venv
        .venv/bin/pip install -q "componentize-py==0.25.1"
    fi
    PATH=$PWD/.venv/bin:$PATH
fi
componentize-py -d wit -w hook componentize app -o {{name}}.wasm >/dev/null
echo "built {{name}}.wasm"
