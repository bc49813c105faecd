//! Bridge mode with the reference `bridge` plugin's fields: bridge name, isGateway, isDefaultGateway,
//! hairpinMode, promiscMode, forceAddress; racing ADDs creating the bridge.

use serde_json::{json, Value};

use crate::support::*;

fn bridge_conf(node: &Node, bridge: &str, extra: Value) -> Value {
    let mut conf = node.conf("1.1.0");
    conf["mode"] = json!("bridge");
    conf["bridge"] = json!(bridge);
    for (k, v) in extra.as_object().unwrap() {
        conf[k] = v.clone();
    }
    conf
}

/// Unique per test process and call: bridge names are node-wide and at most 15 characters.
fn bridge_name(tag: &str) -> String {
    format!("wb{}{tag}", std::process::id() % 100000)
}

#[test]
fn bridged_pods_share_the_bridge_reach_each_other_and_upstream() {
    let node = Node::new("10.70.0.0/24");
    let br = bridge_name("a");
    let conf = bridge_conf(&node, &br, json!({"isDefaultGateway": true, "hairpinMode": true, "promiscMode": true}));
    let (a, b) = (Ns::new("ba"), Ns::new("bb"));
    let ra = node.cni("ADD", &conf, "br-a", Some(&a.path()), "eth0").ok().clone();
    let rb = node.cni("ADD", &conf, "br-b", Some(&b.path()), "eth0").ok().clone();

    // The result lists the bridge, the node end and the pod end; the address belongs to the pod end.
    let names: Vec<&str> = ra["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{ra}");
    assert_eq!(names[0], br);
    assert_eq!(names[2], "eth0");
    assert_eq!(ra["ips"][0]["interface"], 2);
    let bridge_link = node.ns.ip(&["-d", "link", "show", &br]);
    assert!(bridge_link.contains(&format!("link/ether {}", ra["interfaces"][0]["mac"].as_str().unwrap())), "{bridge_link}");
    assert!(bridge_link.contains("PROMISC") && bridge_link.contains("bridge"), "{bridge_link}");

    // isGateway (implied): the gateway with the subnet prefix on the bridge; the veths are its ports.
    let br_addr = node.ns.ip(&["-o", "addr", "show", "dev", &br]);
    assert!(br_addr.contains("inet 10.70.0.1/24"), "{br_addr}");
    for res in [&ra, &rb] {
        let host = res["interfaces"][1]["name"].as_str().unwrap();
        let port = node.ns.ip(&["-d", "link", "show", host]);
        assert!(port.contains(&format!("master {br}")), "{port}");
        assert!(port.contains("hairpin on"), "hairpinMode: {port}");
    }
    // Pod: subnet route (shared segment) and the default route (isDefaultGateway).
    let routes = a.ip(&["route", "show"]);
    assert!(routes.contains("10.70.0.0/24 dev eth0"), "{routes}");
    assert!(routes.contains("default via 10.70.0.1 dev eth0"), "{routes}");
    assert!(!node.ns.ip(&["route", "show"]).contains(&format!("{} dev wcni", pod_ip(&ra))), "no /32 host routes in bridge mode");

    assert!(a.ping(&pod_ip(&rb)) && b.ping(&pod_ip(&ra)), "bridged pods cannot reach each other");
    assert!(a.ping("10.70.0.1"), "pod cannot reach the gateway on the bridge");
    assert_eq!(node.upstream_sees(&a).ip().to_string(), NODE_UPLINK_IP, "masquerade in bridge mode");

    let mut check = conf.clone();
    check["prevResult"] = ra.clone();
    node.cni("CHECK", &check, "br-a", Some(&a.path()), "eth0").succeeded();
    // Detached from the bridge by hand: the pod is cut off, and CHECK says why.
    let host_a = ra["interfaces"][1]["name"].as_str().unwrap();
    node.ns.ip(&["link", "set", host_a, "nomaster"]);
    let err = node.cni("CHECK", &check, "br-a", Some(&a.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains(&format!("host veth {host_a} is not a port of bridge {br}")), "{err}");
    node.ns.ip(&["link", "set", host_a, "master", &br]);
    node.cni("CHECK", &check, "br-a", Some(&a.path()), "eth0").succeeded();

    node.cni("DEL", &conf, "br-a", Some(&a.path()), "eth0").succeeded();
    node.cni("DEL", &conf, "br-b", Some(&b.path()), "eth0").succeeded();
    node.assert_clean();
    // Like the reference plugin, the bridge is the network's and stays.
    assert!(node.ns.links().contains(&br));
}

#[test]
fn many_adds_racing_to_create_the_bridge_all_succeed() {
    let node = Node::new("10.71.0.0/24");
    let br = bridge_name("r");
    let conf = bridge_conf(&node, &br, json!({"isGateway": true}));
    let pods: Vec<Ns> = (0..16).map(|i| Ns::new(&format!("r{i}"))).collect();
    for r in node.add_concurrently(&conf, &pods, "race") {
        r.ok();
    }
    assert_eq!(node.ns.links().lines().filter(|l| l.contains(&format!(": {br}:"))).count(), 1);
    let br_addr = node.ns.ip(&["-o", "-4", "addr", "show", "dev", &br]);
    assert_eq!(br_addr.lines().count(), 1, "one gateway address: {br_addr}");
    for pod in &pods {
        assert!(pod.ping("10.71.0.1"), "a pod cannot reach the gateway");
        // isGateway without isDefaultGateway: no default route.
        assert!(!pod.ip(&["route", "show"]).contains("default"));
    }
    for (i, pod) in pods.iter().enumerate() {
        node.cni("DEL", &conf, &format!("race{i}"), Some(&pod.path()), "eth0").succeeded();
    }
    node.assert_clean();
}

#[test]
fn force_address_replaces_a_foreign_bridge_address_and_without_it_add_fails() {
    let node = Node::new("10.72.0.0/24");
    let br = bridge_name("f");
    node.ns.ip(&["link", "add", &br, "type", "bridge"]);
    node.ns.ip(&["addr", "add", "10.72.0.99/24", "dev", &br]);
    let pod = Ns::new("force");

    let conf = bridge_conf(&node, &br, json!({"isGateway": true}));
    let err = node.cni("ADD", &conf, "force", Some(&pod.path()), "eth0").err().clone();
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("10.72.0.99/24") && msg.contains("forceAddress"), "{err}");
    node.assert_clean();

    let conf = bridge_conf(&node, &br, json!({"isGateway": true, "forceAddress": true}));
    node.cni("ADD", &conf, "force", Some(&pod.path()), "eth0").ok();
    let addrs = node.ns.ip(&["-o", "-4", "addr", "show", "dev", &br]);
    assert!(addrs.contains("10.72.0.1/24") && !addrs.contains("10.72.0.99"), "{addrs}");
    assert!(pod.ping("10.72.0.1"));
    node.cni("DEL", &conf, "force", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn without_is_gateway_the_bridge_has_no_address_and_a_non_bridge_name_is_refused() {
    let node = Node::new("10.73.0.0/24");
    let br = bridge_name("n");
    let conf = bridge_conf(&node, &br, json!({}));
    let (a, b) = (Ns::new("na"), Ns::new("nb"));
    let ra = node.cni("ADD", &conf, "ng-a", Some(&a.path()), "eth0").ok().clone();
    let rb = node.cni("ADD", &conf, "ng-b", Some(&b.path()), "eth0").ok().clone();
    assert!(node.ns.ip(&["-o", "-4", "addr", "show", "dev", &br]).is_empty(), "the bridge got an address");
    assert!(!a.ip(&["route", "show"]).contains("default"), "no isDefaultGateway, no ipam route: no default route");
    assert!(ra["routes"].as_array().is_none_or(|r| r.is_empty()), "{ra}");
    assert!(a.ping(&pod_ip(&rb)), "pods on one bridge reach each other at L2");
    node.cni("DEL", &conf, "ng-a", Some(&a.path()), "eth0").succeeded();
    node.cni("DEL", &conf, "ng-b", Some(&b.path()), "eth0").succeeded();

    let not_bridge = bridge_name("d");
    node.ns.ip(&["link", "add", &not_bridge, "type", "veth", "peer", "name", "notabridge"]);
    let conf = bridge_conf(&node, &not_bridge, json!({}));
    let err = node.cni("ADD", &conf, "ng-c", Some(&a.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("is not a bridge"), "{err}");
    node.assert_clean();

    // Bridge-only fields on a ptp network are a config error, not silently ignored.
    let mut ptp = node.conf("1.1.0");
    ptp["hairpinMode"] = json!(true);
    let err = node.cni("ADD", &ptp, "ng-d", Some(&a.path()), "eth0").err().clone();
    assert_eq!(err["code"], 7, "{err}");
}

#[test]
fn a_default_route_from_ipam_routes_is_installed_without_is_default_gateway() {
    // podman's stock bridge config: isGateway, and the default route comes from ipam.routes.
    let node = Node::new("10.74.0.0/24");
    let br = bridge_name("i");
    let mut conf = bridge_conf(&node, &br, json!({"isGateway": true}));
    conf["ipam"]["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    let pod = Ns::new("iroute");
    let res = node.cni("ADD", &conf, "iroute", Some(&pod.path()), "eth0").ok().clone();
    let routes = pod.ip(&["route", "show"]);
    assert!(routes.contains("default via 10.74.0.1 dev eth0"), "{routes}");
    assert_eq!(node.upstream_sees(&pod).ip().to_string(), NODE_UPLINK_IP);
    let mut check = conf.clone();
    check["prevResult"] = res;
    node.cni("CHECK", &check, "iroute", Some(&pod.path()), "eth0").succeeded();
    node.cni("DEL", &conf, "iroute", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn dual_stack_bridged_pods_reach_each_other_and_the_gateway_over_v6() {
    let node = Node::new("10.75.0.0/24");
    let br = bridge_name("6");
    let mut conf = bridge_conf(&node, &br, json!({"isDefaultGateway": true}));
    conf["ipam"] = json!({"type": "builtin", "dataDir": node.ipam_dir(), "ranges": [[{"subnet": "10.75.0.0/24"}], [{"subnet": "fd00:75::/64"}]]});
    let (a, b) = (Ns::new("b6a"), Ns::new("b6b"));
    let ra = node.cni("ADD", &conf, "b6-a", Some(&a.path()), "eth0").ok().clone();
    let rb = node.cni("ADD", &conf, "b6-b", Some(&b.path()), "eth0").ok().clone();
    let v6 = |r: &Value| r["ips"][1]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let br_addr = node.ns.ip(&["-6", "-o", "addr", "show", "dev", &br]);
    assert!(br_addr.contains("inet6 fd00:75::1/64") && !br_addr.contains("tentative"), "{br_addr}");
    assert!(a.ip(&["-6", "route", "show"]).contains("default via fd00:75::1 dev eth0"));
    assert!(a.ping(&v6(&rb)) && b.ping(&v6(&ra)), "bridged pods cannot reach each other over IPv6");
    assert!(a.ping("fd00:75::1"), "bridged pod cannot reach its v6 gateway");
    assert_eq!(node.upstream_sees_at(&a, UPSTREAM_IP6).ip().to_string(), NODE_UPLINK_IP6);
    node.cni("DEL", &conf, "b6-a", Some(&a.path()), "eth0").succeeded();
    node.cni("DEL", &conf, "b6-b", Some(&b.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn racing_adds_with_force_address_replace_a_foreign_address_once_and_all_succeed() {
    let node = Node::new("10.76.0.0/24");
    let br = bridge_name("x");
    node.ns.ip(&["link", "add", &br, "type", "bridge"]); // left down: the racing ADDs bring it up
    node.ns.ip(&["addr", "add", "10.76.0.99/24", "dev", &br]);
    let conf = bridge_conf(&node, &br, json!({"isGateway": true, "forceAddress": true}));
    let pods: Vec<Ns> = (0..8).map(|i| Ns::new(&format!("x{i}"))).collect();
    for r in node.add_concurrently(&conf, &pods, "force") {
        r.ok();
    }
    let addrs = node.ns.ip(&["-o", "-4", "addr", "show", "dev", &br]);
    assert!(addrs.contains("10.76.0.1/24") && !addrs.contains("10.76.0.99"), "{addrs}");
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
    for (i, pod) in pods.iter().enumerate() {
        assert!(pod.ping("10.76.0.1"));
        node.cni("DEL", &conf, &format!("force{i}"), Some(&pod.path()), "eth0").succeeded();
    }
    node.assert_clean();
}
