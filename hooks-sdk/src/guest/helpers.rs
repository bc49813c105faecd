//! What hooks do all day: read their config and the pod's identity, test addresses against CIDRs, build
//! rules.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::de::DeserializeOwned;

use crate::{Action, AddResult, Attachment, Direction, HookError, IpConfig, PortRange, Protocol, Rule};

pub fn error(message: impl Into<String>) -> HookError {
    HookError { message: message.into() }
}

/// The hook's `config` table from the manifest, deserialized into your type.
pub fn config<T: DeserializeOwned>(a: &Attachment) -> Result<T, HookError> {
    parse_config(&a.config)
}

/// A config table (JSON text, as `validate_config` gets it) deserialized into your type; the error names
/// what serde found wrong ("unknown field `prts`, expected one of ...").
pub fn parse_config<T: DeserializeOwned>(config: &str) -> Result<T, HookError> {
    serde_json::from_str(config).map_err(|e| error(format!("invalid hook config: {e}")))
}

/// The pod's label `key`, when the node agent knows the pod.
pub fn label<'a>(a: &'a Attachment, key: &str) -> Option<&'a str> {
    a.pod_labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// (namespace, name) of the pod, empty strings when the runtime did not say (not kubelet).
pub fn pod(a: &Attachment) -> (&str, &str) {
    (a.pod_namespace.as_deref().unwrap_or_default(), a.pod_name.as_deref().unwrap_or_default())
}

/// The pod's own addresses in an ADD result: those on the interface that has a sandbox (the pod's end). Read
/// them this way rather than by a fixed `iface` index: a bridge network's result lists the bridge first.
pub fn pod_addresses(r: &AddResult) -> Vec<&IpConfig> {
    let pod = r.interfaces.iter().position(|i| i.sandbox.is_some()).map(|i| i as u32);
    r.ips.iter().filter(|ip| pod.is_some() && ip.iface == pod).collect()
}

pub fn parse_cidr(s: &str) -> Result<IpNet, HookError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| error(format!("{s:?} is not a CIDR or address")))
}

/// Whether `ip` (an address, or an address with a prefix length as in results) lies in any of `cidrs`.
pub fn in_any(ip: &str, cidrs: &[IpNet]) -> bool {
    let addr = ip.split('/').next().unwrap_or_default().parse::<IpAddr>();
    addr.is_ok_and(|a| cidrs.iter().any(|c| c.contains(&a)))
}

/// Builds a `Rule`: `RuleBuilder::egress().tcp().port(443).peer("10.0.0.0/8").drop()`.
pub struct RuleBuilder(Rule);

impl RuleBuilder {
    fn new(direction: Direction) -> Self {
        RuleBuilder(Rule { direction, protocol: Protocol::Any, ports: None, peer: None, action: Action::Drop, log_prefix: None })
    }
    /// Traffic to the pod.
    pub fn ingress() -> Self {
        Self::new(Direction::Ingress)
    }
    /// Traffic from the pod.
    pub fn egress() -> Self {
        Self::new(Direction::Egress)
    }
    pub fn tcp(mut self) -> Self {
        self.0.protocol = Protocol::Tcp;
        self
    }
    pub fn udp(mut self) -> Self {
        self.0.protocol = Protocol::Udp;
        self
    }
    pub fn icmp(mut self) -> Self {
        self.0.protocol = Protocol::Icmp;
        self
    }
    pub fn protocol(mut self, p: Protocol) -> Self {
        self.0.protocol = p;
        self
    }
    pub fn port(self, port: u16) -> Self {
        self.ports(port, port)
    }
    pub fn ports(mut self, start: u16, end: u16) -> Self {
        self.0.ports = Some(PortRange { start, end });
        self
    }
    /// The other side: source for ingress, destination for egress.
    pub fn peer(mut self, cidr: impl Into<String>) -> Self {
        self.0.peer = Some(cidr.into());
        self
    }
    pub fn log(mut self, prefix: impl Into<String>) -> Self {
        self.0.log_prefix = Some(prefix.into());
        self
    }
    pub fn accept(mut self) -> Rule {
        self.0.action = Action::Accept;
        self.0
    }
    pub fn drop(mut self) -> Rule {
        self.0.action = Action::Drop;
        self.0
    }
    pub fn reject(mut self) -> Rule {
        self.0.action = Action::Reject;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::attachment;

    #[test]
    fn cidrs_and_addresses() {
        let nets = vec![parse_cidr("10.0.0.0/8").unwrap(), parse_cidr("169.254.169.254").unwrap()];
        assert!(in_any("10.2.3.4/24", &nets));
        assert!(in_any("169.254.169.254", &nets));
        assert!(!in_any("192.168.1.1", &nets));
        assert!(parse_cidr("nope").is_err());
        assert_eq!(parse_cidr("10.1.2.3/16").unwrap().to_string(), "10.1.0.0/16");
    }

    #[test]
    fn rules_and_config() {
        let r = RuleBuilder::egress().tcp().port(443).peer("10.0.0.0/8").log("guard").drop();
        assert_eq!(r.direction, Direction::Egress);
        assert_eq!(r.ports, Some(PortRange { start: 443, end: 443 }));
        assert_eq!(r.action, Action::Drop);
        #[derive(serde::Deserialize)]
        struct C {
            mtu: u32,
        }
        let a = attachment().namespace("prod").name("web").config(serde_json::json!({"mtu": 1400})).build();
        assert_eq!(config::<C>(&a).unwrap().mtu, 1400);
        assert_eq!(pod(&a), ("prod", "web"));
        assert!(config::<C>(&attachment().build()).is_err());
    }
}
