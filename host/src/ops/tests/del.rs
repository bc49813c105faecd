use nix::errno::Errno;
use serde_json::json;

use super::{Node, POD};
use crate::netlink::fake::NODE;

#[test]
fn del_runs_the_recorded_steps_and_removes_the_record_and_lock() {
    let node = Node::new();
    node.add("c1").unwrap();
    node.kernel.clear_calls();
    node.del("c1").unwrap();
    node.assert_clean();
    let calls = node.kernel.calls();
    assert!(calls.iter().any(|c| c.starts_with("firewall: teardown net/c1/eth0")), "{calls:#?}");
    assert!(calls.iter().any(|c| c.starts_with("node: delete link wcni")), "{calls:#?}");
    assert!(!crate::ops::locks::attachment_path(&node.tmp.path().join("run"), "net", "c1", "eth0").exists());
}

#[test]
fn del_twice_and_del_of_an_unknown_attachment_succeed() {
    let node = Node::new();
    node.add("c1").unwrap();
    node.del("c1").unwrap();
    node.del("c1").unwrap();
    node.del("never-added").unwrap();
    node.assert_clean();
}

#[test]
fn del_succeeds_when_the_netns_is_gone() {
    let node = Node::new();
    node.add("c1").unwrap();
    // The namespace went, and the veth with it (the kernel deletes both ends).
    node.kernel.remove_netns(POD);
    assert_eq!(node.node_links(), vec!["lo", "uplink"]);
    node.del("c1").unwrap();
    node.assert_clean();
}

#[test]
fn del_succeeds_with_each_piece_already_gone() {
    let node = Node::new();
    node.add("c1").unwrap();
    let veth = crate::naming::host_veth_name("c1", "eth0");
    node.deps().kernel.node().delete_link(&veth).unwrap();
    node.firewall.state().applied.clear();
    for ip in node.reserved() {
        std::fs::remove_file(node.tmp.path().join("ipam/net").join(ip)).unwrap();
    }
    node.del("c1").unwrap();
    node.assert_clean();
}

#[test]
fn a_failed_step_keeps_the_record_and_the_address_until_a_retry_succeeds() {
    let node = Node::new();
    node.add("c1").unwrap();
    node.kernel.fail_once("node: delete link", Errno::EBUSY);
    let err = node.del("c1").unwrap_err();
    assert_eq!(err.code(), 11, "{err}");
    assert!(err.to_string().contains("delete link wcni"), "{err}");
    assert_eq!(node.records().len(), 1);
    assert_eq!(node.reserved(), vec!["10.9.0.2"], "no new pod may get an address whose veth still exists");
    node.del("c1").unwrap();
    node.assert_clean();
}

#[test]
fn del_without_a_record_cleans_up_by_name_keeping_other_interfaces_rules() {
    let node = Node::new();
    node.add("c1").unwrap();
    std::fs::remove_file(&node.records()[0]).unwrap();
    node.kernel.clear_calls();
    node.del("c1").unwrap();
    node.assert_clean();
    let calls = node.kernel.calls();
    assert!(calls.iter().any(|c| c.starts_with("node: delete link wcni")), "{calls:#?}");
    assert!(calls.iter().any(|c| c.starts_with("firewall: teardown net/c1/eth0")), "{calls:#?}");
}

#[test]
fn del_without_a_record_finds_the_rules_addresses_in_the_ipam_store() {
    let node = Node::new();
    node.add("c1").unwrap();
    std::fs::remove_file(&node.records()[0]).unwrap();
    let req = node.request(crate::cni::request::Command::Del, &node.conf(), "c1");
    let steps = super::super::del::by_name_for_tests(&req, &node.deps());
    let rules = steps
        .iter()
        .find_map(|s| match s {
            crate::ops::undo::Undo::Firewall { rules, .. } => Some(rules.clone()),
            _ => None,
        })
        .unwrap();
    let sources: Vec<String> = rules.masquerade.unwrap().sources.iter().map(|(ip, _)| ip.to_string()).collect();
    assert_eq!(sources, vec!["10.9.0.2"], "only this interface's masquerade rules go");
    node.del("c1").unwrap();
}

#[test]
fn del_leaves_another_network_alone() {
    let node = Node::new();
    node.add("c1").unwrap();
    let mut other = node.conf();
    other["name"] = json!("other");
    node.del_with(&other, "c1").unwrap();
    assert_eq!(node.records().len(), 1);
    assert_eq!(node.reserved(), vec!["10.9.0.2"]);
    assert!(node.firewall.state().applied.contains_key("net/c1/eth0"));
    // The veth's name depends on the container and ifname alone; its alias says whose it is.
    assert!(node.kernel.link_names(NODE).contains(&crate::naming::host_veth_name("c1", "eth0")));
}

#[test]
fn del_sweeps_temp_files_a_killed_writer_left() {
    let node = Node::new();
    node.add("c1").unwrap();
    let dir = node.tmp.path().join("state/attachments/net");
    std::fs::write(dir.join("c1@eth0.tmp"), b"{").unwrap();
    std::fs::write(dir.join("c2@eth0.tmp"), b"{").unwrap();
    node.del("c1").unwrap();
    let left: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(left, vec!["c2@eth0.tmp"], "only this attachment's temp file is DEL's");
}
