# Installs what building, the demo and the tests need on a fresh Debian 12 (run as root). Sourced by the
# README's commands; idempotent and quick when everything is present.
set -euo pipefail

need_apt=()
for pair in ip:iproute2 iptables-restore:iptables nft:nftables ping:iputils-ping nsenter:util-linux nc:netcat-openbsd \
            cc:gcc; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
# The reference plugins are peers for interop tests and the benchmark.
[ -x /usr/lib/cni/bridge ] || need_apt+=(containernetworking-plugins)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The podman interop test (tests/podman/run.sh): podman 4.3 with runc (Debian's crun refuses hybrid cgroups)
# and a static busybox for its image. No recommends: buildah, slirp4netns, fuse-overlayfs are not needed.
need_pod=()
for pkg in podman runc busybox-static; do dpkg -s "$pkg" >/dev/null 2>&1 || need_pod+=("$pkg"); done
if [ ${#need_pod[@]} -gt 0 ]; then
    echo "==> installing ${need_pod[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pod[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }

# Hooks are WebAssembly components; the test hooks and example hooks build for this target.
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    echo "==> rustup target add wasm32-wasip2"
    rustup target add wasm32-wasip2
fi

# The Kubernetes test (scripts/k8s-test.sh): static plugin and agent binaries for the image FROM scratch
# (musl: rustup's target plus Debian's musl-tools for ring's C parts), `file` to check they are static,
# and kubernetes-validate for the manifests in deploy/.
need_k8s=()
command -v musl-gcc >/dev/null 2>&1 || need_k8s+=(musl-tools)
command -v file >/dev/null 2>&1 || need_k8s+=(file)
if [ ${#need_k8s[@]} -gt 0 ]; then
    echo "==> installing ${need_k8s[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_k8s[@]}" >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    echo "==> rustup target add x86_64-unknown-linux-musl"
    rustup target add x86_64-unknown-linux-musl
fi
if ! command -v kubernetes-validate >/dev/null 2>&1; then
    echo "==> pip install kubernetes-validate"
    python3 -m pip install -q kubernetes-validate
fi
