//! Both firewall backends on one node: what `auto` picks, a node switched from iptables to nftables with
//! pods on it, and GC looking in both. These run the same in either run of the suite (they name their
//! backends).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use crate::hooks::test_hook;
use crate::support::*;

fn with_backend(node: &Node, backend: &str) -> Value {
    let mut conf = node.conf("1.1.0");
    conf["firewallBackend"] = json!(backend);
    conf
}

fn guarded(mut conf: Value, port: u16) -> Value {
    conf["hooks"] = json!([{"name": "guard", "module": test_hook(), "stages": ["post-add"],
        "config": {"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": port}}]);
    conf
}

fn iptables_rules_of(node: &Node, id: &str) -> Vec<String> {
    let masq = wasmcni::firewall::iptables::masquerade_chain_name(&node.network, id);
    let hook = format!(": {}/{id}/eth0\"", node.network);
    (node.ns.iptables_save() + &node.ns.ip6tables_save()).lines().filter(|l| l.contains(&masq) || l.contains(&hook)).map(String::from).collect()
}

fn nft_rules_of(node: &Node, id: &str) -> Vec<String> {
    let tag = format!("\"wasmcni {}/{id}/eth0", node.network);
    node.nft_table().lines().filter(|l| l.contains(&tag)).map(|l| l.trim().to_string()).collect()
}

fn connects(pod: &Ns, port: u16) -> bool {
    let addr: SocketAddr = format!("{UPSTREAM_IP}:{port}").parse().unwrap();
    pod.within(|| TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok())
}

