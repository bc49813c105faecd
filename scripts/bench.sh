#!/usr/bin/env bash
# The benchmark (not a test): wasmcni vs the reference bridge + host-local, interleaved in one run, each in a
# node namespace of its own; then the in-process hook figures. Root; touches only its own namespaces.
# `--hooks-only` runs just the in-process hook figures; other arguments go to the CNI benchmark
# (--iterations N, --concurrency N, --levels 0,250,1000, --scale-iterations N, --settle SECONDS (before each measured phase, default 5), --netns-churn (remove each pod namespace right after its DEL), --scale-without-reference (the scale run with only wasmcni's pods on the machine), --shared-proc (all nodes on the machine's one /proc instead of a procfs each), --baseline PATH-TO-AN-OLDER-WASMCNI, --plugin PATH: the build measured, default this bench's own).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
cargo build --locked -q -p wasmcni-test-hook --target wasm32-wasip2 --release
bash example-hooks/build.sh >/dev/null
if [ "${1:-}" != "--hooks-only" ]; then
    # The plugin measured is the static (musl) build, the one the image ships; the bench's own glibc build
    # runs beside it for comparison.
    cargo build --locked -q --release --target x86_64-unknown-linux-musl -p wasmcni
    cargo bench --locked -q -p wasmcni --bench cni -- --plugin "$PWD/target/x86_64-unknown-linux-musl/release/wasmcni" "$@"
fi
cargo bench --locked -q -p wasmcni --bench hooks
