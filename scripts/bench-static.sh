#!/usr/bin/env bash
# The static (musl) plugin against the glibc build: release builds of both, then their ADDs side by side
# (agent/benches/static_add.rs: interleaved, a node namespace per build, a fresh pod namespace per ADD,
# plain and with three cached hooks). Root; touches only its own namespaces. Arguments go to the bench
# (--iterations N).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
[ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
cargo build --locked -q -p wasmcni-test-hook --target wasm32-wasip2 --release
cargo build --locked -q --release -p wasmcni
cargo build --locked -q --release --target x86_64-unknown-linux-musl -p wasmcni
# The harness only execs and times the two binaries: a dev build of it measures the same.
cargo bench --locked -q --profile dev -p wasmcni-agent --bench static_add -- \
    --glibc target/release/wasmcni --musl target/x86_64-unknown-linux-musl/release/wasmcni "$@"
