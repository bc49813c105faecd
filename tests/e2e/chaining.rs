//! wasmcni first in a chain with Debian's reference portmap, tuning and bandwidth plugins, run the way a
//! runtime runs a conflist: in order with prevResult for ADD and CHECK, in reverse for DEL.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

struct Chain<'a> {
    node: &'a Node,
    plugins: Vec<Value>,
    pod: &'a Ns,
    id: &'static str,
}

impl Chain<'_> {
    fn conf(&self, plugin: &Value, version: &str, prev: Option<&Value>) -> Value {
        let mut c = plugin.clone();
        c["cniVersion"] = json!(version);
        c["name"] = json!(self.node.network);
        if let Some(p) = prev {
            c["prevResult"] = p.clone();
        }
        c
    }

    fn run(&self, command: &str, plugin: &Value, prev: Option<&Value>) -> Reply {
        let ty = plugin["type"].as_str().unwrap();
        let binary = if ty == "wasmcni" { BIN.to_string() } else { format!("/usr/lib/cni/{ty}") };
        let env = cni_env(command, self.id, Some(&self.pod.path()), "eth0");
        self.node.spawn_plugin(&binary, &env, &self.conf(plugin, "1.0.0", prev)).wait()
    }

    fn add(&self) -> Value {
        let mut prev: Option<Value> = None;
        for p in &self.plugins {
            let r = self.run("ADD", p, prev.as_ref());
            let out = r.ok().clone();
            prev = Some(out);
        }
        prev.unwrap()
    }

    /// Every plugin but portmap: Debian's portmap 1.1.1 CHECK looks for its IPv4 rules in the ip6tables nat
    /// table (containernetworking/plugins issue 819, fixed upstream later), so it fails for IPv4-only pods
    /// (no such chain) and dual-stack pods alike (v4 rules in the v6 chain), whatever the first plugin is.
    fn check(&self, result: &Value) {
        for p in self.plugins.iter().filter(|p| p["type"] != "portmap") {
            self.run("CHECK", p, Some(result)).succeeded();
        }
    }

    fn del(&self, result: &Value) {
        for p in self.plugins.iter().rev() {
            self.run("DEL", p, Some(result)).succeeded();
        }
    }
}

#[test]
fn wasmcni_portmap_tuning_bandwidth_chain() {
    let node = Node::new("10.99.0.0/24");
    let pod = Ns::new("pod");
    let mut ours = node.conf("1.0.0");
    ours.as_object_mut().unwrap().remove("cniVersion");
    let chain = Chain {
        node: &node,
        pod: &pod,
        id: "chained",
        plugins: vec![
            ours,
            json!({"type": "portmap", "capabilities": {"portMappings": true},
                   "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}}),
            json!({"type": "tuning", "sysctl": {"net.core.somaxconn": "777"}}),
            json!({"type": "bandwidth", "ingressRate": 8000000, "ingressBurst": 80000, "egressRate": 8000000, "egressBurst": 80000}),
        ],
    };
    let result = chain.add();
    let host = result["interfaces"][0]["name"].as_str().unwrap().to_string();

    // tuning applied its sysctl inside the pod.
    let somaxconn = pod.exec(&["cat", "/proc/sys/net/core/somaxconn"]);
    assert_eq!(String::from_utf8_lossy(&somaxconn.stdout).trim(), "777");
    // bandwidth put a token bucket on the node side of the pod's veth.
    let qdisc = String::from_utf8_lossy(&node.ns.exec(&["tc", "qdisc", "show", "dev", &host]).stdout).into_owned();
    assert!(qdisc.contains("tbf"), "{qdisc}");
    assert!(node.ns.links().contains("bwp"), "bandwidth's ifb device for egress shaping");
    // portmap forwards a host port from upstream to the pod.
    let ip = pod_ip(&result);
    let server = pod.within(|| TcpListener::bind((ip.as_str(), 80)).unwrap());
    let t = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        buf
    });
    node.upstream.within(|| {
        let addr = format!("{NODE_UPLINK_IP}:18080").parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("the host port forwards to the pod");
        s.write_all(b"ping").unwrap();
    });
    assert_eq!(&t.join().unwrap(), b"ping");

    chain.check(&result);
    chain.del(&result);
    node.assert_clean_except_shared_portmap_chains();
    assert!(!node.ns.links().contains(&host));
    assert!(!node.ns.links().contains("bwp"), "bandwidth's DEL removes its ifb: {}", node.ns.links());
}

#[test]
fn dual_stack_chain_forwards_a_host_port_over_ipv6_and_passes_check() {
    let node = Node::new("10.98.0.0/24");
    let pod = Ns::new("pod");
    let mut ours = node.conf("1.0.0");
    ours.as_object_mut().unwrap().remove("cniVersion");
    ours["ipam"] = json!({"type": "builtin", "dataDir": node.ipam_dir(), "ranges": [[{"subnet": "10.98.0.0/24"}], [{"subnet": "fd00:98::/64"}]]});
    let chain = Chain {
        node: &node,
        pod: &pod,
        id: "chained6",
        plugins: vec![
            ours,
            json!({"type": "portmap", "capabilities": {"portMappings": true},
                   "runtimeConfig": {"portMappings": [{"hostPort": 18081, "containerPort": 80, "protocol": "tcp"}]}}),
            json!({"type": "tuning", "sysctl": {"net.core.somaxconn": "778"}}),
        ],
    };
    let result = chain.add();
    assert_eq!(result["ips"].as_array().unwrap().len(), 2, "{result}");
    // The host port forwards over IPv6 too.
    let ip6 = result["ips"][1]["address"].as_str().unwrap().split('/').next().unwrap().to_string();
    let server = pod.within(|| TcpListener::bind((ip6.parse::<std::net::IpAddr>().unwrap(), 80)).unwrap());
    let t = std::thread::spawn(move || server.accept().map(|_| ()).is_ok());
    node.upstream.within(|| {
        let addr = format!("[{NODE_UPLINK_IP6}]:18081").parse().unwrap();
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("the v6 host port forwards to the pod");
    });
    assert!(t.join().unwrap());
    chain.check(&result);
    chain.del(&result);
    node.assert_clean_except_shared_portmap_chains();
}

/// Why portmap's CHECK is left out above: it fails the same way behind the reference ptp plugin, so it is
/// portmap's bug, not ours. If a fixed portmap arrives, this fails, and the chains above should CHECK it.
#[test]
fn portmaps_check_fails_behind_the_reference_ptp_plugin_too() {
    let node = Node::new("10.97.0.0/24");
    let pod = Ns::new("pod");
    let chain = Chain {
        node: &node,
        pod: &pod,
        id: "refptp",
        plugins: vec![
            json!({"type": "ptp", "ipMasq": true, "ipam": {"type": "host-local", "subnet": "10.97.0.0/24",
                   "dataDir": node.dir.path().join("hl")}}),
            json!({"type": "portmap", "capabilities": {"portMappings": true},
                   "runtimeConfig": {"portMappings": [{"hostPort": 18082, "containerPort": 80, "protocol": "tcp"}]}}),
        ],
    };
    let result = chain.add();
    let err = chain.run("CHECK", &chain.plugins[1], Some(&result)).err().clone();
    assert!(err["msg"].as_str().unwrap().contains("could not check ipv6 dnat"), "{err}");
    chain.del(&result);
}
