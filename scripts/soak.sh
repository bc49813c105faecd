#!/usr/bin/env bash
# Soak: N random ADD/DEL/GC operations on a node netns, with random kills (at ADD's test-only crash points
# and by kill -9 at a random moment) and hooks, the way a busy node's runtime would drive the plugin; then
# DEL of every pod still there, as kubelet does when pods go, and an audit of what is left. Each call picks
# the iptables or the nftables backend at random, as a node whose setting changed would: the record decides.
# Usage: scripts/soak.sh [OPS] (default 200). Needs root and a binary built with the crash-points feature
# (scripts/test.sh builds one: target/debug/wasmcni). Everything happens in namespaces it creates.
set -euo pipefail
cd "$(dirname "$0")/.."
OPS=${1:-200}
BIN=$(realpath "${WASMCNI_BIN:-target/debug/wasmcni}")
HOOK=$(realpath target/wasm32-wasip2/release/wasmcni_test_hook.wasm)
[ "$(id -u)" = 0 ] || { echo "soak.sh needs root (it makes network namespaces)" >&2; exit 1; }
[ -x "$BIN" ] && [ -f "$HOOK" ] || { echo "build first: bash scripts/test.sh (or cargo test --features wasmcni/e2e)" >&2; exit 1; }

tag="wcsoak$$"
NODE=$tag-node
work=$(mktemp -d)
PODS=8
cleanup() {
    for i in $(seq 0 $((PODS - 1))); do ip netns del "$tag-p$i" 2>/dev/null || true; done
    ip netns del "$NODE" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap "exit 130" INT TERM
# A copy: a rebuild of target/ during a long run must not swap the binary under it.
cp "$BIN" "$work/wasmcni"; BIN=$work/wasmcni
ip netns add "$NODE"
ip -n "$NODE" link set lo up
for i in $(seq 0 $((PODS - 1))); do ip netns add "$tag-p$i"; done

base=$(cat <<JSON
{"cniVersion":"1.1.0","name":"soak","type":"wasmcni","ipMasq":true,"firewallBackend":"BACKEND","stateDir":"$work/state","runDir":"$work/run",
 "logFile":"$work/wasmcni.log","logLevel":"info",
 "ipam":{"type":"builtin","subnet":"10.66.0.0/24","dataDir":"$work/ipam"},
 "hooks":[{"name":"guard","module":"$HOOK","stages":["post-add","del"],
           "config":{"behavior":"drop-port","peer":"203.0.113.10/32","port":9}}]}
JSON
)
backends=(iptables nftables)
conf=${base/BACKEND/auto}
steps=(locked planned reserved bridge-ready rules-decided recorded-intent firewall-started veth-created
       pod-addressed host-configured firewall-applied pod-up recorded)

# Per pod slot: "" (nothing), or the container id ADDed last.
declare -a alive
for i in $(seq 0 $((PODS - 1))); do alive[$i]=""; done
n_add=0 n_del=0 n_gc=0 n_crash=0 n_kill=0 n_fail=0
cni() { # COMMAND ID POD [extra env...]: the reply of a failed call goes to $work/failures
    local cmd=$1 id=$2 pod=$3; shift 3
    local out rc=0
    # In a subshell with its stderr gone: bash would report a crash point's SIGKILL as "Killed".
    out=$( (echo "$conf" | env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" \
        CNI_NETNS="${pod:+/var/run/netns/$pod}" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni "$@" \
        nsenter --net="/var/run/netns/$NODE" "$BIN" 2>/dev/null) 2>/dev/null) || rc=$?
    [ $rc = 0 ] || [ $rc = 137 ] || echo "$cmd $id: $out" >> "$work/failures"
    return $rc
}
valid_list() {
    local out="" i
    for i in $(seq 0 $((PODS - 1))); do
        [ -n "${alive[$i]}" ] && out+="${out:+,}{\"containerID\":\"${alive[$i]}\",\"ifname\":\"eth0\"}"
    done
    echo "[$out]"
}

RANDOM=$$
for op in $(seq 1 "$OPS"); do
    slot=$((RANDOM % PODS)); pod=$tag-p$slot; r=$((RANDOM % 10))
    conf=${base/BACKEND/${backends[$((RANDOM % 2))]}}
    if [ $r -lt 1 ]; then
        # GC with what is alive: stale and half-made attachments go.
        gcconf=$(echo "$conf" | sed "s#^{#{\"cni.dev/valid-attachments\":$(valid_list),#")
        echo "$gcconf" | env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND=GC CNI_PATH=/usr/lib/cni \
            nsenter --net="/var/run/netns/$NODE" "$BIN" >/dev/null 2>&1 || n_fail=$((n_fail + 1))
        n_gc=$((n_gc + 1))
    elif [ -n "${alive[$slot]}" ]; then
        cni DEL "${alive[$slot]}" "$pod" && alive[$slot]="" || n_fail=$((n_fail + 1))
        n_del=$((n_del + 1))
    else
        id="soak-$op"
        case $((RANDOM % 6)) in
            0|1) # killed at a crash point; the runtime then DELs (or forgets: GC will find it)
                cni ADD "$id" "$pod" WASMCNI_CRASH_AFTER="${steps[$((RANDOM % ${#steps[@]}))]}" || true
                n_crash=$((n_crash + 1))
                [ $((RANDOM % 2)) = 0 ] && { cni DEL "$id" "$pod" || n_fail=$((n_fail + 1)); } ;;
            2) # killed from outside at a random moment (a runtime timeout, the OOM killer)
                ( exec 2>/dev/null; echo "$conf" | env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND=ADD CNI_CONTAINERID="$id" \
                    CNI_NETNS="/var/run/netns/$pod" CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni \
                    nsenter --net="/var/run/netns/$NODE" "$BIN" >/dev/null 2>&1 ) &
                victim=$!
                sleep "0.00$((RANDOM % 10))"
                pkill -9 -P "$victim" 2>/dev/null || true; kill -9 "$victim" 2>/dev/null || true
                wait "$victim" 2>/dev/null || true
                n_kill=$((n_kill + 1))
                cni DEL "$id" "$pod" || n_fail=$((n_fail + 1)) ;;
            *) cni ADD "$id" "$pod" && alive[$slot]=$id || n_fail=$((n_fail + 1)) ;;
        esac
        n_add=$((n_add + 1))
    fi
