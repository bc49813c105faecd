//! Delegated IPAM: the reference host-local and static plugins from Debian's containernetworking-plugins,
//! exec'd from CNI_PATH as the spec's delegation protocol says.

use serde_json::json;

use crate::support::*;

fn delegated(node: &Node, ipam: serde_json::Value) -> serde_json::Value {
    let mut conf = node.conf("1.0.0");
    conf["ipam"] = ipam;
    conf
}

fn host_local_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("10.")).collect())
        .unwrap_or_default()
}

#[test]
fn host_local_reserves_and_del_releases() {
    assert!(std::path::Path::new("/usr/lib/cni/host-local").is_file(), "install containernetworking-plugins");
    let node = Node::new("10.96.0.0/24");
    let pod = Ns::new("pod");
    let data = node.dir.path().join("host-local");
    let conf = delegated(&node, json!({"type": "host-local", "subnet": "10.96.0.0/24", "dataDir": data, "routes": [{"dst": "192.168.0.0/16"}]}));
    let res = node.cni("ADD", &conf, "hl", Some(&pod.path()), "eth0").ok().clone();
    let ip = pod_ip(&res);
    assert_eq!(res["ips"][0]["gateway"], "10.96.0.1");
    assert_eq!(host_local_files(&data.join(&node.network)), vec![ip.clone()], "host-local holds the address");
    assert!(pod.ip(&["route"]).contains("192.168.0.0/16 via 10.96.0.1"), "the plugin's routes reach the pod");
    assert!(pod.ping("10.96.0.1"));
    assert!(node.upstream_sees(&pod).ip().to_string() == NODE_UPLINK_IP);
    node.cni("DEL", &conf, "hl", Some(&pod.path()), "eth0").succeeded();
    assert!(host_local_files(&data.join(&node.network)).is_empty(), "DEL must call the plugin's DEL");
    node.assert_clean();
}

#[test]
fn a_failed_add_calls_the_plugins_del() {
    let node = Node::new("10.97.0.0/24");
    let pod = Ns::new("pod");
    let data = node.dir.path().join("host-local");
    let conf = delegated(&node, json!({"type": "host-local", "subnet": "10.97.0.0/24", "dataDir": data}));
    node.ns.ip(&["route", "add", "blackhole", "10.97.0.2/32"]);
    let err = node.cni("ADD", &conf, "hlfail", Some(&pod.path()), "eth0").err().clone();
    assert_eq!(err["code"], 100, "{err}");
    assert!(host_local_files(&data.join(&node.network)).is_empty(), "the reservation must be released");
    node.assert_clean();
}

#[test]
fn static_ipam_and_plugin_errors_pass_through() {
    let node = Node::new("10.98.0.0/24");
    let pod = Ns::new("pod");
    let conf = delegated(&node, json!({"type": "static", "addresses": [{"address": "10.98.0.77/24", "gateway": "10.98.0.1"}]}));
    assert_eq!(pod_ip(node.cni("ADD", &conf, "st", Some(&pod.path()), "eth0").ok()), "10.98.0.77");
    assert!(pod.ping("10.98.0.1"));
    node.cni("DEL", &conf, "st", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();

    let missing = delegated(&node, json!({"type": "no-such-ipam"}));
    let err = node.cni("ADD", &missing, "st2", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("not found in CNI_PATH"), "{err}");
    let bad = delegated(&node, json!({"type": "static", "addresses": [{"address": "not-an-ip"}]}));
    let err = node.cni("ADD", &bad, "st3", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("IPAM plugin static failed"), "{err}");
    node.assert_clean();
}
