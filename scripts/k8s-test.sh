#!/usr/bin/env bash
# The Kubernetes side of wasmcni without a cluster (none is reachable from these machines), as root:
#
#  1. Three nodes on a real kernel, all in namespaces this script creates: an "underlay" netns with a
#     bridge, three dual-stack "node" netns on it (InternalIPs 192.168.77.1-3/24 and fd77::1-3/64, pod
#     CIDRs 10.77.0-2.0/24 and fd00:77:0:1-3::/64) and an "upstream" netns on the same segment
#     (192.168.77.100, fd77::100, with no route to the pod ranges). In each node
#     netns runs wasmcni-agent, offline on a nodes file (the same reconcile code the API watch feeds), with
#     every path in a temp dir, a 1 s resync, and only CAP_NET_ADMIN. Pods are added by the real plugin
#     with the conflist the agent's install wrote. Checks: install and readiness, one route per other node
#     (proto 87) per family, pods on different nodes reach each other and see each other's real address
#     over both families (the cluster CIDRs are not masqueraded), egress to upstream is masqueraded (both), a hook's drop rule holds across
#     nodes, a route deleted by hand comes back, a node removed from the file loses its routes on the
#     others, a bad hook set is refused while the good one stays.
#  2. Every manifest in deploy/ validated with kubernetes-validate --strict against a current Kubernetes.
#  3. The image: static (musl) binaries, `podman build` of deploy/Containerfile (FROM scratch), and its
#     install entrypoint run against a bind-mounted temp root, showing the files land.
#
# Nothing touches the machine's own network: names carry $$, a trap removes everything also on failure.
# Usage: scripts/k8s-test.sh [--nodes-only|--deploy-only]   (WASMCNI_BIN / AGENT_BIN override the binaries)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { echo "  ok: $*"; }
[ "$(id -u)" = 0 ] || fail "needs root (it creates network namespaces); nothing was run"
. scripts/deps.sh
ONLY=${1:-all}
START=$(date +%s)

