#!/usr/bin/env bash
# The demo: builds wasmcni and two example hooks, makes a "node" namespace with an "upstream" behind it and
# two "pod" namespaces, ADDs both pods exactly as a runtime does (CNI_* env + config on stdin) through the
# hooks: static-ip picks pod1's address, egress-guard's rules keep the pods from the cloud metadata address.
# It shows what they got, the rules in the host-owned chains, that pod<->pod, pod->gateway and
# pod->upstream (masqueraded) traffic works while pod->metadata is blocked, then DELs both and shows that
# the hook chains and everything else are gone. Everything happens inside namespaces it creates; the
# machine's own network is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

# WASMCNI_BIN runs the demo on an already built binary (the test command does, with its debug build).
# FIREWALL_BACKEND=iptables|nftables sets the network's "firewallBackend" (default: the plugin's choice).
if [ -n "${WASMCNI_BIN:-}" ]; then
    BIN=$(realpath "$WASMCNI_BIN")
else
    echo "==> building (release)"
    cargo build --release -q -p wasmcni
    BIN=$PWD/target/release/wasmcni
fi
echo "==> building the static-ip and egress-guard example hooks (wasm32-wasip2 components)"
cargo build --locked -q --release --target wasm32-wasip2 -p static-ip -p egress-guard

tag="wcdemo$$"
NODE=$tag-node UP=$tag-up P1=$tag-pod1 P2=$tag-pod2
work=$(mktemp -d)
listeners=()
cleanup() {
    for pid in "${listeners[@]}"; do kill "$pid" 2>/dev/null || true; done
    for ns in $P1 $P2 $UP $NODE; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; nsenter --net="/var/run/netns/$ns" "$@"; }
