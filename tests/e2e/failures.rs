//! A failure in the middle of ADD unwinds every step it had done; errors carry the spec's codes and say
//! what to do.

use serde_json::json;

use crate::fw::{self, Fw};
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
    let env = cni_env("ADD", "masqfail", Some(&pod.path()), "eth0");
    // The firewall is the last kernel step before the result: make the backend under test refuse it.
    let (env, refusal) = match fw::under_test() {
        // An iptables-restore that always fails, found first in PATH.
        Fw::Iptables => {
            let mut env = env;
            env.insert("PATH", node.path_with_failing_restore("iptables-restore: line 2 failed"));
            (env, "line 2 failed".to_string())
        }
        // Our table with a masq4 map of the wrong type (made by someone else): the kernel refuses the element.
        Fw::Nftables => {
            let setup = "add table inet wasmcni\nadd map inet wasmcni masq4 { type ipv4_addr : ipv4_addr; }\n";
            let out = node.ns.exec(&["sh", "-c", &format!("printf '{setup}' | nft -f -")]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            (env, "map masq4".to_string())
        }
    };
    let reply = node.spawn_cni(&env, &node.conf("1.0.0")).wait();
    let err = reply.err();
    assert_eq!(err["code"], 103, "{err}");
    assert!(err["msg"].as_str().unwrap().contains(&refusal), "{err}");
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

#[test]
fn a_netns_that_is_not_a_netns_and_a_taken_requested_address_have_their_codes() {
    let node = Node::new("10.75.0.0/24");
    let pod = Ns::new("pod");
    let e = node.cni("ADD", &node.conf("1.0.0"), "x", Some(std::path::Path::new("/etc/hostname")), "eth0").err().clone();
    assert_eq!(e["code"], 4, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("CNI_NETNS: /etc/hostname is not a network namespace"), "{e}");
    node.assert_clean();

    let mut want = node.conf("1.0.0");
    want["runtimeConfig"] = json!({"ips": ["10.75.0.9/24"]});
    node.cni("ADD", &want, "first", Some(&pod.path()), "eth0").ok();
    let other = Ns::new("pod2");
    let e = node.cni("ADD", &want, "second", Some(&other.path()), "eth0").err().clone();
    assert_eq!(e["code"], 107, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("requested address 10.75.0.9 is already reserved"), "{e}");
    node.cni("DEL", &want, "first", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn a_pod_subnet_overlapping_the_nodes_uplink_is_refused_and_status_says_why() {
    // The node's uplink is 192.0.2.1/24: pods in 192.0.2.0/24 would shadow its neighbours.
    let node = Node::new("192.0.2.0/24");
    let pod = Ns::new("pod");
    let e = node.add(&pod, "overlap").err().clone();
    assert_eq!(e["code"], 100, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("the pod network overlaps the node's own") && msg.contains("a subnet the node reaches directly (on uplink)"), "{msg}");
    node.assert_clean();
    let mut status = node.conf("1.1.0");
    status["cniVersion"] = json!("1.1.0");
    let e = node.cni("STATUS", &status, "", None, "").err().clone();
    assert_eq!(e["code"], 50, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("pod subnet 192.0.2.0/24 overlaps the node's address 192.0.2.1/24 on uplink"), "{e}");
    // A subnet of its own is fine for both.
    let fine = Node::new("10.76.0.0/24");
    fine.cni("STATUS", &fine.conf("1.1.0"), "", None, "").succeeded();
}
