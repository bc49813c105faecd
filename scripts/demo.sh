#!/usr/bin/env bash
# The demo: builds wasmcni, makes a "node" namespace with an "upstream" behind it and two "pod" namespaces,
# ADDs both pods exactly as a runtime does (CNI_* env + config on stdin), shows what they got and that
# pod<->pod, pod->gateway and pod->upstream (masqueraded) traffic works, then DELs both and shows that
# nothing is left. Everything happens inside namespaces it creates; the machine's own network is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh

# WASMCNI_BIN runs the demo on an already built binary (the test command does, with its debug build).
if [ -n "${WASMCNI_BIN:-}" ]; then
    BIN=$(realpath "$WASMCNI_BIN")
else
    echo "==> building (release)"
    cargo build --release -q -p wasmcni
    BIN=$PWD/target/release/wasmcni
fi

tag="wcdemo$$"
NODE=$tag-node UP=$tag-up P1=$tag-pod1 P2=$tag-pod2
work=$(mktemp -d)
cleanup() {
    for ns in $P1 $P2 $UP $NODE; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

in_ns() { local ns=$1; shift; nsenter --net="/var/run/netns/$ns" "$@"; }
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "creating namespaces: node $NODE, upstream $UP, pods $P1 $P2"
for ns in $NODE $UP $P1 $P2; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$NODE" link add uplink type veth peer name eth0 netns "$UP"
ip -n "$NODE" addr add 192.0.2.1/24 dev uplink && ip -n "$NODE" link set uplink up
ip -n "$NODE" route add default via 192.0.2.2
ip -n "$UP" addr add 192.0.2.2/24 dev eth0 && ip -n "$UP" link set eth0 up
ip -n "$UP" addr add 203.0.113.10/32 dev lo   # "the internet"; it has no route back to the pod subnet

cat > "$work/10-demo.conflist" <<JSON
{"cniVersion": "1.1.0", "name": "demo", "plugins": [{
  "type": "wasmcni", "ipMasq": true, "mtu": 1450,
  "stateDir": "$work/state", "runDir": "$work/run", "logFile": "$work/wasmcni.log", "logLevel": "info",
  "ipam": {"type": "builtin", "subnet": "10.88.0.0/24", "dataDir": "$work/ipam"}}]}
JSON
# What a runtime sends on stdin: the plugin's entry with the list's cniVersion and name.
plugin_conf='{"cniVersion":"1.1.0","name":"demo","type":"wasmcni","ipMasq":true,"mtu":1450,'
plugin_conf+="\"stateDir\":\"$work/state\",\"runDir\":\"$work/run\",\"logFile\":\"$work/wasmcni.log\",\"logLevel\":\"info\","
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

say "node side: host veths, routes, masquerade chains"
ip -n "$NODE" -br addr show | grep wcni
ip -n "$NODE" route | grep wcni
in_ns "$NODE" iptables-save -t nat | grep CNI-

say "pod1 -> gateway 10.88.0.1";   in_ns "$P1" ping -c 3 -i 0.2 -W 2 10.88.0.1 | tail -2
say "pod1 -> pod2 ($IP2)";         in_ns "$P1" ping -c 3 -i 0.2 -W 2 "$IP2" | tail -2
say "pod2 -> pod1 ($IP1)";         in_ns "$P2" ping -c 3 -i 0.2 -W 2 "$IP1" | tail -2
say "pod1 -> upstream 203.0.113.10 (TCP); upstream prints who connected"
in_ns "$UP" timeout 5 nc -lvn -w 2 203.0.113.10 8080 > "$work/nc.out" 2>&1 &
sleep 0.3
echo "hello from $IP1" | in_ns "$P1" nc -N -w 2 203.0.113.10 8080
wait || true
cat "$work/nc.out"
grep -q "Connection received on 192.0.2.1" "$work/nc.out" \
    && echo "upstream saw the node's address 192.0.2.1, not $IP1: masquerade works" \
    || { echo "upstream did not see the node's address" >&2; exit 1; }

say "CHECK pod1 through the debug CLI, straight from the conflist file"
in_ns "$NODE" "$BIN" exec check --netns "/var/run/netns/$P1" --container-id "$P1" --config "$work/10-demo.conflist" \
    && echo "CHECK passed"

for pod in $P1 $P2; do say "DEL $pod"; cni DEL "$pod" "$pod" && echo "DEL ok (exit 0, nothing on stdout)"; done

say "what is left"
left=0
ip -n "$NODE" -o link | grep wcni && left=1
in_ns "$NODE" iptables-save | grep CNI- && left=1
find "$work/state" "$work/ipam" -type f ! -path "$work/state/locks/*" ! -name lock ! -name 'last_reserved_ip.*' ! -name '*.log' | grep . && left=1
ip -n "$P1" -o link | grep eth0 && left=1
[ $left = 0 ] && echo "nothing: no veth, no route, no iptables chain, no IP reservation, no record"
say "the plugin's log ($work/wasmcni.log)"; tail -n 6 "$work/wasmcni.log"
exit $left
