#!/usr/bin/env bash
# Fuzzes what wasmcni parses from runtimes, configs and hooks (fuzz/fuzz_targets; entry points in
# host/src/fuzzing.rs). Needs no root and touches no network.
#   bash scripts/fuzz.sh [--seconds N] [--jobs N] [TARGET...]     (default: every target, 600 s each)
# Each target starts from its checked-in corpus (fuzz/corpus/TARGET) and works in target/fuzz/corpus/TARGET;
# a crash lands in target/fuzz/artifacts/TARGET. Keep a crash as a regression by copying it into
# fuzz/corpus/TARGET: `cargo test` replays that directory (tests/fuzz_corpus.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=600 jobs=1 targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds=$2; shift 2 ;;
        --jobs) jobs=$2; shift 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# fuzz/Cargo.toml's [[bin]] entries are the list of targets.
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
work=$PWD/target/fuzz
# Safe Rust throughout, so coverage without AddressSanitizer: faster builds and more executions per second.
flags=(--fuzz-dir fuzz --sanitizer none --debug-assertions --target-dir "$work/build")
cargo +nightly fuzz build "${flags[@]}"
# libFuzzer's -jobs mode writes its output to fuzz-N.log files instead of the terminal: only ask for it when
# more than one process is wanted.
parallel=()
[ "$jobs" -le 1 ] || parallel=(-jobs="$jobs" -workers="$jobs")
for t in "${targets[@]}"; do
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    echo "== $t: ${seconds}s"
    cargo +nightly fuzz run "${flags[@]}" "$t" \
        "$work/corpus/$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" "${parallel[@]}" \
        -artifact_prefix="$work/artifacts/$t/" -print_final_stats=1 2>&1 | tail -n 12
done
