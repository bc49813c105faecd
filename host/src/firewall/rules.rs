//! An attachment's firewall state as data: what ADD asks a backend to apply, what the record keeps, and what
//! DEL, CHECK and GC hand back to the backend that made it.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Any,
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Accept,
    Drop,
    Reject,
}

/// A validated hook rule (hooks::validate makes them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookRule {
    pub direction: Direction,
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<(u16, u16)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<IpNet>,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_prefix: Option<String>,
}

impl HookRule {
    /// For log lines: "drop egress tcp to 203.0.113.0/24 port 80".
    pub fn describe(&self) -> String {
        let action = match self.action {
            Action::Accept => "accept",
            Action::Drop => "drop",
            Action::Reject => "reject",
        };
        let (direction, way) = match self.direction {
            Direction::Ingress => ("ingress", "from"),
            Direction::Egress => ("egress", "to"),
        };
        let protocol = match self.protocol {
            Protocol::Any => "",
            Protocol::Tcp => " tcp",
            Protocol::Udp => " udp",
            Protocol::Icmp => " icmp",
        };
        let peer = self.peer.map(|p| format!(" {way} {p}")).unwrap_or_default();
        let ports = match self.ports {
            Some((a, b)) if a == b => format!(" port {a}"),
            Some((a, b)) => format!(" ports {a}-{b}"),
            None => String::new(),
        };
        format!("{action} {direction}{protocol}{peer}{ports}")
    }
}

/// One hook's rules for the attachment, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookChain {
    pub hook: String,
    pub rules: Vec<HookRule>,
}

/// Masquerade of the pod's traffic: everything from `sources` that leaves for neither the pod's own subnet
/// nor one of `except` (the cluster's pod CIDRs) nor multicast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Masquerade {
    /// Pod address and its subnet, per family.
    pub sources: Vec<(IpAddr, IpNet)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRules {
    pub network: String,
    pub container_id: String,
    /// Empty when only the container is known (a leftover found by the masquerade comment).
    pub ifname: String,
    pub host_veth: String,
    /// Bridged pods are matched by address: their routed traffic enters FORWARD from the bridge, not the
    /// veth. Routed pods by their node-side veth, which they cannot forge.
    #[serde(default)]
    pub match_by_address: bool,
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masquerade: Option<Masquerade>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookChain>,
    /// Chains known by name only (records of older versions, leftovers): removed, never checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_chains: Vec<String>,
}

impl AttachmentRules {
    pub fn new(network: &str, container_id: &str, ifname: &str, host_veth: &str) -> Self {
        AttachmentRules {
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            host_veth: host_veth.into(),
            match_by_address: false,
            addresses: Vec::new(),
            masquerade: None,
            hooks: Vec::new(),
            extra_chains: Vec::new(),
        }
    }

    /// Nothing for a backend to do.
    pub fn is_empty(&self) -> bool {
        self.masquerade.is_none() && self.hooks.iter().all(|h| h.rules.is_empty()) && self.extra_chains.is_empty()
    }
}
