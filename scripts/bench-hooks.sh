#!/usr/bin/env bash
# In-process hook overhead (not a test): cold compile vs cache load, and per-call cost of a cached hook.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cargo build --locked -q -p wasmcni-test-hook --target wasm32-wasip2 --release
bash example-hooks/build.sh >/dev/null
cargo bench --locked -q -p wasmcni --bench hooks -- "$@"
