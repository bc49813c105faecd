//! egress-by-label (post-ADD): a pod may reach outside the cluster only when it carries a label saying so
//! (`egress=allowed` by default); every other pod reaches DNS and the listed CIDRs (the cluster's) only.
//! Labels come from the node agent, so the manifest entry says `needs = ["pod-metadata"]`: ADD waits a
//! moment for the agent to know a new pod, and without the agent the hook fails (or, with on_error =
//! "ignore", is skipped).
//!
//! ```toml
//! [[hooks]]
//! name = "egress-by-label"
//! module = "egress_by_label.wasm"
//! stages = ["post-add"]
//! needs = ["pod-metadata"]
//! [hooks.config]
//! label = "egress"                  # default
//! value = "allowed"                 # default
//! allow = ["10.244.0.0/16"]         # always reachable (the cluster's pods, its services)
//! ```

use serde::Deserialize;
use wasmcni_hooks_sdk::{error, export_hook, label, parse_cidr, parse_config, AddResult, Attachment, Hook, HookError, Rule, RuleBuilder};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_label")]
    label: String,
    #[serde(default = "default_value")]
    value: String,
    #[serde(default)]
    allow: Vec<String>,
}

fn default_label() -> String {
    "egress".into()
}

fn default_value() -> String {
    "allowed".into()
}

impl Config {
    fn checked(text: &str) -> Result<Config, HookError> {
        let cfg: Config = parse_config(text)?;
        if cfg.label.is_empty() {
            return Err(error("field label: must not be empty"));
        }
        for (i, c) in cfg.allow.iter().enumerate() {
            parse_cidr(c).map_err(|e| error(format!("field allow[{i}]: {}", e.message)))?;
        }
        Ok(cfg)
    }
}

pub struct EgressByLabel;

impl Hook for EgressByLabel {
    fn validate_config(config: &str) -> Result<(), HookError> {
        Config::checked(config).map(|_| ())
    }

    fn post_add(a: Attachment, _added: AddResult) -> Result<Vec<Rule>, HookError> {
        let cfg = Config::checked(&a.config)?;
        if label(&a, &cfg.label) == Some(cfg.value.as_str()) {
            return Ok(Vec::new());
        }
        let mut rules = vec![RuleBuilder::egress().udp().port(53).accept(), RuleBuilder::egress().tcp().port(53).accept()];
        for c in &cfg.allow {
            rules.push(RuleBuilder::egress().peer(parse_cidr(c)?.to_string()).accept());
        }
        rules.push(RuleBuilder::egress().drop());
        Ok(rules)
    }
}

export_hook!(EgressByLabel);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wasmcni_hooks_sdk::testing::{attachment, result};
    use wasmcni_hooks_sdk::{Action, Direction};

    use super::*;

    #[test]
    fn a_labelled_pod_goes_anywhere_and_others_only_where_allowed() {
        let cfg = json!({"allow": ["10.244.0.0/16"]});
        let labelled = attachment().config(cfg.clone()).label("egress", "allowed").build();
        assert!(EgressByLabel::post_add(labelled, result().build()).unwrap().is_empty());
        let other = attachment().config(cfg).label("egress", "no").build();
        let rules = EgressByLabel::post_add(other, result().build()).unwrap();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[2].peer.as_deref(), Some("10.244.0.0/16"));
        assert_eq!((rules[3].direction, rules[3].action, rules[3].peer.as_deref()), (Direction::Egress, Action::Drop, None));
    }

    #[test]
    fn a_bad_config_is_refused_when_loaded() {
        assert!(EgressByLabel::validate_config(r#"{"allow": ["10.0.0.0/8"]}"#).is_ok());
        let e = EgressByLabel::validate_config(r#"{"allow": ["ten"]}"#).unwrap_err();
        assert!(e.message.starts_with("field allow[0]"), "{}", e.message);
        let e = EgressByLabel::validate_config(r#"{"lable": "x"}"#).unwrap_err();
        assert!(e.message.contains("unknown field `lable`"), "{}", e.message);
    }
}
