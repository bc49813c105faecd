use nix::errno::Errno;
use serde_json::json;

use super::{pos, Node, POD};
use crate::netlink::fake::NODE;
use crate::ops::record::Record;
use crate::ops::undo::Undo;

#[test]
fn add_wires_a_routed_pod_and_records_every_step() {
    let node = Node::new();
    let result = node.add("c1").unwrap();
    assert_eq!(result.ips[0].address.to_string(), "10.9.0.2/24");
    assert_eq!(result.ips[0].interface, Some(1), "host veth, then the pod: the pod is interfaces[1]");
    assert_eq!(result.interfaces[1].mtu, Some(1400));
    assert_eq!(result.routes[0].dst.to_string(), "0.0.0.0/0");
    let pod = node.kernel.space(POD).unwrap();
    let eth0 = pod.links.iter().find(|(l, _)| l.name == "eth0").unwrap();
    assert!(eth0.0.up);
    assert_eq!(eth0.1, vec!["10.9.0.2/24".parse().unwrap()]);
    let host = node.kernel.space(NODE).unwrap();
    let veth = host.links.iter().find(|(l, _)| l.name.starts_with("wcni")).unwrap();
    assert_eq!(veth.0.alias.as_deref(), Some("wasmcni net/c1/eth0"));
    assert_eq!(veth.1, vec!["10.9.0.1/32".parse().unwrap()], "the gateway as a host address");
    assert!(host.routes.iter().any(|r| r.dst.to_string() == "10.9.0.2/32" && r.oif == Some(veth.0.index)));
    assert_eq!(host.sysctls.get("ipv4/ip_forward").map(String::as_str), Some("1"));
    let rec = Record::load(&node.records()[0]).unwrap().unwrap();
    assert!(rec.complete);
    let kinds: Vec<&str> = rec
        .undo
        .iter()
        .map(|s| match s {
            Undo::ReleaseIps { .. } => "release",
            Undo::Firewall { .. } => "firewall",
            Undo::DeleteHostLink { .. } => "link",
            Undo::DelegatedIpam { .. } => "ipam",
        })
        .collect();
    assert_eq!(kinds, vec!["release", "firewall", "link"]);
    assert_eq!(node.reserved(), vec!["10.9.0.2"]);
}

#[test]
fn the_pod_comes_up_only_after_its_rules_are_applied() {
    let node = Node::new();
    node.add("c1").unwrap();
    let calls = node.kernel.calls();
    let applied = pos(&calls, "firewall: apply");
    let veth = pos(&calls, "create veth");
    let up = pos(&calls, &format!("{POD}: set eth0 up"));
    let route = pos(&calls, &format!("{POD}: add route"));
    assert!(applied < up && up < route, "apply, then up, then routes: {calls:#?}");
    // The pod is addressed while down, under the firewall's work.
    assert!(veth < pos(&calls, &format!("{POD}: add address")) && pos(&calls, &format!("{POD}: add address")) < up);
}

#[test]
fn the_record_lists_the_undo_of_the_kernel_work_before_it_starts() {
    let node = Node::new();
    // Fails the veth: the record with its intent was already written (and is removed by the unwind).
    node.kernel.fail_once("node: create veth", Errno::ENOMEM);
    let err = node.add("c1").unwrap_err();
    assert_eq!(err.code(), 100, "{err}");
    let calls = node.kernel.calls();
    assert!(pos(&calls, "firewall: apply") < pos(&calls, "create veth"));
    node.assert_clean();
}

/// A failure at each kernel step unwinds everything ADD had done.
#[test]
fn a_failure_at_every_step_unwinds_everything() {
    for step in [
        "node: create veth",
        &format!("{POD}: look up eth0"),
        &format!("{POD}: no auto link-local"),
        &format!("{POD}: add address fe80::"),
        &format!("{POD}: set lo up"),
        &format!("{POD}: add address"),
        "node: add address",
        "node: add route",
        "node: enable v4 forwarding",
        &format!("{POD}: set eth0 up"),
        &format!("{POD}: add route 10.9.0.1/32"),
        &format!("{POD}: add route 0.0.0.0/0"),
    ] {
        let node = Node::new();
        node.kernel.fail_once(step, Errno::EIO);
        let conf = if step.contains("link-local") || step.contains("fe80") {
            let mut c = node.conf();
            c["ipam"] = json!({"type": "builtin", "dataDir": node.tmp.path().join("ipam"), "ranges": [[{"subnet": "10.9.0.0/24"}], [{"subnet": "fd09::/64"}]]});
            c
        } else {
            node.conf()
        };
        let err = node.add_with(&conf, "c1").expect_err(step);
        assert_eq!(err.code(), 100, "{step}: {err}");
        node.assert_clean();
    }
}

