//! A failure in the middle of ADD unwinds every step it had done; errors carry the spec's codes and say
//! what to do.

use serde_json::json;

use crate::support::*;

#[test]
fn address_conflict_mid_add_leaves_nothing_behind() {
    let node = Node::new("10.71.0.0/24");
    let pod = Ns::new("pod");
    // The first free address is .2; a route to it on the node makes the host-route step (after IPAM, the
    // veth, pod addresses and routes, and the gateway address) fail.
    node.ns.ip(&["route", "add", "blackhole", "10.71.0.2/32"]);
    let err = node.add(&pod, "conflict").err().clone();
    assert_eq!(err["code"], 100, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("already exists on the node"), "{err}");
    node.assert_clean();
    assert!(!pod.links().contains("eth0"), "pod interface left behind: {}", pod.links());

    node.ns.ip(&["route", "del", "blackhole", "10.71.0.2/32"]);
    node.add(&pod, "conflict").ok();
    assert!(pod.ping("10.71.0.1"));
    node.del(&pod, "conflict").succeeded();
    node.assert_clean();
}

#[test]
fn leftover_host_link_is_reported_and_nothing_is_reserved() {
    let node = Node::new("10.72.0.0/24");
    let pod = Ns::new("pod");
    let name = wasmcni::naming::host_veth_name("leak", "eth0");
    node.ns.ip(&["link", "add", &name, "type", "veth", "peer", "name", "leakpeer"]);
    let err = node.add(&pod, "leak").err().clone();
    assert_eq!(err["code"], 100);
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains(&format!("link {name} already exists")) && msg.contains("did not clean up"), "{msg}");
    assert!(node.reserved_ips().is_empty(), "the failed ADD must release its address");
    assert!(node.ns.links().contains(&name), "a link we did not create must not be deleted");
    node.ns.ip(&["link", "del", &name]);
    node.assert_clean();
}

#[test]
fn masquerade_failure_unwinds_the_kernel_work() {
    let node = Node::new("10.73.0.0/24");
    let pod = Ns::new("pod");
    // An iptables-restore that always fails, found first in PATH: the last kernel step before the record.
    let mut env = cni_env("ADD", "masqfail", Some(&pod.path()), "eth0");
    env.insert("PATH", node.path_with_failing_restore("iptables-restore: line 2 failed"));
    let reply = node.spawn_cni(&env, &node.conf("1.0.0")).wait();
    let err = reply.err();
    assert_eq!(err["code"], 103, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("line 2 failed"), "{err}");
    node.assert_clean();
    assert!(!pod.links().contains("eth0"));
}

#[test]
fn errors_from_the_real_binary_have_spec_codes() {
    let node = Node::new("10.74.0.0/24");
    let pod = Ns::new("pod");
    let missing = node.cni("ADD", &node.conf("1.0.0"), "x", Some(std::path::Path::new("/var/run/netns/nope-wt")), "eth0");
    assert_eq!(missing.err()["code"], 3);
    let no_ifname = node.cni("ADD", &node.conf("1.0.0"), "x", Some(&pod.path()), "");
    let e = no_ifname.err();
    assert_eq!(e["code"], 4);
    assert!(e["msg"].as_str().unwrap().contains("CNI_IFNAME"));
    let bad_version = node.cni("ADD", &json!({"cniVersion":"0.9.9","name":"n","type":"wasmcni"}), "x", Some(&pod.path()), "eth0");
    assert_eq!(bad_version.err()["code"], 1);
    node.assert_clean();
    assert_eq!(pod.links().lines().count(), 1, "only lo: {}", pod.links());
}
