//! The result printed for every requested cniVersion parses as that version's schema: exactly the keys
//! the version defines, with the types it defines.

use serde_json::Value;

use crate::support::*;

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
    k.sort();
    k
}

fn assert_cidr(v: &Value) {
    let s = v.as_str().expect("a string");
    assert!(s.parse::<ipnet::IpNet>().is_ok(), "{s} is not a CIDR");
}

fn assert_ip(v: &Value) {
    let s = v.as_str().expect("a string");
    assert!(s.parse::<std::net::IpAddr>().is_ok(), "{s} is not an IP");
}

fn check_legacy(r: &Value) {
    assert_eq!(keys(r), ["cniVersion", "ip4"]);
    assert_eq!(keys(&r["ip4"]), ["gateway", "ip", "routes"]);
    assert_cidr(&r["ip4"]["ip"]);
    assert_ip(&r["ip4"]["gateway"]);
    for route in r["ip4"]["routes"].as_array().unwrap() {
        assert_cidr(&route["dst"]);
        assert!(keys(route).iter().all(|k| ["dst", "gw"].contains(k)));
    }
}

fn check_modern(r: &Value, version: &str) {
    assert_eq!(keys(r), ["cniVersion", "interfaces", "ips", "routes"]);
    let ifaces = r["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 2);
    let allowed_iface: &[&str] = if version == "1.1.0" { &["mac", "mtu", "name", "sandbox"] } else { &["mac", "name", "sandbox"] };
    for i in ifaces {
        assert!(keys(i).iter().all(|k| allowed_iface.contains(k)), "{version}: {i}");
        let mac = i["mac"].as_str().unwrap();
        assert_eq!(mac.len(), 17, "{mac}");
    }
    assert!(ifaces[1]["sandbox"].as_str().unwrap().starts_with("/var/run/netns/"));
    if version == "1.1.0" {
        assert_eq!(ifaces[1]["mtu"], 1400);
    }
    for ip in r["ips"].as_array().unwrap() {
        let expect: &[&str] = if version.starts_with("0.") { &["address", "gateway", "interface", "version"] } else { &["address", "gateway", "interface"] };
        assert_eq!(keys(ip), expect, "{version}");
        if version.starts_with("0.") {
            assert_eq!(ip["version"], "4");
        }
        assert_cidr(&ip["address"]);
        assert_ip(&ip["gateway"]);
        let idx = ip["interface"].as_u64().unwrap() as usize;
        assert!(ifaces[idx].get("sandbox").is_some(), "ips[].interface must point at the pod interface");
    }
    for route in r["routes"].as_array().unwrap() {
        assert_cidr(&route["dst"]);
        assert_ip(&route["gw"]);
    }
}

#[test]
fn result_matches_each_requested_version() {
    let node = Node::new("10.75.0.0/24");
    for version in wasmcni::cni::version::SUPPORTED {
        let pod = Ns::new("ver");
        let id = format!("ver-{}", version.replace('.', ""));
        let conf = node.conf(version);
        let res = node.cni("ADD", &conf, &id, Some(&pod.path()), "eth0").ok().clone();
        assert_eq!(res["cniVersion"], *version);
        if version.starts_with("0.1") || version.starts_with("0.2") {
            check_legacy(&res);
        } else {
            check_modern(&res, version);
        }
        node.cni("DEL", &conf, &id, Some(&pod.path()), "eth0").succeeded();
    }
    node.assert_clean();
}