#[test]
fn a_firewall_failure_unwinds_the_wiring_and_releases_the_address() {
    let node = Node::new();
    node.firewall.fail_once("apply");
    let err = node.add("c1").unwrap_err();
    assert_eq!(err.code(), 103, "{err}");
    node.assert_clean();
    node.add("c1").unwrap();
    assert_eq!(node.reserved().len(), 1);
}

#[test]
fn unwinding_removes_links_and_rules_before_it_releases_addresses() {
    let node = Node::new();
    node.kernel.fail_once(&format!("{POD}: add route 0.0.0.0/0"), Errno::EIO);
    node.firewall.fail_once("teardown");
    let err = node.add("c1").unwrap_err();
    // The rules could not be removed: the address and the record stay for the runtime's DEL.
    assert_eq!(err.code(), 100);
    assert!(err.details().contains("remove the iptables rules of c1/eth0"), "{}", err.details());
    assert_eq!(node.reserved(), vec!["10.9.0.2"]);
    assert_eq!(node.records().len(), 1);
    node.del("c1").unwrap();
    node.assert_clean();
}

#[test]
fn a_veth_name_taken_by_something_else_is_left_alone() {
    let node = Node::new();
    let name = crate::naming::host_veth_name("c1", "eth0");
    node.deps().kernel.node().create_bridge(&name, None, [2, 0, 0, 0, 0, 1], false).unwrap();
    let err = node.add("c1").unwrap_err();
    assert!(err.to_string().contains(&format!("link {name} already exists on the node")), "{err}");
    assert!(node.node_links().contains(&name), "a link this ADD did not create stays");
    assert!(node.reserved().is_empty() && node.records().is_empty());
}

#[test]
fn a_duplicate_add_is_refused_and_touches_nothing() {
    let node = Node::new();
    node.add("c1").unwrap();
    let before = std::fs::read(&node.records()[0]).unwrap();
    node.kernel.clear_calls();
    let err = node.add("c1").unwrap_err();
    assert_eq!(err.code(), 102, "{err}");
    assert_eq!(std::fs::read(&node.records()[0]).unwrap(), before);
    assert!(!node.kernel.calls().iter().any(|c| c.contains("delete") || c.contains("create")), "{:?}", node.kernel.calls());
    assert_eq!(node.reserved(), vec!["10.9.0.2"]);
}

#[test]
fn an_add_after_a_killed_add_first_undoes_what_that_one_did() {
    let node = Node::new();
    node.add("c1").unwrap();
    // As a killed ADD leaves it: the record without `complete`.
    let path = node.records()[0].clone();
    let mut rec = Record::load(&path).unwrap().unwrap();
    rec.complete = false;
    rec.write(&node.tmp.path().join("state")).unwrap();
    node.add("c1").unwrap();
    assert_eq!(node.reserved().len(), 1, "the old reservation was released: {:?}", node.reserved());
    assert!(Record::load(&path).unwrap().unwrap().complete);
    node.del("c1").unwrap();
    node.assert_clean();
}

#[test]
fn a_host_route_that_exists_already_is_explained() {
    let node = Node::new();
    node.kernel.fail_once("node: add route 10.9.0.2/32", Errno::EEXIST);
    let err = node.add("c1").unwrap_err();
    assert!(err.to_string().contains("a route to 10.9.0.2/32 already exists on the node"), "{err}");
    node.assert_clean();
}

#[test]
fn masquerade_leaves_the_pod_subnet_and_the_cluster_alone() {
    let node = Node::new();
    let mut conf = node.conf();
    conf["nonMasqueradeCIDRs"] = json!(["10.0.0.0/8"]);
    conf["clusterCIDR"] = json!("172.16.0.0/12,fd00::/8");
    node.add_with(&conf, "c1").unwrap();
    let state = node.firewall.state();
    let rules = state.applied.values().next().unwrap();
    let masq = rules.masquerade.as_ref().unwrap();
    assert_eq!(masq.sources, vec![("10.9.0.2".parse().unwrap(), "10.9.0.0/24".parse().unwrap())]);
    let except: Vec<String> = masq.except.iter().map(ToString::to_string).collect();
    assert_eq!(except, vec!["10.0.0.0/8", "172.16.0.0/12", "fd00::/8"]);
    assert!(!rules.match_by_address);
    assert_eq!(rules.host_veth, crate::naming::host_veth_name("c1", "eth0"));
}

#[test]
fn without_ipmasq_and_hooks_the_firewall_is_not_touched() {
    let node = Node::new();
    let mut conf = node.conf();
    conf["ipMasq"] = json!(false);
    node.add_with(&conf, "c1").unwrap();
    assert!(node.firewall.state().calls.is_empty(), "{:?}", node.firewall.state().calls);
    node.del_with(&conf, "c1").unwrap();
    node.assert_clean();
}