#[test]
fn a_node_switched_from_iptables_to_nftables_keeps_its_pods_working_and_del_cleans_them() {
    let node = Node::new("10.57.0.0/24");
    let (old, new) = (Ns::new("old"), Ns::new("new"));
    let blocked = node.upstream.within(|| TcpListener::bind((UPSTREAM_IP, 0)).unwrap());
    let port = blocked.local_addr().unwrap().port();
    let before = guarded(with_backend(&node, "iptables"), port);
    let after = guarded(with_backend(&node, "nftables"), port);

    let res_old = node.cni("ADD", &before, "old", Some(&old.path()), "eth0").ok().clone();
    assert!(!iptables_rules_of(&node, "old").is_empty() && nft_rules_of(&node, "old").is_empty());
    // The setting changes (a new conf file); the next pod's rules are nftables'.
    let res_new = node.cni("ADD", &after, "new", Some(&new.path()), "eth0").ok().clone();
    assert!(!nft_rules_of(&node, "new").is_empty() && iptables_rules_of(&node, "new").is_empty());

    for (pod, name) in [(&old, "old"), (&new, "new")] {
        assert_eq!(node.upstream_sees(pod).ip().to_string(), NODE_UPLINK_IP, "{name}: masquerade");
        assert!(!connects(pod, port), "{name}: its hook's drop rule must still hold");
    }
    assert!(old.ping(&pod_ip(&res_new)) && new.ping(&pod_ip(&res_old)), "the pods reach each other");

    // CHECK and DEL, with the new setting, use the backend each record names.
    for (pod, id, res) in [(&old, "old", &res_old), (&new, "new", &res_new)] {
        let mut check = after.clone();
        check["prevResult"] = res.clone();
        node.cni("CHECK", &check, id, Some(&pod.path()), "eth0").succeeded();
    }
    node.cni("DEL", &after, "old", Some(&old.path()), "eth0").succeeded();
    assert!(iptables_rules_of(&node, "old").is_empty(), "{:?}", iptables_rules_of(&node, "old"));
    node.cni("DEL", &after, "new", Some(&new.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn auto_and_the_reference_spelling_choose_nftables_where_it_works() {
    let node = Node::new("10.58.0.0/24");
    let pod = Ns::new("auto");
    let mut conf = with_backend(&node, "auto");
    node.cni("STATUS", &conf, "", None, "").succeeded();
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    assert!(log.contains("firewall backend nftables (auto) works"), "STATUS says which backend: {log}");
    node.cni("ADD", &conf, "auto", Some(&pod.path()), "eth0").ok();
    assert!(!nft_rules_of(&node, "auto").is_empty() && iptables_rules_of(&node, "auto").is_empty());
    node.cni("DEL", &conf, "auto", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();

    // The reference plugins' ipMasqBackend means the same.
    conf.as_object_mut().unwrap().remove("firewallBackend");
    conf["ipMasqBackend"] = json!("iptables");
    node.cni("ADD", &conf, "ref", Some(&pod.path()), "eth0").ok();
    assert!(!iptables_rules_of(&node, "ref").is_empty() && nft_rules_of(&node, "ref").is_empty());
    node.cni("DEL", &conf, "ref", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();

    conf["ipMasqBackend"] = json!("nft");
    let err = node.cni("ADD", &conf, "bad", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("\"nft\" is not one of iptables, nftables, none, auto"), "{err}");
}

#[test]
fn gc_finds_leftovers_in_both_backends() {
    let node = Node::new("10.59.0.0/24");
    let (a, b, keep) = (Ns::new("gca"), Ns::new("gcb"), Ns::new("gck"));
    let port = 9;
    node.cni("ADD", &guarded(with_backend(&node, "iptables"), port), "in-ipt", Some(&a.path()), "eth0").ok();
    node.cni("ADD", &guarded(with_backend(&node, "nftables"), port), "in-nft", Some(&b.path()), "eth0").ok();
    let keep_conf = guarded(with_backend(&node, "nftables"), port);
    node.cni("ADD", &keep_conf, "keep", Some(&keep.path()), "eth0").ok();
    // Records lost (a crash before writing them, an older plugin): only the rules' own names are left.
    for r in node.records().into_iter().filter(|p| !p.to_string_lossy().contains("keep")) {
        std::fs::remove_file(r).unwrap();
    }
    let mut gc = keep_conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    node.cni("GC", &gc, "", None, "").succeeded();
    assert!(iptables_rules_of(&node, "in-ipt").is_empty(), "{:?}", iptables_rules_of(&node, "in-ipt"));
    assert!(nft_rules_of(&node, "in-nft").is_empty(), "{:?}", nft_rules_of(&node, "in-nft"));
    assert!(!nft_rules_of(&node, "keep").is_empty(), "GC must keep the live pod's rules");
    assert!(!node.masquerade_pieces().is_empty(), "nor the network's masquerade, which the live pod uses");
    assert!(keep.ping("10.59.0.1"));
    node.cni("DEL", &keep_conf, "keep", Some(&keep.path()), "eth0").succeeded();
    node.assert_clean();
    // DEL leaves the network's masquerade set, rule and chain for its next pod; GC removes them once unused.
    assert!(!node.masquerade_pieces().is_empty(), "{}", node.nft_table());
    gc["cni.dev/valid-attachments"] = json!([]);
    node.cni("GC", &gc, "", None, "").succeeded();
    assert_eq!(node.masquerade_pieces(), Vec::<String>::new(), "{}", node.nft_table());
}

/// Turns attachment `id`'s masquerade into the layout earlier builds made: a `masq4` element that jumps to
/// the chain, with no set, no `masq` chain and the two-rule postrouting.
fn as_earlier_builds_made_it(node: &Node, id: &str, ip: &str) {
    let set = node.masq_set_of(id, ip).expect("a masquerade set element");
    let chain = format!("m{}", &set[1..]);
    let listed = String::from_utf8_lossy(&node.ns.exec(&["nft", "-a", "list", "chain", "inet", "wasmcni", "masq"]).stdout).into_owned();
    let handle = listed.lines().find(|l| l.contains(&format!("@{set} "))).and_then(|l| l.rsplit("# handle ").next()).expect("the rule for the set").trim().to_string();
    let script = format!(
        "flush chain inet wasmcni postrouting\n\
         add rule inet wasmcni postrouting ip saddr vmap @masq4\n\
         add rule inet wasmcni postrouting ip6 saddr vmap @masq6\n\
         delete rule inet wasmcni masq handle {handle}\n\
         delete set inet wasmcni {set}\n\
         delete chain inet wasmcni masq\n\
         add element inet wasmcni masq4 {{ {ip} comment \"wasmcni {}/{id}/eth0\" : jump {chain} }}\n",
        node.network
    );
    let file = node.dir.path().join("earlier.nft");
    std::fs::write(&file, script).unwrap();
    let out = node.ns.exec(&["nft", "-f", &file.display().to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn pods_masqueraded_by_an_earlier_nftables_layout_keep_working_beside_new_ones_and_del_cleans_both() {
    let node = Node::new("10.37.0.0/24");
    let (old, new) = (Ns::new("earlier"), Ns::new("later"));
    let conf = with_backend(&node, "nftables");
    let res_old = node.cni("ADD", &conf, "old", Some(&old.path()), "eth0").ok().clone();
    as_earlier_builds_made_it(&node, "old", &pod_ip(&res_old));
    assert!(node.masq_set_of("old", &pod_ip(&res_old)).is_none() && !node.nft_table().contains("chain masq {"));
    assert_eq!(node.upstream_sees(&old).ip().to_string(), NODE_UPLINK_IP, "the earlier layout masquerades");

    // The next ADD finds `masq` missing, sets the table up again and uses sets; the old element still works.
    let res_new = node.cni("ADD", &conf, "new", Some(&new.path()), "eth0").ok().clone();
    assert!(node.masq_set_of("new", &pod_ip(&res_new)).is_some(), "{}", node.nft_table());
    for (pod, id, res) in [(&old, "old", &res_old), (&new, "new", &res_new)] {
        assert_eq!(node.upstream_sees(pod).ip().to_string(), NODE_UPLINK_IP, "{id}: masquerade");
        let mut check = conf.clone();
        check["prevResult"] = res.clone();
        node.cni("CHECK", &check, id, Some(&pod.path()), "eth0").succeeded();
    }

    // The new pod goes first: its set is empty then, but the old element still jumps to the shared chain,
    // so the chain (and the set with its rule) stay for it.
    node.cni("DEL", &conf, "new", Some(&new.path()), "eth0").succeeded();
    assert_eq!(node.upstream_sees(&old).ip().to_string(), NODE_UPLINK_IP, "the old pod keeps its masquerade");
    let mut check = conf.clone();
    check["prevResult"] = res_old.clone();
    node.cni("CHECK", &check, "old", Some(&old.path()), "eth0").succeeded();
    node.cni("DEL", &conf, "old", Some(&old.path()), "eth0").succeeded();
    node.assert_clean();
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    node.cni("GC", &gc, "", None, "").succeeded();
    assert_eq!(node.masquerade_pieces(), Vec::<String>::new(), "GC removes the shared chain once unused: {}", node.nft_table());
}
