#!/usr/bin/env bash
# Interop test: Debian 12's podman 4.3 (CNI network backend) as a real CNI client of wasmcni.
#
# Runs as root. Nothing touches the machine's own network: the script creates a "node" network namespace
# and runs podman (hence wasmcni, portmap, conmon and the containers' netns) inside it, in a private mount
# namespace where everything podman writes outside its configured dirs (/var/lib/cni/results,
# /var/lib/containers/cache, /run/netns/netns-*, /run/runc, the shm lock) lands on overlays/tmpfs of the
# test's own. Names carry $$ so it can run beside other tests; a trap removes everything, also on failure,
# and the end compares the host's links, iptables, netns, mounts and cgroups with a snapshot of the start.
#
# Checks: two containers on the wasmcni network get addresses, host veths, records and reservations; they
# ping each other; `-p 8080:80` works through the chained portmap plugin (from outside the node, from the
# node itself and from a pod); `podman rm -f` leaves nothing in the node; nothing is left on the host.
#
# Usage: tests/podman/run.sh            (WASMCNI_BIN overrides the binary, default target/debug/wasmcni;
#        WASMCNI_TEST_BACKEND=nftables tests the nftables backend, iptables by default)
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
WASMCNI_BIN=${WASMCNI_BIN:-$REPO/target/debug/wasmcni}
BACKEND=${WASMCNI_TEST_BACKEND:-iptables}
NET=wcpod                       # the CNI network name podman sees (conflist "name")
SUBNET_RE='^10\.89\.0\.'        # ipam subnet 10.89.0.0/24, gateway 10.89.0.1
NODE_IP=192.0.2.1               # the node's address on its link to the client netns: the published port's
CLIENT_IP=192.0.2.2             # target, from the client and from the node itself

fail() { echo "FAIL: $*" >&2; exit 1; }
check() { echo "  ok: $*"; }
has() { grep -qF -- "$2" <<<"$1"; }   # has TEXT NEEDLE (no `cmd | grep -q`: SIGPIPE under pipefail)

