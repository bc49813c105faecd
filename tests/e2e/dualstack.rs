//! IPv6 and dual-stack: one address per range set, DAD off, v6 routes, ip6tables masquerade, both families in
//! the result; and the `ipRanges` capability.

use serde_json::{json, Value};

use crate::support::*;

fn dual_stack_conf(node: &Node, version: &str, v4: &str, v6: &str) -> Value {
    let mut conf = node.conf(version);
    conf["ipam"] = json!({"type": "builtin", "dataDir": node.ipam_dir(),
        "ranges": [[{"subnet": v4}], [{"subnet": v6}]]});
    conf
}

fn ips_of(result: &Value) -> Vec<String> {
    result["ips"].as_array().unwrap().iter().map(|i| i["address"].as_str().unwrap().to_string()).collect()
}

#[test]
fn dual_stack_pods_get_both_families_and_reach_each_other_and_upstream_over_v6() {
    let node = Node::new("10.63.0.0/24");
    let conf = dual_stack_conf(&node, "1.1.0", "10.63.0.0/24", "fd00:63::/64");
    let (a, b) = (Ns::new("d6a"), Ns::new("d6b"));
    let ra = node.cni("ADD", &conf, "ds-a", Some(&a.path()), "eth0").ok().clone();
    let rb = node.cni("ADD", &conf, "ds-b", Some(&b.path()), "eth0").ok().clone();

    // Both families in the result, each with its gateway and default route.
    let ips = ips_of(&ra);
    assert_eq!(ips.len(), 2, "{ra}");
    assert!(ips[0].starts_with("10.63.0.") && ips[0].ends_with("/24"), "{ips:?}");
    assert!(ips[1].starts_with("fd00:63::") && ips[1].ends_with("/64"), "{ips:?}");
    assert_eq!(ra["ips"][1]["gateway"], "fd00:63::1");
    let dsts: Vec<&str> = ra["routes"].as_array().unwrap().iter().map(|r| r["dst"].as_str().unwrap()).collect();
    assert!(dsts.contains(&"0.0.0.0/0") && dsts.contains(&"::/0"), "{dsts:?}");

    // The v6 address is usable at once: not tentative, DAD off on the pod interface.
    let v6_a = ips[1].split('/').next().unwrap().to_string();
    let v6_b = ips_of(&rb)[1].split('/').next().unwrap().to_string();
    let addrs = a.ip(&["-6", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addrs.contains(&format!("inet6 {v6_a}/64")), "{addrs}");
    assert!(!addrs.contains("tentative"), "an address is still in DAD when ADD returned: {addrs}");
    // Its link-local address is ours (the kernel makes none: it would be tentative), derived from the MAC.
    let mac = ra["interfaces"][1]["mac"].as_str().unwrap();
    let link_local = wasmcni::netlink::link_local(wasmcni::netaddr::parse_mac(mac).unwrap());
    assert!(addrs.contains(&format!("inet6 {link_local} scope link")), "{addrs}");
    assert!(a.ip(&["-d", "link", "show", "dev", "eth0"]).contains("addrgenmode none"));
    let routes6 = a.ip(&["-6", "route", "show"]);
    assert!(routes6.contains("default via fd00:63::1 dev eth0"), "{routes6}");
    assert!(!routes6.contains("fd00:63::/64"), "routed mode must not add a subnet route: {routes6}");
    let host = ra["interfaces"][0]["name"].as_str().unwrap();
    let host_addr = node.ns.ip(&["-6", "-o", "addr", "show", "dev", host]);
    assert!(host_addr.contains("inet6 fd00:63::1/128"), "{host_addr}");
    let host_mac = wasmcni::netaddr::parse_mac(ra["interfaces"][0]["mac"].as_str().unwrap()).unwrap();
    assert!(host_addr.contains(&format!("inet6 {} scope link", wasmcni::netlink::link_local(host_mac))), "{host_addr}");
    assert!(!host_addr.contains("tentative"), "{host_addr}");
    assert_eq!(String::from_utf8_lossy(&node.ns.exec(&["cat", "/proc/sys/net/ipv6/conf/all/forwarding"]).stdout).trim(), "1");

    // Pods reach each other over both families, and upstream over v6 through ip6tables masquerade.
    assert!(a.ping(&v6_b), "pod a cannot reach pod b over IPv6");
    assert!(b.ping(&v6_a), "pod b cannot reach pod a over IPv6");
    assert!(a.ping(&pod_ip(&rb)), "pod a cannot reach pod b over IPv4");
    assert!(a.ping("fd00:63::1"), "pod cannot reach its v6 gateway");
    let seen = node.upstream_sees_at(&a, UPSTREAM_IP6);
    assert_eq!(seen.ip().to_string(), NODE_UPLINK_IP6, "upstream must see the node's v6 address (masquerade)");
    assert_eq!(node.upstream_sees(&a).ip().to_string(), NODE_UPLINK_IP);
    assert!(node.masquerades("ds-a", &v6_a), "{:?}", node.rules_of("ds-a"));

    // CHECK knows both families; removing the v6 default route by hand is named.
    let mut check = conf.clone();
    check["prevResult"] = ra.clone();
    node.cni("CHECK", &check, "ds-a", Some(&a.path()), "eth0").succeeded();
    a.ip(&["-6", "route", "del", "default"]);
    let err = node.cni("CHECK", &check, "ds-a", Some(&a.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("::/0"), "{err}");

    node.cni("DEL", &conf, "ds-a", Some(&a.path()), "eth0").succeeded();
    node.cni("DEL", &conf, "ds-b", Some(&b.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn ipv6_only_pod_and_legacy_result_shape() {
    let node = Node::new("10.64.0.0/24");
    let mut conf = node.conf("0.2.0");
    conf["ipam"] = json!({"type": "builtin", "dataDir": node.ipam_dir(), "subnet": "fd00:64::/120"});
    let pod = Ns::new("v6only");
    let res = node.cni("ADD", &conf, "v6only", Some(&pod.path()), "eth0").ok().clone();
    // 0.2.0 carries the v6 address under ip6, and no ip4.
    assert!(res.get("ip4").is_none(), "{res}");
    let ip = res["ip6"]["ip"].as_str().unwrap().split('/').next().unwrap().to_string();
    assert!(ip.starts_with("fd00:64::"), "{res}");
    assert!(pod.ping("fd00:64::1"), "pod cannot reach its v6 gateway");
    assert_eq!(node.upstream_sees_at(&pod, UPSTREAM_IP6).ip().to_string(), NODE_UPLINK_IP6);
    node.cni("DEL", &conf, "v6only", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn dual_stack_legacy_result_carries_ip4_and_ip6() {
    let node = Node::new("10.65.0.0/24");
    let conf = dual_stack_conf(&node, "0.2.0", "10.65.0.0/24", "fd00:65::/64");
    let pod = Ns::new("ds02");
    let res = node.cni("ADD", &conf, "ds02", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(res["ip4"]["gateway"], "10.65.0.1", "{res}");
    assert_eq!(res["ip6"]["gateway"], "fd00:65::1", "{res}");
    node.cni("DEL", &conf, "ds02", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn ip_ranges_capability_overrides_the_configured_ranges() {
    let node = Node::new("10.66.0.0/24");
    let mut conf = node.conf("1.1.0");
    conf["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.66.5.0/24", "rangeStart": "10.66.5.50", "rangeEnd": "10.66.5.60"}]]});
    let pod = Ns::new("ipr");
    let res = node.cni("ADD", &conf, "ipr", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(res["ips"][0]["address"], "10.66.5.50/24", "{res}");
    assert_eq!(res["ips"][0]["gateway"], "10.66.5.1");
    assert!(pod.ping("10.66.5.1"));
    assert_eq!(node.reserved_ips(), vec!["10.66.5.50".to_string()]);
    node.cni("DEL", &conf, "ipr", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn ranges_only_from_the_runtime_and_runtime_v4_with_configured_v6() {
    let node = Node::new("10.67.0.0/24");
    // No ranges in the config at all: the runtime's ipRanges are the only ones.
    let mut conf = node.conf("1.1.0");
    conf["ipam"] = json!({"type": "builtin", "dataDir": node.ipam_dir()});
    let mut add = conf.clone();
    add["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.67.9.0/24"}]]});
    let pod = Ns::new("rtonly");
    let res = node.cni("ADD", &add, "rtonly", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(res["ips"][0]["address"], "10.67.9.2/24", "{res}");
    // STATUS and GC carry no runtimeConfig: they still work from the data dir.
    node.cni("STATUS", &conf, "", None, "").succeeded();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "rtonly", "ifname": "eth0"}]);
    node.cni("GC", &gc, "", None, "").succeeded();
    assert_eq!(node.reserved_ips(), vec!["10.67.9.2".to_string()]);
    node.cni("DEL", &conf, "rtonly", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();

    // Runtime IPv4 in front of a configured IPv6 set: dual-stack.
    let mut both = node.conf("1.1.0");
    both["ipam"] = json!({"type": "builtin", "dataDir": node.ipam_dir(), "ranges": [[{"subnet": "fd00:67::/64"}], [{"subnet": "10.67.0.0/24"}]]});
    both["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.67.8.0/24"}]]});
    let res = node.cni("ADD", &both, "rtv4", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(ips_of(&res), vec!["10.67.8.2/24".to_string(), "fd00:67::2/64".to_string()]);
    assert!(pod.ping("fd00:67::1") && pod.ping("10.67.8.1"));
    node.cni("DEL", &both, "rtv4", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}
