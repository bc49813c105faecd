#!/usr/bin/env bash
# `wasmcni hook new` as an author uses it: one project per language in a temp dir, built with its own
# build.sh, its native tests run with its test.sh, its fixtures through `wasmcni hook test`. Any step that
# fails shows that project's whole output and fails the run. The toolchains are the examples' (target/).
# Usage: scaffold-test.sh [LANG...]   (default: rust c python js)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
BIN=$(realpath "${WASMCNI_BIN:-target/debug/wasmcni}")
[ -x "$BIN" ] || { echo "no $BIN: cargo build -p wasmcni first" >&2; exit 1; }
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(rust c python js)

# The toolchains example-hooks/build.sh installs, used as an author's would be.
export PATH="$HOME/.cargo/bin:$root/target/py-venv/bin:$PATH"
export JS_TOOLCHAIN=$root/target/js-toolchain
# The Rust project's dependencies are built once and kept, so a rerun is quick.
export CARGO_TARGET_DIR=$root/target/scaffold-rust
for l in "${langs[@]}"; do
    case $l in
        c) command -v wit-bindgen >/dev/null || bash example-hooks/mtu-clamp-c/build.sh >/dev/null ;;
        python) [ -x target/py-venv/bin/componentize-py ] || bash example-hooks/mtu-clamp-py/build.sh >/dev/null ;;
        js) [ -d target/js-toolchain/node_modules ] || bash example-hooks/port-policy-js/build.sh >/dev/null ;;
    esac
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
for lang in "${langs[@]}"; do
    name=scaffolded-$lang
    log=$work/$lang.log
    start=$SECONDS
    # A chain, not set -e: bash ignores set -e inside a command that `if` tests.
    if (cd "$work" && "$BIN" hook new "$name" --lang "$lang" && cd "$name" && bash build.sh && bash test.sh \
        && "$BIN" hook test fixtures/*.toml --module "$name.wasm" --cache-dir "$work/cache") > "$log" 2>&1; then
        passed=$((passed + 1))
        echo "ok    $lang: generated, built, unit tests and fixtures pass ($((SECONDS - start)) s)"
    else
        failed=$((failed + 1))
        echo "FAIL  $lang: the generated project does not build or pass as generated; its output:"
        sed 's/^/      /' "$log"
    fi
done
echo "scaffold: $passed passed, $failed failed"
[ "$failed" = 0 ]
