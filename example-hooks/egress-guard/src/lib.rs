//! egress-guard (post-ADD): blocks pod egress to the cloud metadata address and configured CIDRs, while
//! DNS keeps working; namespaces listed as exceptions are not restricted.
//!
//! ```toml
//! [hooks.config]
//! blocked = ["10.0.0.0/8"]          # in addition to 169.254.169.254/32
//! exceptions = ["kube-system"]      # namespaces left alone
//! log = true                        # log dropped packets with the prefix "egress-guard"
//! ```

use serde::Deserialize;
use wasmcni_hooks_sdk::{config, export_hook, parse_cidr, pod, AddResult, Attachment, Hook, HookError, Rule, RuleBuilder};

pub const METADATA: &str = "169.254.169.254/32";

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    blocked: Vec<String>,
    #[serde(default)]
    exceptions: Vec<String>,
    #[serde(default)]
    log: bool,
}

pub struct EgressGuard;

impl Hook for EgressGuard {
    fn post_add(a: Attachment, _added: AddResult) -> Result<Vec<Rule>, HookError> {
        let cfg: Config = config(&a)?;
        if cfg.exceptions.iter().any(|ns| ns == pod(&a).0) {
            return Ok(Vec::new());
        }
        // DNS first: an ACCEPT ends evaluation, so lookups work even when the resolver is in a blocked range.
        let mut rules = vec![RuleBuilder::egress().udp().port(53).accept(), RuleBuilder::egress().tcp().port(53).accept()];
        for cidr in std::iter::once(METADATA).chain(cfg.blocked.iter().map(String::as_str)) {
            let net = parse_cidr(cidr)?;
            let rule = RuleBuilder::egress().peer(net.to_string());
            rules.push(if cfg.log { rule.log("egress-guard").drop() } else { rule.drop() });
        }
        Ok(rules)
    }
}

export_hook!(EgressGuard);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wasmcni_hooks_sdk::testing::{attachment, result};
    use wasmcni_hooks_sdk::{Action, Direction, Protocol};

    use super::*;

    #[test]
    fn blocks_metadata_and_configured_cidrs_after_allowing_dns() {
        let a = attachment().config(json!({"blocked": ["10.1.2.3/8"]})).build();
        let rules = EgressGuard::post_add(a, result().ip("10.22.0.5/24", "10.22.0.1").build()).unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!((rules[0].protocol, rules[0].action), (Protocol::Udp, Action::Accept));
        assert_eq!(rules[2].peer.as_deref(), Some(METADATA));
        assert_eq!(rules[3].peer.as_deref(), Some("10.0.0.0/8"), "CIDRs are normalized");
        assert!(rules.iter().all(|r| r.direction == Direction::Egress));
        assert!(rules[2..].iter().all(|r| r.action == Action::Drop && r.log_prefix.is_none()));
    }

    #[test]
    fn exception_namespaces_are_not_restricted() {
        let a = attachment().namespace("kube-system").config(json!({"exceptions": ["kube-system"]})).build();
        assert!(EgressGuard::post_add(a, result().build()).unwrap().is_empty());
    }

    #[test]
    fn a_bad_cidr_is_an_error() {
        let a = attachment().config(json!({"blocked": ["10.0.0.0/99"]})).build();
        assert!(EgressGuard::post_add(a, result().build()).is_err());
    }
}
