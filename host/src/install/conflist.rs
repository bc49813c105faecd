//! The conflist install writes: a template (the user's or the built-in one) with the node's settings filled
//! into its wasmcni entry.

use std::path::PathBuf;

use ipnet::IpNet;
use serde_json::{json, Value};

use super::paths::{BINARY_NAME, DEFAULT_STATE_DIR};

/// What install knows about this node and network.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    /// The node's pod ranges, at most one per family (the Node's `spec.podCIDRs`).
    pub pod_cidrs: Vec<IpNet>,
    /// Destinations masquerade skips (the cluster's pod ranges), so pods see each other's real addresses.
    pub cluster_cidrs: Vec<IpNet>,
    pub mtu: Option<u16>,
    pub hooks_manifest: Option<PathBuf>,
    pub state_dir: PathBuf,
}

pub fn builtin_template() -> Value {
    json!({
        "cniVersion": "1.1.0",
        "name": "wasmcni",
        "plugins": [{"type": BINARY_NAME, "ipMasq": true, "ipam": {"type": "builtin"}}]
    })
}

pub fn render(template: Option<&[u8]>, s: &Settings) -> Result<Vec<u8>, String> {
    let mut list = match template {
        Some(bytes) => serde_json::from_slice::<Value>(bytes).map_err(|e| format!("the template is not valid JSON: {e}"))?,
        None => builtin_template(),
    };
    let plugins = list
        .get_mut("plugins")
        .and_then(Value::as_array_mut)
        .ok_or("the template is not a conflist: it has no \"plugins\" list")?;
    let entry = plugins
        .iter_mut()
        .find(|p| p.get("type").and_then(Value::as_str) == Some(BINARY_NAME))
        .ok_or("the template has no plugin of type \"wasmcni\"")?;
    let entry = entry.as_object_mut().ok_or("the template's wasmcni entry is not an object")?;

    check_families(&s.pod_cidrs)?;
    let ipam = entry.entry("ipam").or_insert_with(|| json!({"type": "builtin"}));
    let ipam = ipam.as_object_mut().ok_or("the template's \"ipam\" is not an object")?;
    if !s.pod_cidrs.is_empty() {
        // One range set per family, as the node's podCIDRs list them; the flat single-range form would
        // contradict them, so it goes.
        for key in ["subnet", "rangeStart", "rangeEnd", "gateway"] {
            ipam.remove(key);
        }
        let sets: Vec<Value> = s.pod_cidrs.iter().map(|c| json!([{"subnet": c.trunc().to_string()}])).collect();
        ipam.insert("ranges".into(), Value::Array(sets));
    } else if !ipam.contains_key("ranges") && !ipam.contains_key("subnet") {
        return Err("no pod range: pass --pod-cidr (the agent passes the Node's spec.podCIDRs) or put ranges in the template".into());
    }
    if !s.cluster_cidrs.is_empty() {
        let cidrs: Vec<Value> = s.cluster_cidrs.iter().map(|c| Value::String(c.trunc().to_string())).collect();
        entry.insert("nonMasqueradeCIDRs".into(), Value::Array(cidrs));
    }
    if let Some(mtu) = s.mtu {
        if !(68..=65535).contains(&mtu) {
            return Err(format!("--mtu {mtu} is outside 68-65535"));
        }
        entry.insert("mtu".into(), json!(mtu));
    }
    if let Some(m) = &s.hooks_manifest {
        entry.insert("hooksManifest".into(), json!(m));
    }
    // The plugin's cache must be the one install filled.
    if s.state_dir != std::path::Path::new(DEFAULT_STATE_DIR) {
        entry.insert("stateDir".into(), json!(s.state_dir));
    }
    let mut out = serde_json::to_vec_pretty(&list).expect("JSON serializes");
    out.push(b'\n');
    Ok(out)
}

fn check_families(cidrs: &[IpNet]) -> Result<(), String> {
    let v4 = cidrs.iter().filter(|c| matches!(c, IpNet::V4(_))).count();
    let v6 = cidrs.len() - v4;
    if v4 > 1 || v6 > 1 {
        return Err(format!(
            "at most one --pod-cidr per family (IPv4, IPv6): got {}",
            cidrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pods: &[&str]) -> Settings {
        Settings {
            pod_cidrs: pods.iter().map(|c| c.parse().unwrap()).collect(),
            state_dir: DEFAULT_STATE_DIR.into(),
            ..Settings::default()
        }
    }

    #[test]
    fn builtin_template_gets_dual_stack_ranges_and_options() {
        let mut s = settings(&["10.77.1.0/24", "fd00:77:1::/64"]);
        s.cluster_cidrs = vec!["10.77.0.0/16".parse().unwrap(), "fd00:77::/48".parse().unwrap()];
        s.mtu = Some(1450);
        s.hooks_manifest = Some("/etc/wasmcni/hooks/current/hooks.toml".into());
        let v: Value = serde_json::from_slice(&render(None, &s).unwrap()).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        let p = &v["plugins"][0];
        assert_eq!(p["type"], "wasmcni");
        assert_eq!(p["ipMasq"], true);
        assert_eq!(p["ipam"], json!({"type": "builtin", "ranges": [[{"subnet": "10.77.1.0/24"}], [{"subnet": "fd00:77:1::/64"}]]}));
        assert_eq!(p["nonMasqueradeCIDRs"], json!(["10.77.0.0/16", "fd00:77::/48"]));
        assert_eq!(p["mtu"], 1450);
        assert_eq!(p["hooksManifest"], "/etc/wasmcni/hooks/current/hooks.toml");
        assert!(p.get("stateDir").is_none(), "the default state dir is not written");
    }

    #[test]
    fn template_keeps_its_own_keys_and_drops_the_flat_range() {
        let t = br#"{"cniVersion":"1.0.0","name":"pods","plugins":[
            {"type":"wasmcni","logLevel":"info","ipam":{"type":"builtin","subnet":"10.1.0.0/16","dataDir":"/x"}},
            {"type":"portmap","capabilities":{"portMappings":true}}]}"#;
        let mut s = settings(&["10.2.3.0/24"]);
        s.state_dir = "/tmp/state".into();
        let v: Value = serde_json::from_slice(&render(Some(t), &s).unwrap()).unwrap();
        assert_eq!(v["name"], "pods");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        let p = &v["plugins"][0];
        assert_eq!(p["logLevel"], "info");
        assert_eq!(p["ipam"], json!({"type": "builtin", "dataDir": "/x", "ranges": [[{"subnet": "10.2.3.0/24"}]]}));
        assert_eq!(p["stateDir"], "/tmp/state");
    }

    #[test]
    fn refuses_what_cannot_work() {
        assert!(render(None, &settings(&[])).unwrap_err().contains("--pod-cidr"));
        assert!(render(None, &settings(&["10.0.0.0/24", "10.0.1.0/24"])).unwrap_err().contains("one --pod-cidr per family"));
        assert!(render(Some(br#"{"plugins":[{"type":"bridge"}]}"#), &settings(&["10.0.0.0/24"])).unwrap_err().contains("no plugin of type"));
        assert!(render(Some(b"{"), &settings(&["10.0.0.0/24"])).unwrap_err().contains("not valid JSON"));
        let mut s = settings(&["10.0.0.0/24"]);
        s.mtu = Some(20);
        assert!(render(None, &s).unwrap_err().contains("--mtu 20"));
    }
}
