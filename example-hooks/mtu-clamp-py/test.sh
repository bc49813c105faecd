#!/usr/bin/env bash
# Native unit tests of app.py against the bindings componentize-py generates from hooks-sdk/wit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$root/target/py-venv
bindings=$root/target/py-bindings
[ -x "$venv/bin/componentize-py" ] || bash "$here/build.sh" >/dev/null
rm -rf "$bindings"
"$venv/bin/componentize-py" -d "$root/hooks-sdk/wit" -w hook bindings "$bindings" >/dev/null
cd "$here" && PYTHONPATH="$bindings:$here" "$venv/bin/python" -m unittest -q test_app 2>&1