T=$(mktemp -d /tmp/wasmcni-k8s.XXXXXX)
TAG=wck8s$$
PIDS=()
NSS=()
FAILURES=()
PODMAN_ROOT=""
cleanup() {
    rc=$?
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if [ $rc != 0 ]; then
        for f in "$T"/n*/agent.log; do [ -f "$f" ] && { echo "--- $f (tail) ---"; tail -n 25 "$f"; }; done
    fi
    for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
    # podman leaves its (empty) cgroup parent behind; an exited container's cgroup may take a moment to empty.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        find /sys/fs/cgroup -mindepth 1 -maxdepth 4 -depth -type d \( -name "$TAG" -o -path "*/$TAG/*" \) \
            -exec rmdir {} + 2>/dev/null
        [ -z "$(find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -type d -name "$TAG")" ] && break
        sleep 0.3
    done
    [ -z "${KEEP:-}" ] && rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

netns() { ip netns add "$1"; NSS+=("$1"); ip -n "$1" link set lo up; }
in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" -- "$@"; }
# wait_for DESCRIPTION SECONDS COMMAND...: retries until the command succeeds.
wait_for() {
    local what=$1 secs=$2; shift 2
    local end=$(( $(date +%s) + secs ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt $end ] || fail "timed out after ${secs}s waiting for: $what"
        sleep 0.2
    done
}

nodes_part() {
    if [ -z "${WASMCNI_BIN:-}" ] || [ -z "${AGENT_BIN:-}" ]; then
        echo "==> building the plugin and the agent (debug)"
        cargo build --locked -q -p wasmcni -p wasmcni-agent
    fi
    [ -f target/wasm32-wasip2/release/wasmcni_test_hook.wasm ] ||
        cargo build --locked -q -p wasmcni-test-hook --target wasm32-wasip2 --release
    local WASMCNI=${WASMCNI_BIN:-$REPO/target/debug/wasmcni} AGENT=${AGENT_BIN:-$REPO/target/debug/wasmcni-agent}
    # Copies without debug info (a cargo build meanwhile cannot change them): install hashes the binary it
    # copies, and 380 MB of debug build through an unoptimized sha256 on three nodes at once takes a while.
    strip -o "$T/wasmcni" "$WASMCNI"
    strip -o "$T/wasmcni-agent" "$AGENT"
    WASMCNI=$T/wasmcni AGENT=$T/wasmcni-agent
    local PORT=9755 U=$TAG-u UP=$TAG-up

    echo "==> underlay $U (bridge), upstream $UP (192.168.77.100, fd77::100), nodes $TAG-n1..3 (dual-stack)"
    netns "$U"
    ip -n "$U" link add br0 type bridge
    ip -n "$U" link set br0 up
    attach() {   # attach NS IP IP6: eth0 in NS, its peer a port of the underlay's bridge
        ip -n "$U" link add "p-$1" type veth peer name eth0 netns "$TAG-$1"
        ip -n "$U" link set "p-$1" master br0 up
        ip -n "$TAG-$1" addr add "$2/24" dev eth0
        ip -n "$TAG-$1" addr add "$3/64" dev eth0 nodad
        ip -n "$TAG-$1" link set eth0 up
    }
    netns "$UP"
    attach up 192.168.77.100 fd77::100
    for i in 1 2 3; do
        netns "$TAG-n$i"
        attach "n$i" "192.168.77.$i" "fd77::$i"
    done

    # The nodes file: what `kubectl get nodes -o json` would list (podCIDRs, InternalIP).
    write_nodes() {
        local items=() i
        for i in "$@"; do
            items+=("{\"metadata\":{\"name\":\"n$i\"},\"spec\":{\"podCIDRs\":[\"10.77.$((i-1)).0/24\",\"fd00:77:0:$i::/64\"]},\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"192.168.77.$i\"},{\"type\":\"InternalIP\",\"address\":\"fd77::$i\"},{\"type\":\"Hostname\",\"address\":\"n$i\"}]}}")
        done
        local IFS=,
        echo "[${items[*]}]" > "$T/nodes.json.tmp" && mv "$T/nodes.json.tmp" "$T/nodes.json"
    }
    write_nodes 1 2 3

    # The hook set the agents ship: the test hook dropping TCP port 9 towards the cluster's pods.
    mkdir -p "$T/hooks-image"
    cp target/wasm32-wasip2/release/wasmcni_test_hook.wasm "$T/hooks-image/guard.wasm"
    cat > "$T/hooks-image/hooks.toml" <<EOF
[[hooks]]
name = "guard"
module = "guard.wasm"
stages = ["post-add"]
[hooks.config]
behavior = "drop-port"
peer = "10.77.0.0/16"
port = 9
EOF

    echo "==> one agent per node netns (offline on the nodes file, resync 1s, only CAP_NET_ADMIN)"
    for i in 1 2 3; do
        local d=$T/n$i
        mkdir -p "$d"
        cat > "$d/template.conflist" <<EOF
{"cniVersion": "1.1.0", "name": "k8snet", "plugins": [{"type": "wasmcni", "ipMasq": true,
  "logFile": "$d/plugin.log", "logLevel": "info", "runDir": "$d/run", "ipam": {"type": "builtin", "dataDir": "$d/ipam"}}]}
EOF
        # setpriv: the bounding set keeps NET_ADMIN alone, so the agent (and the install and hook
        # validation it execs) run with exactly the capability the DaemonSet grants.
        nsenter --net="/run/netns/$TAG-n$i" -- setpriv --inh-caps=-all --ambient-caps=-all --bounding-set=-all,+net_admin -- "$AGENT" --node-name "n$i" \
            --nodes-file "$T/nodes.json" --resync 1s --listen "127.0.0.1:$PORT" --plugin "$WASMCNI" \
            --cluster-cidr 10.77.0.0/16,fd00:77::/48 --template "$d/template.conflist" \
            --cni-bin-dir "$d/opt/cni/bin" --cni-conf-dir "$d/etc/cni/net.d" --hook-dir "$d/etc/wasmcni/hooks" \
            --state-dir "$d/var/lib/cni/wasmcni" --run-dir "$d/run/wasmcni" --hooks-image-dir "$T/hooks-image" \
            > "$d/agent.log" 2>&1 &
        PIDS+=($!)
    done
    http() { in_ns "$TAG-n$1" bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT && printf 'GET $2 HTTP/1.0\r\n\r\n' >&3 && cat <&3"; }
    ready() { http "$1" /readyz | grep -q '^ready'; }
    for i in 1 2 3; do wait_for "agent n$i ready" 90 ready $i; done
    check "three agents ready (/readyz 200)"
    for pid in "${PIDS[@]}"; do
        # The agent itself (setpriv execs it): effective capabilities = NET_ADMIN (bit 12) only.
        local eff
        eff=$(awk '/^CapEff/ {print $2}' "/proc/$pid/status")
        [ "$((16#$eff))" = $((1 << 12)) ] || fail "agent $pid has capabilities $eff, expected only NET_ADMIN (0x1000)"
    done
    check "each agent runs with CapEff=0x1000 (NET_ADMIN only), and install + hook validation worked under it"

    for i in 1 2 3; do
        local d=$T/n$i conf=$T/n$i/etc/cni/net.d/10-wasmcni.conflist
        [ -x "$d/opt/cni/bin/wasmcni" ] || fail "n$i: no plugin binary installed"
        python3 - "$conf" "$i" "$d" <<'EOF' || fail "n$i: conflist not as expected: $(cat "$conf")"
import json, sys
conf, i, d = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = json.load(open(conf))["plugins"][0]
assert p["ipam"]["ranges"] == [[{"subnet": f"10.77.{i-1}.0/24"}], [{"subnet": f"fd00:77:0:{i}::/64"}]], p["ipam"]
assert p["nonMasqueradeCIDRs"] == ["10.77.0.0/16", "fd00:77::/48"], p
assert p["hooksManifest"] == f"{d}/etc/wasmcni/hooks/current/hooks.toml", p
EOF
        [ -L "$d/etc/wasmcni/hooks/current" ] || fail "n$i: no hooks/current link"
        ls "$d/var/lib/cni/wasmcni/hook-cache/"*.cwasm >/dev/null 2>&1 || fail "n$i: the hook set was not precompiled"
    done
    check "each node: binary, conflist (its podCIDR, nonMasqueradeCIDRs, hooksManifest -> current), hooks precompiled"

    routes() { ip -n "$TAG-n$1" route show proto 87; ip -n "$TAG-n$1" -6 route show proto 87; }
    for i in 1 2 3; do
        local want=4 got
        got=$(routes $i | wc -l)
        [ "$got" = $want ] || fail "n$i has $got routes of proto 87, expected $want: $(routes $i)"
        local have
        have=$(routes $i)   # grep -q on a pipe would stop the writer early (SIGPIPE under pipefail)
        for j in 1 2 3; do
            [ $i = $j ] && continue
            grep -q "^10.77.$((j-1)).0/24 via 192.168.77.$j dev eth0" <<<"$have" || fail "n$i: no route to n$j's pods: $have"
            grep -q "^fd00:77:0:$j::/64 via fd77::$j dev eth0" <<<"$have" || fail "n$i: no IPv6 route to n$j's pods: $have"
        done
    done
    check "each node routes the other two nodes' pod CIDRs, IPv4 and IPv6, via their InternalIPs (proto 87)"

    echo "==> one pod per node, added by the plugin with the conflist the agent installed"
    declare -gA POD_IP POD_IP6
    for i in 1 2 3; do
        netns "$TAG-p$i"
        local out
        out=$(in_ns "$TAG-n$i" "$T/n$i/opt/cni/bin/wasmcni" exec add --netns "/run/netns/$TAG-p$i" \
              --config "$T/n$i/etc/cni/net.d/10-wasmcni.conflist" --container-id "pod$i" 2>"$T/n$i/add.err") ||
            fail "ADD on n$i failed: $(cat "$T/n$i/add.err")"
        read -r "POD_IP[$i]" "POD_IP6[$i]" < <(python3 -c 'import json,sys; print(*(ip["address"].split("/")[0] for ip in json.load(sys.stdin)["ips"][:2]))' <<<"$out")
        [[ ${POD_IP[$i]} == 10.77.$((i-1)).* ]] || fail "pod on n$i got ${POD_IP[$i]}"
        [[ ${POD_IP6[$i]} == fd00:77:0:$i::* ]] || fail "pod on n$i got IPv6 ${POD_IP6[$i]}"
    done
    check "pods: n1 ${POD_IP[1]} ${POD_IP6[1]}, n2 ${POD_IP[2]} ${POD_IP6[2]}, n3 ${POD_IP[3]} ${POD_IP6[3]}"

    for pair in "1 2" "2 3" "3 1"; do
        set -- $pair
        in_ns "$TAG-p$1" ping -c1 -W2 "${POD_IP[$2]}" >/dev/null || fail "pod on n$1 cannot ping pod on n$2 (${POD_IP[$2]})"
        in_ns "$TAG-p$1" ping -6 -c1 -W2 "${POD_IP6[$2]}" >/dev/null || fail "pod on n$1 cannot ping pod on n$2 over IPv6 (${POD_IP6[$2]})"
    done
    check "cross-node ping, IPv4 and IPv6: n1 -> n2, n2 -> n3, n3 -> n1"

    # seen_by NS PORT FROM-NS DST [-6]: the source address a TCP server in NS sees for a connection from FROM-NS.
    seen_by() {
        local log=$T/seen.$RANDOM
        in_ns "$1" timeout 5 nc ${5:-} -n -v -l -p "$2" >/dev/null 2>"$log" &
        local srv=$!
        sleep 0.3
        echo hi | in_ns "$3" timeout 3 nc -w 2 -N "$4" "$2" >/dev/null 2>&1 || true
        wait $srv 2>/dev/null || true
        sed -n 's/^Connection received on \([^ ]*\) .*/\1/p' "$log"
    }
    local src
    src=$(seen_by "$TAG-p2" 8080 "$TAG-p1" "${POD_IP[2]}")
    [ -n "$src" ] || fail "the pod on n2 got no connection from the pod on n1"
    # Recorded rather than fatal, so one run also shows everything after it; the script still fails.
    if [ "$src" = "${POD_IP[1]}" ]; then
        check "pod on n2 sees the n1 pod's own address ${POD_IP[1]} (cluster CIDR not masqueraded)"
    else
        FAILURES+=("the pod on n2 saw $src, not ${POD_IP[1]}: pod-to-pod traffic was masqueraded (does the plugin honour nonMasqueradeCIDRs?)")
        echo "  FAILED: ${FAILURES[-1]}"
    fi
    src=$(seen_by "$UP" 8080 "$TAG-p3" 192.168.77.100)
    [ "$src" = 192.168.77.3 ] || fail "upstream saw '$src' for the n3 pod, expected the node's 192.168.77.3 (masquerade)"
    check "upstream sees the n3 pod as its node 192.168.77.3 (egress masqueraded)"
    src=$(seen_by "$TAG-p2" 8082 "$TAG-p1" "${POD_IP6[2]}" -6)
    [ "$src" = "${POD_IP6[1]}" ] || fail "over IPv6 the pod on n2 saw '$src', not ${POD_IP6[1]} (cluster CIDR masqueraded?)"
    check "over IPv6 the pod on n2 sees the n1 pod's own address ${POD_IP6[1]}"
    src=$(seen_by "$UP" 8083 "$TAG-p3" fd77::100 -6)
    [ "$src" = fd77::3 ] || fail "upstream saw '$src' for the n3 pod over IPv6, expected the node's fd77::3 (masquerade)"
    check "upstream sees the n3 pod as its node fd77::3 over IPv6 (egress masqueraded)"

    tcp_ok() { in_ns "$TAG-p$1" timeout 3 nc -z -w 2 "${POD_IP[$2]}" "$3"; }
    in_ns "$TAG-p2" timeout 20 nc -k -l -p 9 >/dev/null 2>&1 &
    local l9=$!
    in_ns "$TAG-p2" timeout 20 nc -k -l -p 8081 >/dev/null 2>&1 &
    local l8081=$!
    sleep 0.3
    tcp_ok 1 2 8081 || fail "n1 pod cannot reach n2 pod's port 8081"
    ! tcp_ok 1 2 9 || fail "the hook's drop rule (tcp/9 to 10.77.0.0/16) did not stop n1 pod -> n2 pod port 9"
    kill $l9 $l8081 2>/dev/null || true
    check "hook drop rule holds across nodes: n1 pod -> n2 pod tcp/9 dropped, tcp/8081 open"

    ip -n "$TAG-n1" route del 10.77.1.0/24
    wait_for "n1's route to n2 to come back" 10 bash -c "ip -n $TAG-n1 route show proto 87 | grep -q '^10.77.1.0/24'"
    check "a route deleted by hand on n1 is back within a resync"

    write_nodes 1 2
    for i in 1 2; do
        wait_for "n$i to drop the route to n3" 10 bash -c "! ip -n $TAG-n$i route show proto 87 | grep -q '^10.77.2.0/24'"
        wait_for "n$i to drop the IPv6 route to n3" 10 bash -c "! ip -n $TAG-n$i -6 route show proto 87 | grep -q '^fd00:77:0:3::/64'"
        [ "$(routes $i | wc -l)" = 2 ] || fail "n$i: $(routes $i)"
    done
    ip -n "$TAG-n1" route show | grep -q "^192.168.77.0/24 dev eth0" || fail "n1 lost its own connected route"
    check "n3 removed from the nodes file: n1 and n2 removed their routes to it, and nothing else"

    local good
    good=$(readlink "$T/n1/etc/wasmcni/hooks/current")
    printf 'not a component' > "$T/hooks-image/guard.wasm.new" && mv "$T/hooks-image/guard.wasm.new" "$T/hooks-image/guard.wasm"
    wait_for "n1 to reject the broken hook set" 15 bash -c "grep -q 'event=hooks.rejected' $T/n1/agent.log"
    [ "$(readlink "$T/n1/etc/wasmcni/hooks/current")" = "$good" ] || fail "a bad hook set replaced the good one"
    http 1 /readyz | grep -q "rejected (the previous set stays)" || fail "readyz does not report the rejected set: $(http 1 /readyz)"
    http 1 /metrics | grep -q '^wasmcni_agent_hook_set_rejected_total [1-9]' || fail "metrics do not count the rejected set"
    netns "$TAG-p1b"
    in_ns "$TAG-n1" "$T/n1/opt/cni/bin/wasmcni" exec add --netns "/run/netns/$TAG-p1b" \
        --config "$T/n1/etc/cni/net.d/10-wasmcni.conflist" --container-id pod1b >"$T/add1b.out" 2>&1 ||
        fail "an ADD after the rejected set failed (the node should still run the good set): $(cat "$T/add1b.out")"
    check "a broken hook set is refused (log, readyz, metric), 'current' stays on $good, ADD still works"
    http 1 /metrics | grep -q '^wasmcni_agent_routes_managed 2' || fail "metrics: $(http 1 /metrics)"
    check "metrics: routes managed, hook set info, rejected count"

    for i in 1 2 3; do
        in_ns "$TAG-n$i" "$T/n$i/opt/cni/bin/wasmcni" exec del --netns "/run/netns/$TAG-p$i" \
            --config "$T/n$i/etc/cni/net.d/10-wasmcni.conflist" --container-id "pod$i" >/dev/null 2>&1 || fail "DEL on n$i"
    done
    in_ns "$TAG-n1" "$T/n1/opt/cni/bin/wasmcni" exec del --netns "/run/netns/$TAG-p1b" \
        --config "$T/n1/etc/cni/net.d/10-wasmcni.conflist" --container-id pod1b >/dev/null 2>&1 || fail "DEL pod1b"
    check "pods deleted"
}

deploy_part() {
    echo "==> deploy/: kubernetes-validate --strict (Kubernetes $K8S_VERSIONS)"
    command -v kubernetes-validate >/dev/null 2>&1 || fail "kubernetes-validate is missing (scripts/deps.sh installs it)"
    local f v
    for v in $K8S_VERSIONS; do
        for f in deploy/*.yaml; do
            kubernetes-validate --strict -k "$v" "$f" >"$T/validate.out" 2>&1 ||
                { cat "$T/validate.out"; fail "$f does not validate against Kubernetes $v"; }
        done
    done
    check "$(ls deploy/*.yaml | wc -l) manifests valid against $K8S_VERSIONS: $(cd deploy && echo *.yaml)"

    echo "==> static binaries (x86_64-unknown-linux-musl) and the image FROM scratch"
    cargo build --locked -q --target x86_64-unknown-linux-musl -p wasmcni -p wasmcni-agent
    local out=target/x86_64-unknown-linux-musl/debug
    for b in wasmcni wasmcni-agent; do
        file "$out/$b" | grep -q "statically linked\|static-pie linked" || fail "$out/$b is not static: $(file "$out/$b")"
    done
    check "static: $(file -b "$out/wasmcni" | cut -d, -f1-2)"
    mkdir -p "$T/ctx" "$T/podman/tmp" "$T/podman/net.d"
    # Without debug info: the image needs the code, not 400 MB of DWARF.
    strip -o "$T/ctx/wasmcni" "$out/wasmcni"
    strip -o "$T/ctx/wasmcni-agent" "$out/wasmcni-agent"
    cp deploy/Containerfile "$T/ctx/"
    PODMAN_ROOT=$T/podman
    cat > "$T/podman/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$T/podman/root"
runroot = "$T/podman/runroot"
EOF
    cat > "$T/podman/containers.conf" <<EOF
[containers]
# podman asks for nofile and nproc limits above the hard ones, which root may not raise here.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "$T/podman/libpod"
[network]
# Its own (empty) CNI config dir: with the default one, podman's CNI backend creates libcni's lock file in
# the host's /etc/cni/net.d even for a build that uses no network.
network_config_dir = "$T/podman/net.d"
EOF
    podman_cmd build -q -f "$T/ctx/Containerfile" -t localhost/wasmcni:test "$T/ctx" >"$T/build.out" 2>&1 ||
        { cat "$T/build.out"; fail "podman build"; }
    check "podman build: localhost/wasmcni:test from scratch"

    # The DaemonSet's init container as the manifest has it (command, no capabilities, read-only root, its
    # hostPath mounts), with a temp dir standing in for the node's filesystem.
    mkdir -p "$T/node"
    python3 tests/k8s/init_container.py deploy/30-daemonset.yaml "$T/node" > "$T/init.sh" ||
        fail "cannot read the init container from deploy/30-daemonset.yaml"
    local MOUNTS="" DIRS="" ENTRY="" CMD=""
    . "$T/init.sh"
    [ -n "$ENTRY" ] && [ -n "$DIRS" ] || fail "no init container command in deploy/30-daemonset.yaml"
    mkdir -p $DIRS
    local run="podman_cmd run --rm --network none --read-only --cap-drop=all --cgroup-parent /$TAG"
    $run $MOUNTS --entrypoint "$ENTRY" localhost/wasmcni:test $CMD >"$T/run.out" 2>&1 || { cat "$T/run.out"; fail "the init container failed"; }
    [ -x "$T/node/opt/cni/bin/wasmcni" ] || fail "install did not put the binary on the node: $(cat "$T/run.out")"
    cmp -s "$T/node/opt/cni/bin/wasmcni" "$T/ctx/wasmcni" || fail "the installed binary is not the image's"
    [ -f "$T/node/var/lib/cni/wasmcni/install.json" ] || fail "no install record"
    [ ! -e "$T/node/etc/cni/net.d" ] || fail "the init container must not write a conflist"
    check "init container ($ENTRY $CMD; no capabilities, read-only root): /opt/cni/bin/wasmcni and the install record landed"
    $run $MOUNTS --entrypoint "$ENTRY" localhost/wasmcni:test $CMD >"$T/run2.out" 2>&1
    grep -q "nothing changed" "$T/run2.out" || fail "a second run changed something: $(cat "$T/run2.out")"
    check "second run: $(tail -n1 "$T/run2.out")"

    # What the agent then runs in the image: the whole install with a hook set, compiled by the static build.
    mkdir -p "$T/node/etc/cni/net.d" "$T/node/etc/wasmcni/hooks" "$T/hookset"
    cp target/wasm32-wasip2/release/wasmcni_test_hook.wasm "$T/hookset/guard.wasm"
    printf '[[hooks]]\nname = "guard"\nmodule = "guard.wasm"\nstages = ["post-add"]\n' > "$T/hookset/hooks.toml"
    $run $MOUNTS -v "$T/node/etc/cni/net.d:/etc/cni/net.d" -v "$T/node/etc/wasmcni/hooks:/etc/wasmcni/hooks" \
        -v "$T/hookset:/hookset:ro" --entrypoint /usr/local/bin/wasmcni localhost/wasmcni:test \
        install --pod-cidr 10.77.0.0/24 --cluster-cidr 10.77.0.0/16 --hooks /hookset \
        >"$T/run3.out" 2>&1 || { cat "$T/run3.out"; fail "the full install in the image failed"; }
    grep -q '"nonMasqueradeCIDRs"' "$T/node/etc/cni/net.d/10-wasmcni.conflist" || fail "no conflist: $(cat "$T/run3.out")"
    ls "$T/node/var/lib/cni/wasmcni/hook-cache/"*.cwasm >/dev/null 2>&1 || fail "the hook was not precompiled: $(cat "$T/run3.out")"
    check "full install in the image: conflist, hook copied and precompiled by the static binary ($(grep '^hook guard' "$T/run3.out"))"
    $run localhost/wasmcni:test --version >"$T/ver.out" 2>&1 ||
        { cat "$T/ver.out"; fail "the agent does not start in the image"; }
    check "the image's entrypoint is the agent: $(cat "$T/ver.out")"
}

# podman with private storage and config in $T, in a mount namespace of its own whose /run and /var/lib
# are overlays writing into $T and whose /dev/shm is a tmpfs: whatever podman writes outside its configured
# dirs (runc state, its lock, caches) never reaches the host (the approach of tests/podman/run.sh).
podman_cmd() {
    PODMAN_ROOT=$PODMAN_ROOT unshare --mount --propagation private -- bash -c '
        set -e
        for d in /run /var/lib; do
            up=$PODMAN_ROOT/ovl${d//\//_}; mkdir -p "$up/u" "$up/w"
            mount -n -t overlay overlay -o "lowerdir=$d,upperdir=$up/u,workdir=$up/w" "$d"
        done
        mount -n -t tmpfs tmpfs /dev/shm
        export CONTAINERS_STORAGE_CONF=$PODMAN_ROOT/storage.conf CONTAINERS_CONF=$PODMAN_ROOT/containers.conf TMPDIR=$PODMAN_ROOT/tmp
        exec podman --cgroup-manager cgroupfs "$@"' podman "$@"
}

# The agent's k8s-openapi feature (v1_34), and the newest schemas kubernetes-validate has.
K8S_VERSIONS="1.34.0 1.37.0"
case $ONLY in
    --nodes-only) nodes_part ;;
    --deploy-only) deploy_part ;;
    *) nodes_part; deploy_part ;;
esac
[ ${#FAILURES[@]} = 0 ] || fail "${#FAILURES[@]} check(s) failed: ${FAILURES[*]}"
echo "PASS ($(( $(date +%s) - START ))s)"
