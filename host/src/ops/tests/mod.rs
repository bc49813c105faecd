//! The operations against recording fakes of the kernel and the firewall: no root, no namespaces. What a
//! fake cannot show (that the kernel accepts our requests, that packets flow) the kernel tests show.

mod add;
mod check_gc;
mod del;
mod errors;

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::Deps;
use crate::cni::request::{Command, Request};
use crate::cni::result::CniResult;
use crate::error::Error;
use crate::firewall::fake::{FakeFirewall, FakeFirewalls};
use crate::firewall::{Backend, Noop};
use crate::hooks::NoHooks;
use crate::netlink::fake::{FakeKernel, FakeKernelDeps, NODE};

pub const POD: &str = "/var/run/netns/fake-pod";

pub struct Node {
    pub tmp: tempfile::TempDir,
    pub kernel: FakeKernel,
    pub firewall: FakeFirewall,
    kernel_deps: FakeKernelDeps,
    firewalls: FakeFirewalls,
}

impl Node {
    pub fn new() -> Self {
        let kernel = FakeKernel::new();
        kernel.add_netns(POD);
        let firewall = FakeFirewall::new(Backend::Iptables).with_journal(kernel.journal());
        Node {
            tmp: tempfile::tempdir().unwrap(),
            kernel_deps: FakeKernelDeps::new(kernel.clone()),
            firewalls: FakeFirewalls(firewall.clone(), Noop),
            kernel,
            firewall,
        }
    }

    pub fn deps(&self) -> Deps<'_> {
        Deps { kernel: &self.kernel_deps, firewalls: &self.firewalls }
    }

    pub fn conf(&self) -> Value {
        json!({
            "cniVersion": "1.1.0", "name": "net", "type": "wasmcni", "ipMasq": true, "mtu": 1400,
            "stateDir": self.tmp.path().join("state"),
            "runDir": self.tmp.path().join("run"),
            "ipam": {"type": "builtin", "subnet": "10.9.0.0/24", "dataDir": self.tmp.path().join("ipam")},
        })
    }

    pub fn request(&self, command: Command, conf: &Value, id: &str) -> Request {
        let env: HashMap<String, String> = [
            ("CNI_CONTAINERID", id),
            ("CNI_IFNAME", "eth0"),
            ("CNI_NETNS", POD),
            ("CNI_ARGS", "K8S_POD_NAMESPACE=default;K8S_POD_NAME=test"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Request::parse(command, &env, conf.to_string().as_bytes()).unwrap()
    }

    pub fn add_with(&self, conf: &Value, id: &str) -> Result<CniResult, Error> {
        let req = self.request(Command::Add, conf, id);
        super::add::run(&req, &self.deps(), || Ok(&NoHooks))
    }

    pub fn add(&self, id: &str) -> Result<CniResult, Error> {
        self.add_with(&self.conf(), id)
    }

    pub fn del_with(&self, conf: &Value, id: &str) -> Result<(), Error> {
        super::del::run(&self.request(Command::Del, conf, id), &self.deps(), &NoHooks)
    }

    pub fn del(&self, id: &str) -> Result<(), Error> {
        self.del_with(&self.conf(), id)
    }

    pub fn check(&self, id: &str) -> Result<(), Error> {
        super::check::run(&self.request(Command::Check, &self.conf(), id), &self.deps())
    }

    pub fn gc(&self, keep: &[&str]) -> Result<(), Error> {
        let mut conf = self.conf();
        conf["cni.dev/valid-attachments"] = keep.iter().map(|id| json!({"containerID": id, "ifname": "eth0"})).collect();
        super::gc::run(&self.request(Command::Gc, &conf, "gc"), &self.deps())
    }

    pub fn records(&self) -> Vec<PathBuf> {
        let dir = self.tmp.path().join("state/attachments/net");
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default()
    }

    pub fn reserved(&self) -> Vec<String> {
        let dir = self.tmp.path().join("ipam/net");
        let Ok(d) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut ips: Vec<String> = d
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect();
        ips.sort();
        ips
    }

    pub fn node_links(&self) -> Vec<String> {
        self.kernel.link_names(NODE)
    }

    pub fn pod_links(&self) -> Vec<String> {
        self.kernel.link_names(POD)
    }

    /// Nothing of any attachment: the node's own links, the pod's lo, no reservation, record or rule.
    pub fn assert_clean(&self) {
        assert_eq!(self.node_links(), vec!["lo", "uplink"], "links left on the node");
        if self.kernel.space(POD).is_some() {
            assert_eq!(self.pod_links(), vec!["lo"], "links left in the pod");
        }
        assert!(self.reserved().is_empty(), "reservations left: {:?}", self.reserved());
        assert!(self.records().is_empty(), "records left: {:?}", self.records());
        assert!(self.firewall.state().applied.is_empty(), "rules left: {:?}", self.firewall.state().applied.keys());
    }

}

/// Position of the first call containing `needle`.
pub fn pos(calls: &[String], needle: &str) -> usize {
    calls.iter().position(|c| c.contains(needle)).unwrap_or_else(|| panic!("no call with {needle:?} in {calls:#?}"))
}
