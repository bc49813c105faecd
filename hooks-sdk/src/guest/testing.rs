//! Native testing for hook authors: builders for the inputs the plugin passes, and captured logs. Call your
//! `Hook` methods directly under `cargo test`; no runtime needed. For the built component, use
//! `wasmcni hook test` with fixture files.

use std::cell::RefCell;

use crate::{AddResult, Attachment, Dns, Iface, IpConfig, Level, Plan, Route};

thread_local! {
    static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

#[doc(hidden)]
pub fn capture(level: Level, message: &str) {
    LOGS.with(|l| l.borrow_mut().push((level, message.to_string())));
}

/// Takes the lines logged on this thread since the last call.
pub fn logs() -> Vec<(Level, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

pub fn empty_dns() -> Dns {
    Dns { nameservers: vec![], domain: None, search: vec![], options: vec![] }
}

pub struct AttachmentBuilder(Attachment);

/// An attachment like the plugin's for a kubelet pod `default/test`, container `test-ctr`, ifname `eth0`.
pub fn attachment() -> AttachmentBuilder {
    AttachmentBuilder(Attachment {
        container_id: "test-ctr".into(),
        ifname: "eth0".into(),
        netns: "/var/run/netns/test".into(),
        network: "podnet".into(),
        pod_namespace: Some("default".into()),
        pod_name: Some("test".into()),
        pod_uid: None,
        args: vec![],
        runtime_config: "{}".into(),
        config: "{}".into(),
    })
}

impl AttachmentBuilder {
    pub fn namespace(mut self, ns: &str) -> Self {
        self.0.pod_namespace = Some(ns.into());
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.0.pod_name = Some(name.into());
        self
    }
    pub fn container_id(mut self, id: &str) -> Self {
        self.0.container_id = id.into();
        self
    }
    pub fn network(mut self, network: &str) -> Self {
        self.0.network = network.into();
        self
    }
    pub fn arg(mut self, key: &str, value: &str) -> Self {
        self.0.args.push((key.into(), value.into()));
        self
    }
    /// The hook's config table, as the manifest would give it.
    pub fn config(mut self, config: serde_json::Value) -> Self {
        self.0.config = config.to_string();
        self
    }
    pub fn runtime_config(mut self, rc: serde_json::Value) -> Self {
        self.0.runtime_config = rc.to_string();
        self
    }
    pub fn build(self) -> Attachment {
        self.0
    }
}

/// An empty plan: IPAM chooses, no extra routes, default MTU.
pub fn plan() -> Plan {
    Plan { ips: vec![], routes: vec![], mtu: None, mac: None, dns: empty_dns() }
}

pub struct ResultBuilder(AddResult);

/// A result like the plugin's: host veth and pod interface, no addresses yet (add them with `ip`).
pub fn result() -> ResultBuilder {
    ResultBuilder(AddResult {
        interfaces: vec![
            Iface { name: "wcni0123456789a".into(), mac: "02:00:00:00:00:01".into(), sandbox: None },
            Iface { name: "eth0".into(), mac: "02:00:00:00:00:02".into(), sandbox: Some("/var/run/netns/test".into()) },
        ],
        ips: vec![],
        routes: vec![],
        dns: empty_dns(),
    })
}

impl ResultBuilder {
    /// Adds an address ("10.22.0.5/24") with its gateway on the pod interface.
    pub fn ip(mut self, address: &str, gateway: &str) -> Self {
        self.0.ips.push(IpConfig { address: address.into(), gateway: Some(gateway.into()), iface: Some(1) });
        self
    }
    pub fn route(mut self, dst: &str, gw: Option<&str>) -> Self {
        self.0.routes.push(Route { dst: dst.into(), gw: gw.map(String::from) });
        self
    }
    pub fn nameserver(mut self, ns: &str) -> Self {
        self.0.dns.nameservers.push(ns.into());
        self
    }
    pub fn build(self) -> AddResult {
        self.0
    }
}