# The rules wasmcni owns on the node, from whichever backend holds them: nftables (the network's
# "firewallBackend": "nftables") keeps them in one table; iptables in chains named CNI-*, WCNI-*, WASMCNI-*.
uses_nft() { command -v nft >/dev/null && in_ns "$NODE" nft list table inet wasmcni >/dev/null 2>&1; }
host_rules() {
    if uses_nft; then
        in_ns "$NODE" nft list table inet wasmcni
    else
        in_ns "$NODE" iptables-save -t nat | grep -E 'CNI-' || true
        in_ns "$NODE" iptables-save -t filter | grep -E 'WCNI-|WASMCNI-' || true
    fi
}
# Lines of the host-owned rules that name a pod (every rule's comment carries its container id).
rules_of() { host_rules | grep -c -- "$1" || true; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "creating namespaces: node $NODE, upstream $UP, pods $P1 $P2"
for ns in $NODE $UP $P1 $P2; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$NODE" link add uplink type veth peer name eth0 netns "$UP"
ip -n "$NODE" addr add 192.0.2.1/24 dev uplink && ip -n "$NODE" link set uplink up
ip -n "$NODE" route add default via 192.0.2.2
ip -n "$UP" addr add 192.0.2.2/24 dev eth0 && ip -n "$UP" link set eth0 up
ip -n "$UP" addr add 203.0.113.10/32 dev lo   # "the internet"; it has no route back to the pod subnet
ip -n "$UP" addr add 169.254.169.254/32 dev lo   # "the cloud metadata service", which pods must not reach

# The hooks: copied next to their manifest in the demo's own (root-only) folder, as an installer would.
mkdir -p "$work/hooks"
cp target/wasm32-wasip2/release/static_ip.wasm target/wasm32-wasip2/release/egress_guard.wasm "$work/hooks/"
cat > "$work/hooks/hooks.toml" <<TOML
[[hooks]]
name = "static-ip"
module = "static_ip.wasm"
stages = ["pre-add"]
[hooks.config]
pods = [{ namespace = "demo", name = "$P1", ip = "10.88.0.50" }]

[[hooks]]
name = "egress-guard"
module = "egress_guard.wasm"
stages = ["post-add"]
[hooks.config]
log = true                  # a LOG rule with the prefix "egress-guard" before each drop
TOML

backend_conf=${FIREWALL_BACKEND:+"\"firewallBackend\": \"$FIREWALL_BACKEND\","}
cat > "$work/10-demo.conflist" <<JSON
{"cniVersion": "1.1.0", "name": "demo", "plugins": [{
  "type": "wasmcni", "ipMasq": true, "mtu": 1450,
  "stateDir": "$work/state", "runDir": "$work/run", "logFile": "$work/wasmcni.log", "logLevel": "info",
  "hooksManifest": "$work/hooks/hooks.toml", $backend_conf
  "ipam": {"type": "builtin", "subnet": "10.88.0.0/24", "dataDir": "$work/ipam"}}]}
JSON
# What a runtime sends on stdin: the plugin's entry with the list's cniVersion and name.
plugin_conf='{"cniVersion":"1.1.0","name":"demo","type":"wasmcni","ipMasq":true,"mtu":1450,'
plugin_conf+="\"stateDir\":\"$work/state\",\"runDir\":\"$work/run\",\"logFile\":\"$work/wasmcni.log\",\"logLevel\":\"info\","
plugin_conf+="\"hooksManifest\":\"$work/hooks/hooks.toml\",$backend_conf"
plugin_conf+="\"ipam\":{\"type\":\"builtin\",\"subnet\":\"10.88.0.0/24\",\"dataDir\":\"$work/ipam\"}}"

cni() { # COMMAND POD CONTAINER_ID
    echo "$plugin_conf" | CNI_COMMAND=$1 CNI_CONTAINERID=$3 CNI_NETNS=/var/run/netns/$2 CNI_IFNAME=eth0 \
        CNI_ARGS="K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$3" CNI_PATH=/usr/lib/cni in_ns "$NODE" "$BIN"
}

for pod in $P1 $P2; do
    say "ADD $pod (CNI_COMMAND=ADD, config on stdin) -> result on stdout"
    cni ADD "$pod" "$pod"
    echo
    ip -n "$pod" -br addr show dev eth0
    ip -n "$pod" route
done
IP1=$(ip -n "$P1" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
IP2=$(ip -n "$P2" -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)

say "static-ip (pre-ADD) chose pod1's address; pod2, not in its config, got what IPAM picked"
[ "$IP1" = 10.88.0.50 ] || { echo "pod1 got $IP1, not static-ip's 10.88.0.50" >&2; exit 1; }
echo "pod1: $IP1 (static-ip's config: namespace demo, name $P1)   pod2: $IP2 (IPAM)"

say "node side: host veths, routes"
ip -n "$NODE" -br addr show | grep wcni
ip -n "$NODE" route | grep wcni

if uses_nft; then backend="nftables: table inet wasmcni"; else backend="iptables: nat CNI-*, filter WASMCNI-FORWARD and WCNI-*"; fi
say "the host-owned rules ($backend): masquerade per pod, and egress-guard's (post-ADD) rules in a chain per pod"
host_rules

say "pod1 -> gateway 10.88.0.1";   in_ns "$P1" ping -c 3 -i 0.2 -W 2 10.88.0.1 | tail -2
say "pod1 -> pod2 ($IP2)";         in_ns "$P1" ping -c 3 -i 0.2 -W 2 "$IP2" | tail -2
say "pod2 -> pod1 ($IP1)";         in_ns "$P2" ping -c 3 -i 0.2 -W 2 "$IP1" | tail -2
say "pod1 -> upstream 203.0.113.10 (TCP); upstream prints who connected"
in_ns "$UP" timeout 5 nc -lvn -w 2 203.0.113.10 8080 > "$work/nc.out" 2>&1 &
nc_pid=$!
sleep 0.3
echo "hello from $IP1" | in_ns "$P1" nc -N -w 2 203.0.113.10 8080
wait "$nc_pid" || true
cat "$work/nc.out"
grep -q "Connection received on 192.0.2.1" "$work/nc.out" \
    && echo "upstream saw the node's address 192.0.2.1, not $IP1: masquerade works" \
    || { echo "upstream did not see the node's address" >&2; exit 1; }

say "pod1 -> the metadata address 169.254.169.254:80 (TCP): blocked by egress-guard; the node itself gets through"
in_ns "$UP" nc -lkn 169.254.169.254 80 >/dev/null 2>&1 &
listeners+=($!)
sleep 0.2
in_ns "$NODE" nc -z -w 2 169.254.169.254 80 \
    || { echo "the node cannot reach the metadata stand-in: the demo's network is broken" >&2; exit 1; }
echo "node -> 169.254.169.254:80: connected (hooks judge pod traffic only)"
if in_ns "$P1" nc -z -w 1 169.254.169.254 80; then
    echo "pod1 reached the metadata address: egress-guard's rule did not apply" >&2
    exit 1
fi
echo "pod1 -> 169.254.169.254:80: no answer within 1 s (dropped by egress-guard's rule)"
echo "pod1 -> 203.0.113.10:8080 was allowed above: egress-guard drops only what it lists"

say "CHECK pod1 through the debug CLI, straight from the conflist file"
in_ns "$NODE" "$BIN" exec check --netns "/var/run/netns/$P1" --container-id "$P1" --config "$work/10-demo.conflist" \
    && echo "CHECK passed"

for pod in $P1 $P2; do
    say "DEL $pod: its hook chains go with it"
    before=$(rules_of "$pod")
    cni DEL "$pod" "$pod" && echo "DEL ok (exit 0, nothing on stdout)"
    after=$(rules_of "$pod")
    echo "host-owned rule lines naming $pod: $before before DEL, $after after"
    [ "$after" = 0 ] || { echo "DEL left rules of $pod behind" >&2; exit 1; }
done

say "what is left"
left=0
ip -n "$NODE" -o link | grep wcni && left=1
in_ns "$NODE" iptables-save | grep CNI- | grep -v -e WASMCNI-FORWARD -e '"wasmcni hooks"' && left=1
host_rules | grep -e "$P1" -e "$P2" && left=1
# Kept on purpose: the node-wide entry into the hook chains and the compiled-hook cache.
find "$work/state" "$work/ipam" -type f ! -path "$work/state/locks/*" ! -path "$work/state/hook-cache/*" ! -name lock ! -name 'last_reserved_ip.*' ! -name '*.log' | grep . && left=1
ip -n "$P1" -o link | grep eth0 && left=1
[ $left = 0 ] && echo "nothing: no veth, no route, no masquerade rule or hook chain of a pod, no IP reservation, no record (kept: the node-wide hook entry; the network's masquerade set and chain, for its next pod, until a GC finds them unused; the hook cache)"
say "the plugin's log ($work/wasmcni.log)"; tail -n 6 "$work/wasmcni.log"
exit $left