#[test]
fn ipv6_pods_get_link_locals_without_dad_before_their_links_come_up() {
    let node = Node::new();
    let mut conf = node.conf();
    conf["ipam"] = json!({"type": "builtin", "dataDir": node.tmp.path().join("ipam"), "subnet": "fd09::/64"});
    let res = node.add_with(&conf, "c6").unwrap();
    assert_eq!(res.ips[0].address.to_string(), "fd09::2/64");
    let calls = node.kernel.calls();
    // The kernel makes none (it would be tentative); ours, from each end's MAC, is added without DAD.
    let pod_mac = node.kernel.space(POD).unwrap().links.iter().find(|(l, _)| l.name == "eth0").map(|(l, _)| l.mac.clone()).unwrap();
    let pod_ll = crate::netlink::link_local(crate::netaddr::parse_mac(&pod_mac).unwrap());
    assert!(pos(&calls, &format!("{POD}: no auto link-local on eth0")) < pos(&calls, &format!("{POD}: add address {pod_ll} to eth0")));
    assert!(pos(&calls, &format!("{POD}: add address {pod_ll} to eth0")) < pos(&calls, &format!("{POD}: set eth0 up")));
    let host = crate::naming::host_veth_name("c6", "eth0");
    assert!(pos(&calls, &format!("node: no auto link-local on {host}")) < pos(&calls, &format!("node: add address fe80::")));
    assert!(pos(&calls, "node: add address fe80::") < pos(&calls, &format!("node: set {host} up")));
    assert!(!calls.iter().any(|c| c.contains("disable dad")), "no /proc/sys write per pod: {calls:#?}");
    assert_eq!(node.kernel.space(NODE).unwrap().sysctls.get("ipv6/conf/all/forwarding").map(String::as_str), Some("1"));
}

#[test]
fn bridge_mode_lays_out_bridge_port_and_gateway() {
    let node = Node::new();
    let mut conf = node.conf();
    conf["mode"] = json!("bridge");
    conf["bridge"] = json!("br9");
    conf["isDefaultGateway"] = json!(true);
    conf["hairpinMode"] = json!(true);
    let res = node.add_with(&conf, "b1").unwrap();
    let names: Vec<&str> = res.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names[0], "br9");
    assert_eq!(res.ips[0].interface, Some(2), "the pod is the third interface");
    let host = node.kernel.space(NODE).unwrap();
    let (bridge, addrs) = host.links.iter().find(|(l, _)| l.name == "br9").unwrap();
    assert_eq!(addrs, &vec!["10.9.0.1/24".parse().unwrap()], "the gateway with the subnet's prefix");
    let veth = host.links.iter().find(|(l, _)| l.name.starts_with("wcni")).unwrap();
    assert_eq!(veth.0.controller, Some(bridge.index));
    assert!(veth.1.is_empty() && host.routes.is_empty(), "no host address or route in bridge mode");
    assert!(node.kernel.calls().iter().any(|c| c.contains("set hairpin on wcni")));
    assert!(node.firewall.state().applied.values().next().unwrap().match_by_address);
    // The bridge outlives its pods, like the reference plugin's.
    node.del_with(&conf, "b1").unwrap();
    assert!(node.node_links().contains(&"br9".to_string()));
}

#[test]
fn bridge_mode_refuses_a_foreign_address_unless_forced_and_a_non_bridge_link() {
    let node = Node::new();
    let mut conf = node.conf();
    conf["mode"] = json!("bridge");
    conf["isGateway"] = json!(true);
    node.add_with(&conf, "b1").unwrap();
    node.del_with(&conf, "b1").unwrap();
    let deps = node.deps();
    let br = deps.kernel.node().link("cni0").unwrap().unwrap();
    deps.kernel.node().delete_address(br.index, "10.9.0.1/24".parse().unwrap()).unwrap();
    deps.kernel.node().add_address(br.index, "10.9.0.200/24".parse().unwrap(), false).unwrap();
    let err = node.add_with(&conf, "b2").unwrap_err();
    assert!(err.to_string().contains("already has 10.9.0.200/24") && err.to_string().contains("forceAddress"), "{err}");
    assert!(node.reserved().is_empty() && node.records().is_empty());
    assert_eq!(node.node_links(), vec!["lo", "uplink", "cni0"], "only the network's bridge stays");
    conf["forceAddress"] = json!(true);
    node.add_with(&conf, "b2").unwrap();
    assert_eq!(deps.kernel.node().addresses(br.index).unwrap(), vec!["10.9.0.1/24".parse().unwrap()]);
    node.del_with(&conf, "b2").unwrap();

    conf["bridge"] = json!("uplink");
    let err = node.add_with(&conf, "b3").unwrap_err();
    assert!(err.to_string().contains("is not a bridge"), "{err}");
}

#[test]
fn a_missing_netns_is_code_3_before_anything_is_reserved() {
    let node = Node::new();
    node.kernel.remove_netns(POD);
    let err = node.add("c1").unwrap_err();
    assert_eq!(err.code(), 3, "{err}");
    assert!(node.reserved().is_empty() && node.records().is_empty());
}