done

# Pods still there must be whole; then they go, as kubelet deletes them.
broken=0
for i in $(seq 0 $((PODS - 1))); do
    [ -n "${alive[$i]}" ] || continue
    cni CHECK "${alive[$i]}" "$tag-p$i" || broken=$((broken + 1))
    cni DEL "${alive[$i]}" "$tag-p$i" || n_fail=$((n_fail + 1))
done
# One GC with nothing valid, as after a node drain: pods killed mid-ADD whose DEL never came.
gcconf=$(echo "$conf" | sed 's#^{#{"cni.dev/valid-attachments":[],#')
echo "$gcconf" | env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin CNI_COMMAND=GC CNI_PATH=/usr/lib/cni \
    nsenter --net="/var/run/netns/$NODE" "$BIN" >/dev/null 2>&1 || n_fail=$((n_fail + 1))

veths=$(ip -n "$NODE" -o link | grep -c ': wcni' || true)
reservations=$(find "$work/ipam/soak" -type f ! -name lock ! -name 'last_reserved_ip.*' 2>/dev/null | wc -l)
records=$(find "$work/state/attachments" -type f 2>/dev/null | wc -l)
chains=$( (nsenter --net="/var/run/netns/$NODE" iptables-save; nsenter --net="/var/run/netns/$NODE" ip6tables-save) \
    | grep -E 'CNI-|WCNI-' | grep -v '"wasmcni hooks"' | grep -vc '^:WASMCNI-FORWARD ' || true)
# nftables: per-pod elements and chains, masquerade sets and their rules (the table, its maps and base chains are the node's).
elements=$(ip netns exec "$NODE" nft list table inet wasmcni 2>/dev/null | grep -cE 'comment "wasmcni soak/|chain [ahm][46]?-|set s[46]-|@s[46]-' || true)
podlinks=0
for i in $(seq 0 $((PODS - 1))); do
    podlinks=$((podlinks + $(ip -n "$tag-p$i" -o link | grep -vc ': lo:' || true)))
done
echo "soak: $OPS ops: $n_add ADD ($n_crash killed at a crash point, $n_kill killed from outside), $n_del DEL, $n_gc GC; $n_fail failed calls; $broken alive pods failed CHECK"
if [ -s "$work/failures" ]; then
    echo "soak: failed calls (an ADD into a pod whose killed ADD was never DELed finds its interface taken):"
    sed -E 's/wcni[0-9a-f]+/wcni…/g; s#/var/run/netns/[^ :"]+#NETNS#g; s/container [^ ]+/container …/g' "$work/failures" \
        | sed -E 's/^([A-Z]+) [^:]*: .*"code": *([0-9]+).*"msg": *"([^"]{0,160}).*/  \1 code \2: \3/' | sort | uniq -c
fi
echo "soak audit: leaked veths=$veths reservations=$reservations records=$records iptables-chains/rules=$chains nftables-elements/chains=$elements pod-links=$podlinks"
[ $((veths + reservations + records + chains + elements + podlinks + broken)) = 0 ]
