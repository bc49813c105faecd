#!/usr/bin/env bash
# Runs every test: unit tests (no root needed) and the kernel end-to-end tests (root; they create and
# remove their own network namespaces and never touch the machine's own network).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
[ "$(id -u)" = 0 ] || { echo "the kernel tests need root" >&2; exit 1; }

# The machine's own CNI dirs and the plugin's default state dirs: no test may create or change them (tests
# use temp roots). Compared at the end.
host_dirs() {
    for d in /etc/cni/net.d /opt/cni/bin /run/wasmcni /var/lib/cni; do
        if [ -e "$d" ]; then find "$d" -maxdepth 3 -printf '%p %y %s %T@\n' 2>/dev/null | sort; else echo "$d absent"; fi
    done
}
host_dirs > "${TMPDIR:-/tmp}/wasmcni-host-dirs.$$"
trap 'rm -f "${TMPDIR:-/tmp}/wasmcni-host-dirs.$$"' EXIT

echo "==> building the test hook and the example hooks (WebAssembly components)"
cargo build --locked -q -p wasmcni-test-hook -p wasmcni-probe-hook --target wasm32-wasip2 --release
bash example-hooks/build.sh >/dev/null

# Unit tests need no root (`cargo test` alone runs them); the kernel e2e suite is the e2e feature's test
# target, built with test-only crash points.
echo "==> cargo test: unit tests, then the kernel end-to-end suite (real kernel, own namespaces), iptables backend"
cargo test --locked --features wasmcni/e2e 2>&1
echo "==> the kernel end-to-end suite again, nftables backend"
WASMCNI_TEST_BACKEND=nftables cargo test --locked --features wasmcni/e2e --test e2e 2>&1
echo "==> the library's kernel tests (nf_tables answers the backend relies on), in a network namespace of their own"
# (The same cargo invocation as above, so nothing is built again: `-p wasmcni` alone resolves features anew.)
unshare --net cargo test --locked --features wasmcni/e2e --lib -- --ignored 2>&1

echo "==> soak: 200 random ADD/DEL/GC on both backends, with kills at crash points and from outside, then an audit of leftovers"
bash scripts/soak.sh 200

echo "==> the README's demo, on the debug build (its output only if it fails)"
WASMCNI_BIN=target/debug/wasmcni bash scripts/demo.sh > target/demo.log 2>&1 || { cat target/demo.log; exit 1; }
grep "^nothing:" target/demo.log

echo "==> podman 4.3 (CNI backend) as a client of wasmcni, in its own node netns: iptables, then nftables"
for backend in iptables nftables; do
    WASMCNI_TEST_BACKEND=$backend WASMCNI_BIN=target/debug/wasmcni bash tests/podman/run.sh
done

echo "==> the per-pod binary links no Kubernetes client or TLS stack (those are the agent's)"
heavy=$(cargo tree --locked -q -p wasmcni -e normal --prefix none | grep -E '^(kube|kube-[a-z]+|k8s-openapi|rustls|openssl|hyper-rustls) ' || true)
[ -z "$heavy" ] || { echo "the plugin pulls in: $heavy" >&2; exit 1; }
# (tokio's rt-multi-thread feature is compiled in by wasmtime-wasi; the plugin only builds current-thread runtimes.)

echo "==> Kubernetes without a cluster: three nodes with the agent on a real kernel, deploy/ validated, the image built and its install run"
cargo build --locked -q -p wasmcni-agent
WASMCNI_BIN=target/debug/wasmcni AGENT_BIN=target/debug/wasmcni-agent bash scripts/k8s-test.sh

echo "==> native unit tests of the examples not in Rust: C, Python, JavaScript (node --test); the Rust ones ran under cargo test"
for t in example-hooks/*/test.sh; do bash "$t"; done

echo "==> wasmcni hook new: a project per language, built, unit-tested and its fixtures run as generated"
WASMCNI_BIN=target/debug/wasmcni bash scripts/scaffold-test.sh

echo "==> every example hook's fixtures, through wasmcni hook test (the built components)"
failed=0
for dir in example-hooks/*/; do
    name=$(basename "$dir")
    [ -d "$dir/fixtures" ] || continue
    target/debug/wasmcni hook test "$dir"/fixtures/*.toml --module "target/example-hooks/$name.wasm" 2>/dev/null || failed=1
done

echo "==> the machine's CNI dirs and wasmcni's default state dirs are as they were"
if ! host_dirs | diff "${TMPDIR:-/tmp}/wasmcni-host-dirs.$$" - ; then
    echo "a test created or changed the files above outside its temp dirs" >&2
    failed=1
fi
exit $failed
