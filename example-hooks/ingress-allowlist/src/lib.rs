//! ingress-allowlist (post-ADD): only the listed ports reach the pod (new connections; replies to the pod's
//! own connections always pass). Optionally only from some CIDRs; per-namespace port lists.
//!
//! ```toml
//! [hooks.config]
//! ports = [80, 443]                       # tcp
//! udp_ports = []
//! from = ["10.0.0.0/8"]                   # default: anywhere
//! same_subnet = false                     # true: everything from the pod's own subnet is accepted
//! [hooks.config.namespaces]
//! monitoring = [9100]                     # replaces `ports` for pods in that namespace
//! ```

use std::collections::HashMap;

use serde::Deserialize;
use wasmcni_hooks_sdk::{config, export_hook, parse_cidr, pod, pod_addresses, AddResult, Attachment, Hook, HookError, Rule, RuleBuilder};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    udp_ports: Vec<u16>,
    #[serde(default)]
    from: Vec<String>,
    #[serde(default)]
    namespaces: HashMap<String, Vec<u16>>,
    #[serde(default)]
    same_subnet: bool,
}

pub struct IngressAllowlist;

impl Hook for IngressAllowlist {
    fn post_add(a: Attachment, added: AddResult) -> Result<Vec<Rule>, HookError> {
        let cfg: Config = config(&a)?;
        let mut rules = Vec::new();
        if cfg.same_subnet {
            // The pod's own subnet: its neighbours on this network.
            for ip in pod_addresses(&added) {
                rules.push(RuleBuilder::ingress().peer(parse_cidr(&ip.address)?.to_string()).accept());
            }
        }
        let tcp = cfg.namespaces.get(pod(&a).0).unwrap_or(&cfg.ports);
        let peers: Vec<Option<String>> = if cfg.from.is_empty() {
            vec![None]
        } else {
            cfg.from.iter().map(|c| parse_cidr(c).map(|n| Some(n.to_string()))).collect::<Result<_, _>>()?
        };
        for peer in &peers {
            let base = || match peer {
                Some(p) => RuleBuilder::ingress().peer(p.clone()),
                None => RuleBuilder::ingress(),
            };
            rules.extend(tcp.iter().map(|p| base().tcp().port(*p).accept()));
            rules.extend(cfg.udp_ports.iter().map(|p| base().udp().port(*p).accept()));
        }
        rules.push(RuleBuilder::ingress().drop());
        Ok(rules)
    }
}

export_hook!(IngressAllowlist);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wasmcni_hooks_sdk::testing::{attachment, result};
    use wasmcni_hooks_sdk::{Action, PortRange, Protocol};

    use super::*;

    #[test]
    fn listed_ports_then_drop_everything_else() {
        let a = attachment().config(json!({"ports": [80, 443]})).build();
        let rules = IngressAllowlist::post_add(a, result().build()).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[1].ports, Some(PortRange { start: 443, end: 443 }));
        assert_eq!((rules[2].protocol, rules[2].action, rules[2].ports), (Protocol::Any, Action::Drop, None));
    }

    #[test]
    fn the_own_subnet_is_found_on_the_pod_interface_in_both_modes() {
        let a = || attachment().config(json!({"same_subnet": true})).build();
        for r in [result(), result().bridge("cni0")] {
            let rules = IngressAllowlist::post_add(a(), r.ip("10.22.0.5/24", "10.22.0.1").build()).unwrap();
            assert_eq!(rules[0].peer.as_deref(), Some("10.22.0.0/24"));
            assert_eq!(rules[0].action, Action::Accept);
        }
    }

    #[test]
    fn sources_and_namespace_overrides() {
        let cfg = json!({"ports": [80], "from": ["10.0.0.0/8", "192.168.0.0/16"], "namespaces": {"monitoring": [9100]}});
        let a = attachment().namespace("monitoring").config(cfg).build();
        let rules = IngressAllowlist::post_add(a, result().build()).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].ports, Some(PortRange { start: 9100, end: 9100 }));
        assert_eq!(rules[1].peer.as_deref(), Some("192.168.0.0/16"));
    }
}
