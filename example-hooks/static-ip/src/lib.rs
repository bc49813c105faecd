//! static-ip (pre-ADD): gives chosen pods fixed addresses.
//!
//! ```toml
//! [hooks.config]
//! pods = [ { namespace = "prod", name = "db-0", ip = "10.22.0.50" } ]
//! ```
//! A pod not listed keeps whatever IPAM picks. The host checks the address is in range and free.

use serde::Deserialize;
use wasmcni_hooks_sdk::{config, export_hook, log, pod, Attachment, Hook, HookError, Level, Plan};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    pods: Vec<Pin>,
}

#[derive(Deserialize)]
struct Pin {
    namespace: String,
    name: String,
    ip: String,
}

pub struct StaticIp;

impl Hook for StaticIp {
    fn pre_add(a: Attachment, mut plan: Plan) -> Result<Plan, HookError> {
        let cfg: Config = config(&a)?;
        let (ns, name) = pod(&a);
        if let Some(pin) = cfg.pods.iter().find(|p| p.namespace == ns && p.name == name) {
            log(Level::Info, &format!("{ns}/{name} gets its pinned address {}", pin.ip));
            plan.ips = vec![pin.ip.clone()];
        }
        Ok(plan)
    }
}

export_hook!(StaticIp);

#[cfg(test)]
mod tests {
    use serde_json::json;
    use wasmcni_hooks_sdk::testing::{attachment, logs, plan};

    use super::*;

    fn cfg() -> serde_json::Value {
        json!({"pods": [{"namespace": "prod", "name": "db-0", "ip": "10.22.0.50"}]})
    }

    #[test]
    fn pinned_pod_gets_its_address() {
        let a = attachment().namespace("prod").name("db-0").config(cfg()).build();
        let out = StaticIp::pre_add(a, plan()).unwrap();
        assert_eq!(out.ips, vec!["10.22.0.50"]);
        assert_eq!(logs()[0].1, "prod/db-0 gets its pinned address 10.22.0.50");
    }

    #[test]
    fn other_pods_are_left_to_ipam() {
        let a = attachment().namespace("prod").name("web").config(cfg()).build();
        assert_eq!(StaticIp::pre_add(a, plan()).unwrap(), plan());
    }

    #[test]
    fn bad_config_is_an_error() {
        let a = attachment().config(json!({"pods": "nope"})).build();
        assert!(StaticIp::pre_add(a, plan()).unwrap_err().message.contains("invalid hook config"));
    }
}
