//! The config's fields as a user sees them: errors that name the field by its JSON path and show the value,
//! warnings for keys wasmcni does not know (with the closest one it does), and a refusal of the reference
//! plugins' options it does not implement, which would otherwise be ignored and give a different network.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::suggest::closest;

/// Deserializes `value` (found at `prefix` in the config; "" for the top) and words a failure as "field
/// <path>: <what is wrong> (got <value>)".
pub fn deserialize<T: DeserializeOwned>(value: &Value, prefix: &str) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde_json appends " at line L column C" for text input; a Value has none, but keep it tidy.
        let msg = inner.split(" at line ").next().unwrap_or(&inner).to_string();
        let full = match (prefix, path.as_str()) {
            ("", ".") => String::new(),
            ("", p) => p.to_string(),
            (pre, ".") => pre.to_string(),
            (pre, p) => format!("{pre}.{p}"),
        };
        let got = lookup(value, &path).filter(|v| !v.is_object() && !v.is_array()).map(|v| v.to_string());
        let got = match got {
            // serde's own words often quote the value already ("invalid type: string \"1450\"").
            Some(v) if !msg.contains(v.trim_matches('"')) => format!(" (got {})", crate::logging::bounded(&v, 80)),
            _ => String::new(),
        };
        if full.is_empty() {
            format!("{msg}{got}")
        } else {
            format!("field {full}: {msg}{got}")
        }
    })
}

/// The value at a serde_path_to_error path ("a.b[2].c").
fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        for idx in indexes.split(['[', ']']).filter(|s| !s.is_empty()) {
            cur = cur.get(idx.parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

/// Every key of the plugin's netconf that wasmcni reads.
pub const NETCONF_KEYS: &[&str] = &[
    "cniVersion", "name", "type", "mode", "bridge", "isGateway", "isDefaultGateway", "hairpinMode", "promiscMode",
    "forceAddress", "ipMasq", "nonMasqueradeCIDRs", "clusterCIDR", "firewallBackend", "ipMasqBackend", "mtu", "ipam",
    "dns", "args", "runtimeConfig", "prevResult", "stateDir", "runDir", "logFile", "logLevel", "logFormat",
    "hooksManifest", "hooks", "insecureHookFiles", "podMetadataDir",
];

/// What runtimes and the spec add to a plugin's config: never ours to warn about.
fn injected(key: &str) -> bool {
    key.starts_with("cni.dev/") || key == "capabilities"
}

/// The built-in IPAM's keys (also host-local's, so configs move over).
pub const IPAM_KEYS: &[&str] = &["type", "subnet", "rangeStart", "rangeEnd", "gateway", "ranges", "routes", "dataDir"];
pub const RANGE_KEYS: &[&str] = &["subnet", "rangeStart", "rangeEnd", "gateway"];

/// Options of the reference `bridge` and `ptp` plugins that wasmcni does not implement: silently ignored,
/// they would give a network other than the one asked for.
pub const UNSUPPORTED: &[(&str, &str)] = &[
    ("vlan", "VLAN tagging on the bridge"),
    ("vlanTrunk", "VLAN trunks on the bridge"),
    ("preserveDefaultVlan", "VLAN handling on the bridge"),
    ("macspoofchk", "MAC spoof checking"),
    ("enabledad", "duplicate address detection (wasmcni turns it off: IPAM made the address unique)"),
    ("disableContainerInterface", "leaving the pod's interface down"),
    ("portIsolation", "isolated bridge ports"),
];

/// Keys of the config wasmcni does not know, each with a word on what it may have meant.
pub fn unknown_keys(raw: &Value, builtin_ipam: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut look = |obj: Option<&serde_json::Map<String, Value>>, known: &[&str], at: &str| {
        for key in obj.into_iter().flat_map(|o| o.keys()) {
            if known.contains(&key.as_str()) || injected(key) || UNSUPPORTED.iter().any(|(k, _)| k == key) {
                continue;
            }
            let hint = closest(key, known).map(|k| format!(" (did you mean {k}?)")).unwrap_or_default();
            out.push(format!("unknown key {at}{key} is ignored{hint}", key = crate::logging::bounded(key, 64)));
        }
    };
    look(raw.as_object(), NETCONF_KEYS, "");
    if builtin_ipam {
        let ipam = raw.get("ipam");
        look(ipam.and_then(Value::as_object), IPAM_KEYS, "ipam.");
        for (i, set) in ipam.and_then(|i| i.get("ranges")).and_then(Value::as_array).into_iter().flatten().enumerate() {
            for (j, range) in set.as_array().into_iter().flatten().enumerate() {
                look(range.as_object(), RANGE_KEYS, &format!("ipam.ranges[{i}][{j}]."));
            }
        }
    }
    out
}

/// The first reference-plugin option set that wasmcni does not implement.
pub fn unsupported(raw: &Value) -> Option<String> {
    UNSUPPORTED.iter().find(|(k, _)| raw.get(*k).is_some_and(|v| !v.is_null() && *v != Value::Bool(false))).map(|(k, what)| {
        format!("field {k}: {what} is an option of the reference plugins that wasmcni does not support; remove it or use that plugin")
    })
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct T {
        mtu: Option<u32>,
        ipam: Option<Ipam>,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Ipam {
        subnet: ipnet::IpNet,
    }

    #[test]
    fn errors_name_the_path_and_the_value() {
        let e = deserialize::<T>(&json!({"mtu": "1450"}), "").unwrap_err();
        assert_eq!(e, "field mtu: invalid type: string \"1450\", expected u32");
        let e = deserialize::<T>(&json!({"ipam": {"subnet": "10.88.0.0/33"}}), "").unwrap_err();
        assert_eq!(e, "field ipam.subnet: invalid IP address syntax (got \"10.88.0.0/33\")");
        let e = deserialize::<Ipam>(&json!({"subnet": "x"}), "ipam").unwrap_err();
        assert!(e.starts_with("field ipam.subnet:"), "{e}");
    }

    #[test]
    fn unknown_keys_get_a_suggestion_and_injected_ones_none() {
        let raw = json!({"name": "n", "type": "wasmcni", "ipMasqq": true, "capabilities": {}, "cni.dev/x": 1,
            "ipam": {"type": "builtin", "rangeStrat": "10.0.0.5", "ranges": [[{"subnet": "10.0.0.0/24", "gatway": "10.0.0.1"}]]}});
        let w = unknown_keys(&raw, true);
        assert_eq!(
            w,
            vec![
                "unknown key ipMasqq is ignored (did you mean ipMasq?)",
                "unknown key ipam.rangeStrat is ignored (did you mean rangeStart?)",
                "unknown key ipam.ranges[0][0].gatway is ignored (did you mean gateway?)",
            ]
        );
        assert!(unknown_keys(&raw, false).len() == 1, "a delegated IPAM plugin's keys are its own");
        assert!(unsupported(&json!({"vlan": 100})).unwrap().contains("field vlan"));
        assert_eq!(unsupported(&json!({"vlan": null, "macspoofchk": false})), None);
    }
}
