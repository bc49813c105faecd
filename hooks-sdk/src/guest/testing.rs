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
        pod_labels: vec![],
        pod_annotations: vec![],
        service_account: None,
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
    /// A label of the pod, as the node agent would know it.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0.pod_labels.push((key.into(), value.into()));
        self
    }
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0.pod_annotations.push((key.into(), value.into()));
        self
    }
    pub fn service_account(mut self, sa: &str) -> Self {
        self.0.service_account = Some(sa.into());
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

pub struct ResultBuilder {
    bridge: Option<String>,
    addresses: Vec<(String, String)>,
    routes: Vec<Route>,
    dns: Dns,
}

/// A result like the plugin's for a routed (ptp) network: host veth and pod interface, no addresses yet
/// (add them with `ip`). `bridge` makes it a bridge network's: the bridge comes first, as on the node.
pub fn result() -> ResultBuilder {
    ResultBuilder { bridge: None, addresses: vec![], routes: vec![], dns: empty_dns() }
}

impl ResultBuilder {
    /// A bridge-mode network's result: interfaces are [bridge, host veth, pod], so the pod is index 2.
    pub fn bridge(mut self, name: &str) -> Self {
        self.bridge = Some(name.into());
        self
    }
    /// Adds an address ("10.22.0.5/24") with its gateway on the pod interface.
    pub fn ip(mut self, address: &str, gateway: &str) -> Self {
        self.addresses.push((address.into(), gateway.into()));
        self
    }
    pub fn route(mut self, dst: &str, gw: Option<&str>) -> Self {
        self.routes.push(Route { dst: dst.into(), gw: gw.map(String::from) });
        self
    }
    pub fn nameserver(mut self, ns: &str) -> Self {
        self.dns.nameservers.push(ns.into());
        self
    }
    pub fn build(self) -> AddResult {
        let iface = |name: &str, mac: &str, sandbox: Option<&str>| Iface { name: name.into(), mac: mac.into(), sandbox: sandbox.map(String::from) };
        // The plugin's own layout (crate::layout), so `iface` indexes here are the ones a node gives.
        let (interfaces, pod) = crate::layout::interfaces(
            self.bridge.as_deref().map(|b| iface(b, "02:00:00:00:00:03", None)),
            iface("wcni0123456789a", "02:00:00:00:00:01", None),
            iface("eth0", "02:00:00:00:00:02", Some("/var/run/netns/test")),
        );
        let ips = self
            .addresses
            .into_iter()
            .map(|(address, gateway)| IpConfig { address, gateway: Some(gateway), iface: Some(pod) })
            .collect();
        AddResult { interfaces, ips, routes: self.routes, dns: self.dns }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pod_interface_is_where_the_plugin_puts_it() {
        let ptp = super::result().ip("10.0.0.5/24", "10.0.0.1").build();
        assert_eq!(ptp.ips[0].iface, Some(1));
        assert_eq!(ptp.interfaces[1].name, "eth0");
        let br = super::result().bridge("cni0").ip("10.0.0.5/24", "10.0.0.1").build();
        assert_eq!(br.ips[0].iface, Some(2));
        assert_eq!(br.interfaces[0].name, "cni0");
        assert_eq!(br.interfaces[2].sandbox.as_deref(), Some("/var/run/netns/test"));
    }
}
