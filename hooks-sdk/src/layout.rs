//! How wasmcni lays out an ADD result's interfaces: the one definition the plugin, its fixture runner and
//! the SDK's test builders all use, so a hook that reads `ips[].iface` sees in its tests what it will see
//! on the node. Generic over the interface type, since each of them has its own.

/// The interfaces in result order, as the reference plugins list them (the bridge, when there is one, then
/// the node end of the veth, then the pod end), and the index of the pod's interface, which every pod
/// address refers to.
pub fn interfaces<T>(bridge: Option<T>, host: T, pod: T) -> (Vec<T>, u32) {
    let mut out: Vec<T> = bridge.into_iter().collect();
    out.push(host);
    out.push(pod);
    let pod_index = (out.len() - 1) as u32;
    (out, pod_index)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pod_is_last() {
        assert_eq!(super::interfaces(None, "veth", "eth0"), (vec!["veth", "eth0"], 1));
        assert_eq!(super::interfaces(Some("cni0"), "veth", "eth0"), (vec!["cni0", "veth", "eth0"], 2));
    }
}