# ---------------------------------------------------------------------------------------------------------
# Inner part: runs inside the node netns and a private mount namespace (the outer part starts it below).
# ---------------------------------------------------------------------------------------------------------
if [ "${1:-}" = --inner ]; then
    exec 7<"/run/netns/$CLIENT"   # keep the client netns reachable once /run/netns is shadowed below
    # Shadow the host's /var/lib and /run with overlays whose writes go to $T, hide the host's /run/netns
    # (podman puts each container's netns there) and give podman a private /dev/shm for its lock file.
    # mount -n: no /run/mount/utab on the host.
    for d in /run /var/lib; do
        up=$T/ovl${d//\//_}; mkdir -p "$up/u" "$up/w"
        mount -n -t overlay overlay -o "lowerdir=$d,upperdir=$up/u,workdir=$up/w" "$d"
    done
    mount -n -t tmpfs tmpfs /run/netns
    mount -n -t tmpfs tmpfs /dev/shm
    export CONTAINERS_CONF=$T/containers.conf CONTAINERS_STORAGE_CONF=$T/storage.conf TMPDIR=$T/tmp
    # The rule comment of the reference plugins, as iptables-save prints it: name: \"wcpod\" id: \"<id>\"
    tag() { printf 'name: \\"%s\\"%s' "$NET" "${1:+ id: \\\"$1\\\"}"; }
    run() { podman run -d --cgroup-parent "/$CGROUP" --network "$NET" "$@" >/dev/null || fail "podman run $* failed"; }
    trap 'podman rm -af -t 0 >/dev/null 2>&1 || true' EXIT   # on failure too: conmon and the pods must go

    echo "==> image: busybox-static rootfs imported as localhost/wcbusybox"
    tar -C "$T/rootfs" -c . | podman import -q - localhost/wcbusybox:latest >/dev/null
    has "$(podman network ls --format '{{.Name}}')" "$NET" || fail "podman does not see network $NET"

    echo "==> podman run: c1, c2 (sleepers) and web (-p 8080:80, nc replying 'hi')"
    run --name c1 localhost/wcbusybox sleep 600
    run --name c2 localhost/wcbusybox sleep 600
    run --name web -p 8080:80 localhost/wcbusybox sh -c 'while true; do echo hi | nc -l -p 80; done'

    echo "==> 1. addresses, host veths, records and reservations"
    declare -A IP ID
    for c in c1 c2 web; do
        ID[$c]=$(podman inspect -f '{{.Id}}' "$c")
        IP[$c]=$(podman inspect -f "{{(index .NetworkSettings.Networks \"$NET\").IPAddress}}" "$c")
        [[ ${IP[$c]} =~ $SUBNET_RE ]] || fail "$c got address '${IP[$c]}', not in 10.89.0.0/24"
        has "$(podman exec "$c" ip -4 addr show eth0)" "inet ${IP[$c]}/" || fail "$c's eth0 lacks ${IP[$c]}"
        has "$(podman exec "$c" ip -4 route)" "default via 10.89.0.1 dev eth0" || fail "$c has no default route"
        # The host veth name is deterministic: wcni + 11 hex of sha256("<container id>/<ifname>").
        veth=wcni$(printf '%s/eth0' "${ID[$c]}" | sha256sum | cut -c1-11)
        ip link show "$veth" >/dev/null 2>&1 || fail "no host veth $veth for $c in the node netns"
        [ -f "$T/state/attachments/$NET/${ID[$c]}@eth0.json" ] || fail "no attachment record for $c"
        grep -q "${ID[$c]}" "$T/ipam/$NET/${IP[$c]}" 2>/dev/null || fail "no reservation of ${IP[$c]} for $c"
        if [ "$BACKEND" = nftables ]; then
            # The pod's address is an element of its network's masquerade set; `masq` sends that set on.
            table=$(nft list table inet wasmcni)
            el="${IP[$c]} comment \"wasmcni $NET/${ID[$c]}/eth0\""
            set=$(awk -v el="$el" '$1=="set"{s=$2} $1=="map"||$1=="chain"{s=""} s!="" && index($0, el){print s; exit}' <<<"$table")
            [[ $set == s4-* ]] || fail "no masquerade element for $c: $table"
            has "$table" "@$set jump m${set#s}" || fail "no rule in chain masq for $set: $table"
        else
            rules=$(iptables-save -t nat | grep -F -- "$(tag "${ID[$c]}")" || true)
            has "$rules" "-j MASQUERADE" || fail "no masquerade rule commented for $c: $(iptables-save -t nat)"
        fi
        check "$c: ${IP[$c]} on eth0 (default via 10.89.0.1), host veth $veth, record, reservation, masquerade chain"
    done
    [ "$(ip -o link show | grep -c ': wcni')" = 3 ] || fail "expected 3 wcni links: $(ip -o link show)"
    [ "${IP[c1]}" != "${IP[c2]}" ] || fail "c1 and c2 share ${IP[c1]}"

    echo "==> 2. pod to pod"
    podman exec c1 ping -c1 -W2 "${IP[c2]}" >/dev/null || fail "c1 cannot ping c2 (${IP[c2]})"
    check "c1 -> c2 ${IP[c2]}"
    podman exec c2 ping -c1 -W2 "${IP[c1]}" >/dev/null || fail "c2 cannot ping c1 (${IP[c1]})"
    check "c2 -> c1 ${IP[c1]}"

    echo "==> 3. published port through portmap: $NODE_IP:8080 -> web ${IP[web]}:80"
    # Connect to a non-loopback node address (portmap's DNAT of 127.0.0.1 would need route_localnet):
    # from the client netns (PREROUTING), from the node itself (OUTPUT) and from a pod (hairpin: portmap
    # marks connections from the pod subnet for masquerade).
    fetch() {   # fetch NC-COMMAND...; retry: the listener loop may be between two nc runs
        local r=""
        for _ in 1 2 3 4 5; do
            r=$("$@" -w 3 "$NODE_IP" 8080 </dev/null 2>/dev/null || true)
            [ "$r" = hi ] && break; sleep 0.5
        done
        echo "$r"
    }
    nat=$(iptables-save -t nat)
    has "$nat" "dnat $(tag "${ID[web]}")" && has "$nat" "--dport 8080 -j DNAT --to-destination ${IP[web]}:80" ||
        fail "no portmap DNAT to ${IP[web]}:80 for web's id: $nat"
    check "portmap's DNAT chain for web: 8080 -> ${IP[web]}:80"
    for from in "client netns" "node itself" "pod c1"; do
        case $from in
            client*) reply=$(fetch nsenter --net=/proc/$$/fd/7 busybox nc) ;;
            node*) reply=$(fetch busybox nc) ;;
            pod*) reply=$(fetch podman exec c1 nc) ;;
        esac
        [ "$reply" = hi ] || fail "no 'hi' from $NODE_IP:8080 in the $from (got '$reply')"
        check "reply '$reply' from $NODE_IP:8080, connecting from the $from"
    done

    echo "==> 4. podman rm -f: everything wasmcni and portmap made is gone"
    podman rm -f -t 0 c1 c2 web >/dev/null
    left=$(ip -o link show | grep ': wcni' || true)
    [ -z "$left" ] || fail "host veths left in the node netns: $left"
    check "no wcni links in the node netns"
    left=$(iptables-save | grep -F "$(tag)" || true)
    [ -z "$left" ] || fail "iptables rules left: $left"
    check "no iptables rules or chains commented name: \"$NET\""
    # (The network's masquerade set, its rule and chain stay for its next pod; GC removes them.)
    left=$(nft list table inet wasmcni 2>/dev/null | grep -E "wasmcni $NET/|chain [ah]-" || true)
    [ -z "$left" ] || fail "nftables elements or chains left: $left"
    check "no nftables elements or per-pod chains in table inet wasmcni"
    left=$(ls "$T/ipam/$NET" | grep -vE '^(lock|last_reserved_ip\..*)$' || true)
    [ -z "$left" ] || fail "reservations left in ipam dataDir: $left"
    check "no reservations in $T/ipam/$NET (only: $(ls "$T/ipam/$NET" | tr '\n' ' '))"
    left=$(find "$T/state" -type f ! -path "$T/state/locks/*")   # locks/<network>: the ADD/GC lock
    [ -z "$left" ] || fail "records left in stateDir: $left"
    check "no records in stateDir"
    left=$(ls /run/netns)
    [ -z "$left" ] || fail "podman left netns files: $left"
    check "no container netns left in /run/netns"
    exit 0
