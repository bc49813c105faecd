//! DEL in all the states a runtime can call it in, duplicate ADD, pool exhaustion, CHECK, STATUS and GC.

use serde_json::json;

use crate::support::*;

#[test]
fn del_twice_and_del_with_empty_netns_succeed() {
    let node = Node::new("10.63.0.0/24");
    let pod = Ns::new("pod");
    node.add(&pod, "twice").ok();
    node.del(&pod, "twice").succeeded();
    node.assert_clean();
    assert!(!pod.links().contains("eth0"), "pod end must go with the host end");
    node.del(&pod, "twice").succeeded();
    node.cni("DEL", &node.conf("1.0.0"), "twice", None, "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn del_after_the_netns_was_deleted_cleans_everything() {
    let node = Node::new("10.64.0.0/24");
    let pod = Ns::new("pod");
    let path = pod.path();
    node.add(&pod, "gone").ok();
    drop(pod);
    assert!(!path.exists());
    node.cni("DEL", &node.conf("1.0.0"), "gone", Some(&path), "eth0").succeeded();
    node.assert_clean();
    // And with the runtime passing no netns at all, after state was already cleaned.
    node.cni("DEL", &node.conf("1.0.0"), "gone", None, "eth0").succeeded();
}

#[test]
fn del_without_a_record_cleans_by_name() {
    // A crash between the kernel work and the record leaves no record: DEL must still find everything.
    let node = Node::new("10.65.0.0/24");
    let pod = Ns::new("pod");
    node.add(&pod, "norecord").ok();
    for r in node.records() {
        std::fs::remove_file(r).unwrap();
    }
    node.del(&pod, "norecord").succeeded();
    node.assert_clean();
}

#[test]
fn second_add_of_the_same_attachment_fails_cleanly_and_keeps_the_first() {
    let node = Node::new("10.66.0.0/24");
    let pod = Ns::new("pod");
    node.add(&pod, "dup").ok();
    let rules = node.rules_of("dup");
    assert!(!rules.is_empty());
    let err = node.add(&pod, "dup").err().clone();
    assert_eq!(err["code"], 102, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("duplicate ADD"), "{err}");
    assert_eq!(node.reserved_ips().len(), 1);
    assert_eq!(node.host_veths().len(), 1);
    assert_eq!(node.records().len(), 1, "the failed duplicate must not remove the first ADD's record");
    assert_eq!(node.rules_of("dup"), rules, "the first ADD's masquerade stays as it was");
    assert!(pod.ping("10.66.0.1"), "the first attachment must survive the failed duplicate");
    node.del(&pod, "dup").succeeded();
    node.assert_clean();
}

#[test]
fn a_slash_30_pool_runs_out_with_a_clear_error() {
    let node = Node::new("10.67.0.0/30");
    let (a, b) = (Ns::new("pa"), Ns::new("pb"));
    assert_eq!(pod_ip(node.add(&a, "first").ok()), "10.67.0.2");
    let err = node.add(&b, "second").err().clone();
    assert_eq!(err["code"], 101, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("exhausted") && msg.contains("10.67.0.0/30"), "{msg}");
    assert!(!b.links().contains("eth0"));
    assert_eq!(node.host_veths().len(), 1);
    node.del(&a, "first").succeeded();
    node.assert_clean();
}

#[test]
fn check_passes_then_names_what_was_removed() {
    let node = Node::new("10.68.0.0/24");
    let pod = Ns::new("pod");
    let conf = node.conf("1.1.0");
    let res = node.cni("ADD", &conf, "chk", Some(&pod.path()), "eth0").ok().clone();
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = res.clone();
    node.cni("CHECK", &check_conf, "chk", Some(&pod.path()), "eth0").succeeded();

    // Routes removed by hand, in the pod and on the node, are named.
    pod.ip(&["route", "del", "default"]);
    let host = res["interfaces"][0]["name"].as_str().unwrap();
    node.ns.ip(&["route", "del", &format!("{}/32", pod_ip(&res)), "dev", host]);
    let err = node.cni("CHECK", &check_conf, "chk", Some(&pod.path()), "eth0").err().clone();
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("route 0.0.0.0/0 via 10.68.0.1 is missing"), "{err}");
    assert!(msg.contains(&format!("node route {}/32 dev {host} is missing", pod_ip(&res))), "{err}");
    assert_eq!(err["code"], 105);

    let addr = res["ips"][0]["address"].as_str().unwrap();
    pod.ip(&["addr", "del", addr, "dev", "eth0"]);
    let err = node.cni("CHECK", &check_conf, "chk", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains(&format!("address {addr} is missing")), "{err}");

    // A flushed masquerade chain: the chain is there, its rules are not.
    let flushed = node.flush_masquerade("chk", &pod_ip(&res));
    let err = node.cni("CHECK", &check_conf, "chk", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains(&flushed), "{err}");

    // The masquerade, the reservation and the host veth (which takes the pod's eth0 with it).
    let removed = node.remove_masquerade("chk", &pod_ip(&res));
    std::fs::remove_file(node.ipam_dir().join(&node.network).join(pod_ip(&res))).unwrap();
    node.ns.ip(&["link", "del", host]);
    let err = node.cni("CHECK", &check_conf, "chk", Some(&pod.path()), "eth0").err().clone();
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains(&removed), "{err}");
    assert!(msg.contains(&format!("IP reservation for {} is missing", pod_ip(&res))), "{err}");
    assert!(msg.contains(&format!("host veth {host} is missing")), "{err}");
    assert!(msg.contains("interface eth0 is missing"), "{err}");
    node.cni("DEL", &conf, "chk", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn status_reports_ready_and_names_an_unusable_state_dir() {
    let node = Node::new("10.69.0.0/24");
    let conf = node.conf("1.1.0");
    let reply = node.cni("STATUS", &conf, "", None, "");
    reply.succeeded();
    let mut bad = conf.clone();
    std::fs::write(node.dir.path().join("file"), b"").unwrap();
    bad["stateDir"] = json!(node.dir.path().join("file/state"));
    let err = node.cni("STATUS", &bad, "", None, "").err().clone();
    assert_eq!(err["code"], 50, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("file/state"), "{err}");

    // iptables that does not work (ipMasq needs it), when the network asks for iptables.
    let mut conf = conf.clone();
    conf["firewallBackend"] = json!("iptables");
    let mut env = cni_env("STATUS", "", None, "");
    env.insert("PATH", node.path_with_failing("iptables-save", "iptables: Permission denied"));
    let err = node.spawn_cni(&env, &conf).wait().err().clone();
    assert_eq!(err["code"], 50, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("iptables is not usable"), "{err}");
}

#[test]
fn status_says_limited_resources_when_the_pool_is_full() {
    let node = Node::new("10.68.0.0/30");
    let conf = node.conf("1.1.0");
    node.cni("STATUS", &conf, "", None, "").succeeded();
    let pod = Ns::new("full");
    node.cni("ADD", &conf, "full", Some(&pod.path()), "eth0").ok();
    let err = node.cni("STATUS", &conf, "", None, "").err().clone();
    assert_eq!(err["code"], 51, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("no free address"), "{err}");
    node.cni("DEL", &conf, "full", Some(&pod.path()), "eth0").succeeded();
    node.cni("STATUS", &conf, "", None, "").succeeded();
    node.assert_clean();
}

#[test]
fn gc_removes_exactly_the_attachments_not_listed() {
    let node = Node::new("10.70.0.0/24");
    let (keep, stale) = (Ns::new("keep"), Ns::new("stale"));
    let keep_ip = pod_ip(node.add(&keep, "keep").ok());
    node.add(&stale, "stale").ok();
    let mut conf = node.conf("1.1.0");
    conf["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    node.cni("GC", &conf, "", None, "").succeeded();
    assert_eq!(node.reserved_ips(), vec![keep_ip]);
    assert_eq!(node.host_veths().len(), 1);
    assert_eq!(node.records().len(), 1);
    assert!(!stale.links().contains("eth0"));
    assert!(keep.ping("10.70.0.1"), "GC must leave live attachments working");
    assert!(node.rules_of("stale").is_empty(), "{:?}", node.rules_of("stale"));
    assert!(!node.rules_of("keep").is_empty());
    node.del(&keep, "keep").succeeded();
    node.assert_clean();
}

#[test]
fn gc_leaves_another_networks_attachments_alone() {
    let node = Node::new("10.72.0.0/24");
    let (a, b) = (Ns::new("neta"), Ns::new("netb"));
    node.add(&a, "on-a").ok();
    // A second network on the same node, same state and IPAM dirs, another subnet.
    let mut other = node.conf("1.1.0");
    other["name"] = json!("othernet");
    other["ipam"]["subnet"] = json!("10.73.0.0/24");
    node.cni("ADD", &other, "on-b", Some(&b.path()), "eth0").ok();
    // GC of the first network with nothing valid, and with a record lost (so the leftover sweep runs too).
    for record in node.records() {
        std::fs::remove_file(record).unwrap();
    }
    let mut gc = node.conf("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    node.cni("GC", &gc, "", None, "").succeeded();
    assert!(node.reserved_ips().is_empty() && node.records().is_empty());
    // The other network's record, veth, reservation and chain are untouched, and its pod still works.
    assert_eq!(node.host_veths().len(), 1, "{:?}", node.host_veths());
    assert!(node.ipam_dir().join("othernet").join("10.73.0.2").is_file());
    assert!(node.state_dir().join("attachments/othernet").read_dir().unwrap().count() == 1);
    assert!(!node.rules_in("othernet", "on-b").is_empty(), "the other network's rules must stay");
    assert!(b.ping("10.73.0.1"));
    node.cni("DEL", &other, "on-b", Some(&b.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn gc_reads_the_draft_key_cni_dev_attachments_too() {
    let node = Node::new("10.71.0.0/24");
    let (keep, stale) = (Ns::new("keep"), Ns::new("stale"));
    node.add(&keep, "keep").ok();
    node.add(&stale, "stale").ok();
    let mut conf = node.conf("1.1.0");
    conf["cni.dev/attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    node.cni("GC", &conf, "", None, "").succeeded();
    assert_eq!(node.records().len(), 1);
    assert_eq!(node.host_veths().len(), 1);
    assert!(keep.ping("10.71.0.1"));
    node.del(&keep, "keep").succeeded();
    node.assert_clean();
}

#[test]
fn runtime_config_ips_and_mac_are_honoured() {
    let node = Node::new("10.93.0.0/24");
    let pod = Ns::new("pod");
    let mut conf = node.conf("1.0.0");
    conf["runtimeConfig"] = json!({"ips": ["10.93.0.33/24"], "mac": "02:11:22:33:44:55"});
    let res = node.cni("ADD", &conf, "caps", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(pod_ip(&res), "10.93.0.33");
    assert_eq!(res["interfaces"][1]["mac"], "02:11:22:33:44:55");
    assert!(pod.ip(&["link", "show", "eth0"]).contains("link/ether 02:11:22:33:44:55"));
    node.cni("DEL", &conf, "caps", Some(&pod.path()), "eth0").succeeded();

    // CNI_ARGS MAC= (the reference plugins' argument for the same).
    let mut env = cni_env("ADD", "capsmac", Some(&pod.path()), "eth0");
    env.insert("CNI_ARGS", "IgnoreUnknown=1;MAC=02:aa:bb:cc:dd:ee".into());
    node.spawn_cni(&env, &node.conf("1.0.0")).wait().ok();
    assert!(pod.ip(&["link", "show", "eth0"]).contains("link/ether 02:aa:bb:cc:dd:ee"));
    node.cni("DEL", &node.conf("1.0.0"), "capsmac", Some(&pod.path()), "eth0").succeeded();

    // args.cni.ips (the convention of the reference plugins for the same capability).
    let mut args = node.conf("1.0.0");
    args["args"] = json!({"cni": {"ips": ["10.93.0.44"]}});
    assert_eq!(pod_ip(node.cni("ADD", &args, "caps", Some(&pod.path()), "eth0").ok()), "10.93.0.44");
    node.cni("DEL", &args, "caps", Some(&pod.path()), "eth0").succeeded();

    let mut taken = node.conf("1.0.0");
    taken["runtimeConfig"] = json!({"ips": ["10.93.0.1"]});
    let err = node.cni("ADD", &taken, "caps2", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("is the gateway"), "{err}");
    node.assert_clean();
}

#[test]
fn del_after_the_interface_was_removed_by_hand() {
    let node = Node::new("10.78.0.0/24");
    let pod = Ns::new("pod");
    let res = node.add(&pod, "handgone").ok().clone();
    node.ns.ip(&["link", "del", res["interfaces"][0]["name"].as_str().unwrap()]);
    node.del(&pod, "handgone").succeeded();
    node.assert_clean();
}

#[test]
fn a_failed_teardown_step_keeps_the_address_and_the_record_until_a_retry_succeeds() {
    // How the plugin handles a backend that fails, shown with iptables in both runs of the suite: a failing
    // tool first in PATH is a fault we can inject from outside.
    let node = Node::new("10.67.0.0/24");
    let pod = Ns::new("stuck");
    let conf = iptables_conf(&node);
    let ip = pod_ip(node.cni("ADD", &conf, "stuck", Some(&pod.path()), "eth0").ok());
    // An iptables-restore that fails, first in PATH: the masquerade teardown of this DEL fails.
    let mut env = cni_env("DEL", "stuck", Some(&pod.path()), "eth0");
    env.insert("PATH", node.path_with_failing_restore("iptables-restore: resource busy"));
    let err = node.spawn_cni(&env, &conf).wait().err().clone();
    assert_eq!(err["code"], 11, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("stay reserved"), "{err}");
    // The veth is gone, but the address is not handed out again while its rules are live.
    assert!(node.host_veths().is_empty());
    assert_eq!(node.reserved_ips(), vec![ip]);
    assert_eq!(node.records().len(), 1, "the record stays for the retry");
    assert!(node.ns.iptables_save().contains(&wasmcni::firewall::iptables::masquerade_chain_name(&node.network, "stuck")));

    node.cni("DEL", &conf, "stuck", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

/// The node's conf with the iptables backend, whichever backend the suite tests.
fn iptables_conf(node: &Node) -> serde_json::Value {
    let mut conf = node.conf("1.1.0");
    conf["firewallBackend"] = json!("iptables");
    conf
}

#[test]
fn gc_keeps_the_address_of_a_leftover_it_could_not_remove() {
    let node = Node::new("10.66.0.0/24");
    let pod = Ns::new("leaky");
    // The iptables backend in both runs, as above.
    let mut conf = iptables_conf(&node);
    let ip = pod_ip(node.cni("ADD", &conf, "leaky", Some(&pod.path()), "eth0").ok());
    for record in node.records() {
        std::fs::remove_file(record).unwrap(); // what a crash before the record leaves
    }
    // GC sees the leftover chain by its name but cannot remove it (iptables-restore fails).
    conf["cni.dev/valid-attachments"] = json!([]);
    let mut env = cni_env("GC", "", None, "");
    env.insert("PATH", node.path_with_failing_restore("iptables-restore: resource busy"));
    let err = node.spawn_cni(&env, &conf).wait().err().clone();
    assert_eq!(err["code"], 11, "{err}");
    assert_eq!(node.reserved_ips(), vec![ip], "the address must stay while its masquerade rules are live");
    assert!(node.host_veths().is_empty(), "the veth could go");
    // The next GC, with a working iptables, finishes the job.
    node.cni("GC", &conf, "", None, "").succeeded();
    node.assert_clean();
}

#[test]
fn two_interfaces_of_one_container_keep_each_others_masquerade() {
    // The reference chain name (iptables) is per container: DEL of one interface must leave the other's
    // rules, and the last DEL removes the chain. nftables: one element per address.
    let node = Node::new("10.75.0.0/24");
    let pod = Ns::new("twoif");
    // Bridged: two routed interfaces into one subnet would both want the gateway's route.
    let mut conf = node.conf("1.0.0");
    conf["mode"] = json!("bridge");
    conf["bridge"] = json!("wcbr2");
    conf["isDefaultGateway"] = json!(true);
    let ip0 = pod_ip(node.cni("ADD", &conf, "twoif", Some(&pod.path()), "eth0").ok());
    // The second one without a default route (the first has it).
    let mut conf1 = conf.clone();
    conf1["isDefaultGateway"] = json!(false);
    let ip1 = pod_ip(node.cni("ADD", &conf1, "twoif", Some(&pod.path()), "eth1").ok());
    assert!(node.masquerades("twoif", &ip0) && node.masquerades("twoif", &ip1));
    node.cni("DEL", &conf, "twoif", Some(&pod.path()), "eth0").succeeded();
    assert!(node.masquerades("twoif", &ip1), "DEL of eth0 removed eth1's masquerade: {:?}", node.rules_of("twoif"));
    assert!(!node.masquerades("twoif", &ip0), "{:?}", node.rules_of("twoif"));
    node.cni("DEL", &conf1, "twoif", Some(&pod.path()), "eth1").succeeded();
    node.assert_clean();
}
