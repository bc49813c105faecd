//! {{name}} (post-ADD): only the listed TCP ports reach the pod; everything else coming in is dropped.
//! Replies to the pod's own connections always pass (the host accepts established traffic first).
//!
//! ```toml
//! [[hooks]]
//! name = "{{name}}"
//! module = "{{name}}.wasm"
//! stages = ["post-add"]
//! [hooks.config]
//! ports = [80, 443]
//! ```

use serde::Deserialize;
use wasmcni_hooks_sdk::{error, export_hook, log, parse_config, pod, AddResult, Attachment, Hook, HookError, Level, Rule, RuleBuilder};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    ports: Vec<i64>,
}

impl Config {
    /// The config table, checked: the messages name the field, as `wasmcni hook check` shows them.
    fn parse(text: &str) -> Result<Vec<u16>, HookError> {
        let cfg: Config = parse_config(text)?;
        cfg.ports
            .iter()
            .enumerate()
            .map(|(i, p)| u16::try_from(*p).ok().filter(|p| *p > 0).ok_or_else(|| error(format!("field ports[{i}]: must be a port number (1-65535)"))))
            .collect()
    }
}

pub struct Ports;

impl Hook for Ports {
    // Called when the hook is loaded (STATUS, `wasmcni hook check`): a bad config never reaches a pod.
    fn validate_config(config: &str) -> Result<(), HookError> {
        Config::parse(config).map(|_| ())
    }

    fn post_add(a: Attachment, _added: AddResult) -> Result<Vec<Rule>, HookError> {
        let ports = Config::parse(&a.config)?;
        let mut rules: Vec<Rule> = ports.iter().map(|p| RuleBuilder::ingress().tcp().port(*p).accept()).collect();
        rules.push(RuleBuilder::ingress().drop());
        let (namespace, name) = pod(&a);
        log(Level::Info, &format!("{{name}}: {namespace}/{name}: {} port(s) open", ports.len()));
        Ok(rules)
    }
}

export_hook!(Ports);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wasmcni_hooks_sdk::testing::{attachment, logs, result};
    use wasmcni_hooks_sdk::{Action, Protocol};

    use super::*;

    #[test]
    fn only_the_listed_ports_are_accepted() {
        let a = attachment().namespace("web").config(json!({"ports": [80, 443]})).build();
        let rules = Ports::post_add(a, result().ip("10.22.0.5/24", "10.22.0.1").build()).unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!((rules[0].protocol, rules[0].ports.map(|p| p.start), rules[0].action), (Protocol::Tcp, Some(80), Action::Accept));
        assert_eq!((rules[2].ports, rules[2].action), (None, Action::Drop));
        assert_eq!(logs()[0].1, "{{name}}: web/test: 2 port(s) open");
    }

    #[test]
    fn a_bad_config_is_refused_naming_the_field() {
        assert!(Ports::validate_config(r#"{"ports": [80]}"#).is_ok());
        let e = Ports::validate_config(r#"{"ports": [80, 70000]}"#).unwrap_err();
        assert_eq!(e.message, "field ports[1]: must be a port number (1-65535)");
        assert!(Ports::validate_config(r#"{"prots": [80]}"#).unwrap_err().message.contains("unknown field `prots`"));
    }
}
