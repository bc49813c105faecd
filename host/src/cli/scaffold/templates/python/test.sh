#!/usr/bin/env bash
# Native unit tests of app.py against the bindings componentize-py generates from wit/hook.wit.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/componentize-py ] && PATH=$PWD/.venv/bin:$PATH
command -v componentize-py >/dev/null || { echo "missing componentize-py: run build.sh first" >&2; exit 1; }
rm -rf build/bindings
componentize-py -d wit -w hook bindings build/bindings >/dev/null
PYTHONPATH=build/bindings:. python3 -m unittest -v test_app
