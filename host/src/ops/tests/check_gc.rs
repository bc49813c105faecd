use nix::errno::Errno;
use serde_json::json;

use super::{Node, POD};
use crate::cni::request::Command;
use crate::netlink::fake::NODE;
use crate::ops::record::Record;

fn check_err(node: &Node, id: &str) -> String {
    let e = node.check(id).unwrap_err();
    assert_eq!(e.code(), 105, "{e}");
    e.to_string()
}

#[test]
fn check_passes_on_what_add_made() {
    let node = Node::new();
    node.add("c1").unwrap();
    node.check("c1").unwrap();
}

#[test]
fn check_names_each_missing_piece() {
    let node = Node::new();
    node.add("c1").unwrap();
    let deps = node.deps();
    let pod = deps.kernel.pod(std::path::Path::new(POD)).unwrap();
    let eth0 = pod.link("eth0").unwrap().unwrap();
    pod.delete_address(eth0.index, "10.9.0.2/24".parse().unwrap()).unwrap();
    assert!(check_err(&node, "c1").contains("address 10.9.0.2/24 is missing from eth0"));

    let node = Node::new();
    node.add("c1").unwrap();
    node.firewall.state().applied.clear();
    assert!(check_err(&node, "c1").contains("the rules of net/c1/eth0 are missing"));

    let node = Node::new();
    node.add("c1").unwrap();
    std::fs::remove_file(node.tmp.path().join("ipam/net/10.9.0.2")).unwrap();
    assert!(check_err(&node, "c1").contains("IP reservation for 10.9.0.2 is missing"));

    let node = Node::new();
    node.add("c1").unwrap();
    node.deps().kernel.node().delete_link(&crate::naming::host_veth_name("c1", "eth0")).unwrap();
    let msg = check_err(&node, "c1");
    assert!(msg.contains("host veth wcni") && msg.contains("is missing"), "{msg}");
    assert!(msg.contains("interface eth0 is missing from netns"), "the pod end went with it: {msg}");
}

#[test]
fn check_reports_routes_it_cannot_list_as_such() {
    let node = Node::new();
    node.add("c1").unwrap();
    node.kernel.fail_once(&format!("{POD}: list v4 routes"), Errno::EIO);
    let msg = check_err(&node, "c1");
    assert!(msg.contains("cannot list v4 routes"), "{msg}");
    assert!(!msg.contains("route 0.0.0.0/0 via"), "a failed listing is not 'missing': {msg}");
}

#[test]
fn check_says_when_add_never_finished() {
    let node = Node::new();
    node.add("c1").unwrap();
    let mut rec = Record::load(&node.records()[0]).unwrap().unwrap();
    rec.complete = false;
    rec.write(&node.tmp.path().join("state")).unwrap();
    assert!(check_err(&node, "c1").contains("its ADD never finished"));
}

#[test]
fn check_without_a_record_fails() {
    let node = Node::new();
    assert!(check_err(&node, "nope").contains("no attachment record"));
}

#[test]
fn gc_removes_unlisted_attachments_and_keeps_listed_ones() {
    let node = Node::new();
    node.add("keep").unwrap();
    node.kernel.add_netns("/var/run/netns/second");
    // A second pod in another namespace.
    let mut env_conf = node.conf();
    env_conf["name"] = json!("net");
    let mut req = node.request(Command::Add, &env_conf, "gone");
    req.netns = Some("/var/run/netns/second".into());
    crate::ops::add::run(&req, &node.deps(), || Ok(&crate::hooks::NoHooks)).unwrap();
    assert_eq!(node.records().len(), 2);
    let before = node.firewall.state().calls.len();
    node.gc(&["keep"]).unwrap();
    // Whether a backend works is asked once per GC, not again for the sweep (the fake stands in for both).
    assert_eq!(node.firewall.state().calls[before..].iter().filter(|c| *c == "status").count(), 2);
    assert_eq!(node.records().len(), 1);
    assert_eq!(node.reserved(), vec!["10.9.0.2"]);
    assert_eq!(node.firewall.state().applied.keys().cloned().collect::<Vec<_>>(), vec!["net/keep/eth0"]);
    node.check("keep").unwrap();
}

#[test]
fn gc_replays_an_unfinished_record() {
    let node = Node::new();
    node.add("c1").unwrap();
    let mut rec = Record::load(&node.records()[0]).unwrap().unwrap();
    rec.complete = false;
    rec.write(&node.tmp.path().join("state")).unwrap();
    node.gc(&[]).unwrap();
    node.assert_clean();
}

#[test]
fn gc_finds_leftovers_no_record_explains() {
    let node = Node::new();
    node.add("c1").unwrap();
    std::fs::remove_file(&node.records()[0]).unwrap();
    node.gc(&[]).unwrap();
    // The veth by its alias, the rules by the backend's leftovers, the address by the sweep.
    node.assert_clean();
}

#[test]
fn gc_keeps_the_address_of_what_it_could_not_clean() {
    let node = Node::new();
    node.add("c1").unwrap();
    node.firewall.fail_once("teardown");
    let err = node.gc(&[]).unwrap_err();
    assert_eq!(err.code(), 11, "{err}");
    assert_eq!(node.reserved(), vec!["10.9.0.2"], "a new pod must not inherit live rules");
    assert_eq!(node.records().len(), 1);
    node.gc(&[]).unwrap();
    node.assert_clean();
}

#[test]
fn gc_sweeps_nothing_when_it_could_not_list() {
    let node = Node::new();
    node.add("c1").unwrap();
    std::fs::remove_file(&node.records()[0]).unwrap();
    node.kernel.fail_once("node: list links", Errno::EIO);
    let err = node.gc(&[]).unwrap_err();
    assert!(err.to_string().contains("addresses are not swept"), "{err}");
    assert_eq!(node.reserved(), vec!["10.9.0.2"]);
    node.gc(&[]).unwrap();
    node.assert_clean();
}

#[test]
fn gc_needs_the_list_of_valid_attachments() {
    let node = Node::new();
    let req = node.request(Command::Gc, &node.conf(), "gc");
    let err = crate::ops::gc::run(&req, &node.deps()).unwrap_err();
    assert_eq!(err.code(), 7);
}

#[test]
fn gc_leaves_a_veth_of_another_network_alone() {
    let node = Node::new();
    node.add("c1").unwrap();
    let mut other = node.conf();
    other["name"] = json!("other");
    other["cni.dev/valid-attachments"] = json!([]);
    crate::ops::gc::run(&node.request(Command::Gc, &other, "gc"), &node.deps()).unwrap();
    assert!(node.kernel.link_names(NODE).contains(&crate::naming::host_veth_name("c1", "eth0")));
    node.check("c1").unwrap();
}

#[test]
fn status_says_which_part_is_not_ready() {
    let node = Node::new();
    let req = node.request(Command::Status, &node.conf(), "s");
    crate::ops::status::run(&req, &node.deps()).unwrap();
    node.firewall.fail_once("status");
    let err = crate::ops::status::run(&req, &node.deps()).unwrap_err();
    assert_eq!(err.code(), 50);
    assert!(err.to_string().contains("firewall backend iptables is not usable"), "{err}");
}