fi

# ---------------------------------------------------------------------------------------------------------
# Outer part: dependencies, config files, the node netns, then the inner part, cleanup and leftover checks.
# ---------------------------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || fail "needs root"
[ -x "$WASMCNI_BIN" ] || fail "no wasmcni binary at $WASMCNI_BIN (set WASMCNI_BIN or build it)"
need=()
for pkg in podman runc busybox-static containernetworking-plugins iptables; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")   # busybox-static: the image needs a static busybox
done
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

START=$(date +%s)
NODE=wcpod-node-$$ CLIENT=wcpod-client-$$
CGROUP=wcpod-$$   # podman's cgroup parent (runc, cgroupfs) in every hierarchy, removed at the end
T=""
our_cgroups() { find /sys/fs/cgroup -mindepth 1 -maxdepth 3 -depth -type d \( -name "$CGROUP" -o -path "*/$CGROUP/*" \); }
our_pids() { { our_cgroups | sed 's|$|/cgroup.procs|' | xargs -r cat; ip netns pids "$NODE"; } 2>/dev/null | sort -u; }
# podman leaves its (empty) cgroup parent behind. An exited conmon stays a zombie, holding its cgroup, until
# pid 1 reaps it, which can take a few seconds here: retry. With "kill", also kill what still runs, until
# nothing has run and no cgroup has come back twice in a row (a dying podman may still start a runc).
remove_cgroups() {
    local pids calm=0
    for _ in $(seq 50); do
        pids=$(our_pids)
        [ "${1:-}" = kill ] && [ -n "$pids" ] && kill -9 $pids 2>/dev/null
        our_cgroups | xargs -r rmdir 2>/dev/null
        if [ -z "$(our_cgroups)" ] && { [ "${1:-}" != kill ] || [ -z "$pids" ]; }; then
            calm=$((calm + 1)); [ $calm -ge 2 ] && return 0
        else calm=0; fi
        sleep 0.2
    done
    return 1
}
cleanup() {
    rc=$?
    set +e
    if [ $rc != 0 ] && [ -f "$T/wasmcni.log" ]; then echo "--- wasmcni log (tail) ---"; tail -n 40 "$T/wasmcni.log"; fi
    # Whatever still runs in our cgroups (conmon, container processes) or in the node netns (the inner part,
    # podman) was started by this test: normally the inner part's own trap removed it all (`podman rm -af`).
    remove_cgroups kill || echo "WARNING: could not remove cgroups $(our_cgroups)" >&2
    ip netns del "$NODE" 2>/dev/null
    ip netns del "$CLIENT" 2>/dev/null
    [ -n "$T" ] && [ -z "${KEEP:-}" ] && rm -rf "$T"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
T=$(mktemp -d /tmp/wasmcni-podman.XXXXXX)

# What the host looks like before: its links and iptables; its netns, mounts, top-level cgroups, what is in
# /run and /var/lib and podman's lock in /dev/shm (where podman would put netns, CNI cache, storage, lock),
# without other tests' namespaces (cargo's wt<pid>-…, this script's other runs), which come and go meanwhile.
snapshot() {
    { ip -o link show | sed 's/^[0-9]*: //; s/ state .*//; s/ link\/.*//'; iptables -S; iptables -t nat -S; nft list ruleset
      { ip netns list; awk '{print $2}' /proc/self/mounts; find /sys/fs/cgroup -mindepth 1 -maxdepth 2 -type d
        ls -A /run /var/lib; ls /dev/shm | grep libpod || true
      } | grep -vE '(^|/)(wt[0-9]+-|wcpod-(node-|client-)?[0-9]+)'
    } | sort
}
snapshot > "$T/host.before"

echo "==> node netns $NODE, temp dir $T"
ip netns add "$NODE"
ip -n "$NODE" link set lo up
# A client netns behind a veth plays the outside world for the published port (no dummy module here).
ip netns add "$CLIENT"
ip -n "$NODE" link add wcpod-up type veth peer name eth0 netns "$CLIENT"
ip -n "$NODE" addr add "$NODE_IP/24" dev wcpod-up
ip -n "$NODE" link set wcpod-up up
ip -n "$CLIENT" addr add "$CLIENT_IP/24" dev eth0
ip -n "$CLIENT" link set eth0 up
ip -n "$CLIENT" link set lo up

# CNI bin dir: wasmcni under its own name (runtimes find plugins by "type") beside Debian's portmap. A hard
# link where possible: a cargo build meanwhile replaces target/debug/wasmcni, not the inode this run uses.
mkdir -p "$T/cni-bin" "$T/net.d" "$T/root" "$T/runroot" "$T/tmp" "$T/libpod" "$T/state" "$T/ipam" \
         "$T/rootfs/bin" "$T/rootfs/etc" "$T/rootfs/tmp"
bin=$(readlink -f "$WASMCNI_BIN")
ln "$bin" "$T/cni-bin/wasmcni" 2>/dev/null || ln -s "$bin" "$T/cni-bin/wasmcni"
ln -s /usr/lib/cni/portmap "$T/cni-bin/portmap"
cat > "$T/net.d/$NET.conflist" <<EOF
{"cniVersion":"1.0.0","name":"$NET","plugins":[
  {"type":"wasmcni","ipMasq":true,"firewallBackend":"$BACKEND","stateDir":"$T/state","runDir":"$T/run","logFile":"$T/wasmcni.log","logLevel":"debug",
   "ipam":{"type":"builtin","subnet":"10.89.0.0/24","dataDir":"$T/ipam"}},
  {"type":"portmap","capabilities":{"portMappings":true}}]}
EOF
# runc: Debian's crun refuses this machine's hybrid cgroups; cgroupfs: no systemd here. Ulimits: podman
# asks for nofile and nproc 1048576, above the hard limits, which root may not raise without
# CAP_SYS_RESOURCE; and podman itself lowers its nproc hard limit to 32768, so ask for small fixed ones.
# NET_RAW: busybox ping needs a raw socket.
cat > "$T/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
default_capabilities = ["CHOWN","DAC_OVERRIDE","FOWNER","FSETID","KILL","NET_BIND_SERVICE","NET_RAW",
                        "SETFCAP","SETGID","SETPCAP","SETUID","SYS_CHROOT"]
[network]
network_backend = "cni"
cni_plugin_dirs = ["$T/cni-bin"]
network_config_dir = "$T/net.d"
default_network = "$NET"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = "$T/libpod"
static_dir = "$T/root/libpod"
volume_path = "$T/root/volumes"
image_copy_tmp_dir = "$T/tmp"
EOF
cat > "$T/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$T/root"
runroot = "$T/runroot"
EOF
# The image: busybox-static and the applets the test runs.
cp /bin/busybox "$T/rootfs/bin/busybox"
for a in sh nc ip ping sleep cat echo hostname ls; do ln -s busybox "$T/rootfs/bin/$a"; done

export T NET CLIENT CGROUP BACKEND
# In the background and waited for, so that INT/TERM run the cleanup trap at once.
unshare --mount --propagation private -- nsenter --net="/run/netns/$NODE" -- bash "$0" --inner &
wait $!

echo "==> 5. nothing left on the host"
remove_cgroups || fail "cgroups $(our_cgroups | tr '\n' ' ')still busy, pids: $(our_pids | tr '\n' ' ')"
left=$(ip netns pids "$NODE")
[ -z "$left" ] || fail "processes still run in the node netns: $(echo $left)"
ip netns del "$NODE"; ip netns del "$CLIENT"
snapshot > "$T/host.after"
diff "$T/host.before" "$T/host.after" || fail "the host's links, iptables, netns, mounts or cgroups changed (diff above)"
check "host links, iptables (filter, nat), netns, mounts, cgroups and /var/lib unchanged"
echo "PASS ($(( $(date +%s) - START ))s)"
