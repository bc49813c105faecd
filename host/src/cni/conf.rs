//! The network configuration as runtimes deliver it on stdin: one plugin object with the list-level
//! `cniVersion` and `name` merged in, plus `runtimeConfig` and `prevResult`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::Error;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/wasmcni";
pub const DEFAULT_RUN_DIR: &str = "/run/wasmcni";

/// Where the node agent writes pod metadata for hooks (hooks::podmeta reads it).
pub const DEFAULT_POD_METADATA_DIR: &str = "/run/wasmcni/pods";
/// The MTUs a link can have (IPv4's minimum to the 16-bit maximum).
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// `MTU_RANGE` as messages show it: `68-65535`.
pub fn mtu_range_text() -> String {
    format!("{}-{}", MTU_RANGE.start(), MTU_RANGE.end())
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Ptp,
    Bridge,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_none() && self.search.is_empty() && self.options.is_empty()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    #[serde(default)]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    #[serde(default)]
    pub mode: Mode,
    /// Bridge mode (the reference `bridge` plugin's fields and meaning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    #[serde(default)]
    pub is_gateway: bool,
    #[serde(default)]
    pub is_default_gateway: bool,
    #[serde(default)]
    pub hairpin_mode: bool,
    #[serde(default)]
    pub promisc_mode: bool,
    #[serde(default)]
    pub force_address: bool,
    #[serde(default)]
    pub ip_masq: bool,
    /// Destinations masquerade leaves alone besides the pod's own subnet: the cluster's pod CIDRs, so pods
    /// on other nodes see each other's real addresses.
    #[serde(default, rename = "nonMasqueradeCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub non_masquerade_cidrs: Vec<ipnet::IpNet>,
    /// The cluster's pod CIDR(s), kube-controller-manager's `--cluster-cidr` spelling (comma-separated for
    /// dual-stack): added to `nonMasqueradeCIDRs`.
    #[serde(default, rename = "clusterCIDR", skip_serializing_if = "Option::is_none")]
    pub cluster_cidr: Option<String>,
    /// `iptables`, `nftables`, `none` or `auto`; the reference plugins' `ipMasqBackend` is read too.
    #[serde(default, alias = "ipMasqBackend", skip_serializing_if = "Option::is_none")]
    pub firewall_backend: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Kept raw: the built-in IPAM parses it, a delegated IPAM plugin gets the whole config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<Value>,
    /// Node-wide locks (default /run/wasmcni): shared by every network on the node, so it is not per
    /// stateDir; tests point it at a temp dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_dir: Option<PathBuf>,
    /// Where attachment records (and later the hook cache) live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// `text` (default) or `json`: one JSON object per line, for log collectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// TOML manifest listing hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks_manifest: Option<PathBuf>,
    /// Development only: run hooks whose manifest or module others could have written (see hooks.md).
    #[serde(default)]
    pub insecure_hook_files: bool,
    /// Where the node agent keeps the pods' labels and annotations for hooks (default /run/wasmcni/pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_metadata_dir: Option<PathBuf>,
    /// Hooks listed inline, same fields as in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Value>,
    /// Everything else is kept, so nothing a runtime or a later issue adds is lost on the way through.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// stdin as JSON, parsed once per call (the error reply's version is read from it too); None when empty.
pub type Stdin = Option<Result<Value, serde_json::Error>>;

pub fn read_stdin(stdin: &[u8]) -> Stdin {
    (!stdin.iter().all(u8::is_ascii_whitespace)).then(|| serde_json::from_slice(stdin))
}

impl NetConf {
    pub fn parse(stdin: &[u8]) -> Result<(Self, Value), Error> {
        Self::from_stdin(read_stdin(stdin))
    }

    pub fn from_stdin(stdin: Stdin) -> Result<(Self, Value), Error> {
        let raw = stdin
            .ok_or_else(|| {
                Error::InvalidConfig("no network configuration on stdin (pipe the plugin's JSON config into the command)".into())
            })?
            .map_err(|source| Error::Decode { what: "network config", source })?;
        if raw.get("plugins").is_some() {
            return Err(Error::InvalidConfig(
                "got a conflist; runtimes pass one plugin's config (use `wasmcni exec --config FILE`, which extracts it)"
                    .into(),
            ));
        }
        let conf: NetConf = super::fields::deserialize(&raw, "").map_err(Error::InvalidConfig)?;
        if let Some(msg) = super::fields::unsupported(&raw) {
            return Err(Error::UnsupportedField(msg));
        }
        conf.validate()?;
        Ok((conf, raw))
    }

    fn validate(&self) -> Result<(), Error> {
        // Spec: the network name becomes a path component (IPAM store, records, locks) and part of rule
        // comments, so it keeps to the spec's alphabet and can never be "." or "..".
        if let Some(msg) = crate::naming::name_problem(&self.name, crate::naming::MAX_NETWORK_NAME) {
            return Err(Error::InvalidConfig(format!("field name: the network name {msg}")));
        }
        // Paths from the config are used as they are: a relative one would depend on the runtime's working
        // directory.
        for (field, path) in [
            ("stateDir", &self.state_dir),
            ("runDir", &self.run_dir),
            ("podMetadataDir", &self.pod_metadata_dir),
            ("logFile", &self.log_file),
            ("hooksManifest", &self.hooks_manifest),
        ] {
            if let Some(p) = path.as_ref().filter(|p| !p.is_absolute()) {
                return Err(Error::InvalidConfig(format!("field {field}: {} is not an absolute path", p.display())));
            }
        }
        if let Some(mtu) = self.mtu {
            if !MTU_RANGE.contains(&mtu) {
                return Err(Error::InvalidConfig(format!("mtu {mtu} is outside {}", mtu_range_text())));
            }
        }
        let bridge_only = [
            ("bridge", self.bridge.is_some()),
            ("isGateway", self.is_gateway),
            ("isDefaultGateway", self.is_default_gateway),
            ("hairpinMode", self.hairpin_mode),
            ("promiscMode", self.promisc_mode),
            ("forceAddress", self.force_address),
        ];
        if self.mode == Mode::Ptp {
            if let Some((field, _)) = bridge_only.iter().find(|(_, set)| *set) {
                return Err(Error::InvalidConfig(format!("\"{field}\" applies to \"mode\": \"bridge\" only (this network is ptp)")));
            }
        }
        for c in self.cluster_cidr.iter().flat_map(|c| c.split(',')).map(str::trim).filter(|c| !c.is_empty()) {
            if c.parse::<ipnet::IpNet>().is_err() {
                return Err(Error::InvalidConfig(format!("field clusterCIDR: {c:?} is not a CIDR such as 10.244.0.0/16")));
            }
        }
        if let Some(f) = self.log_format.as_deref().filter(|f| crate::logging::Format::parse(f).is_none()) {
            return Err(Error::InvalidConfig(format!("field logFormat: {f:?} is not one of text, json")));
        }
        match self.firewall_backend.as_deref() {
            None | Some("iptables" | "nftables" | "none" | "auto") => {}
            Some(other) => {
                return Err(Error::InvalidConfig(format!("field firewallBackend: {other:?} is not one of iptables, nftables, none, auto")))
            }
        }
        if let Some(msg) = crate::naming::ifname_problem(self.bridge_name()) {
            return Err(Error::InvalidConfig(format!("field bridge: the bridge name {msg}")));
        }
        Ok(())
    }

    /// The backend configured for this network's rules (validated when parsing); None: `auto` (or unset),
    /// which `Firewalls::choose` settles on the node.
    pub fn firewall_backend(&self) -> Option<crate::firewall::Backend> {
        use crate::firewall::Backend;
        match self.firewall_backend.as_deref() {
            Some("none") => Some(Backend::None),
            Some("iptables") => Some(Backend::Iptables),
            Some("nftables") => Some(Backend::Nftables),
            _ => None,
        }
    }

    /// `nonMasqueradeCIDRs` and `clusterCIDR` together (validated when parsing).
    pub fn non_masquerade_cidrs(&self) -> Vec<ipnet::IpNet> {
        let mut out = self.non_masquerade_cidrs.iter().map(|n| n.trunc()).collect::<Vec<_>>();
        for c in self.cluster_cidr.iter().flat_map(|c| c.split(',')).map(str::trim).filter(|c| !c.is_empty()) {
            if let Ok(n) = c.parse::<ipnet::IpNet>() {
                if !out.contains(&n.trunc()) {
                    out.push(n.trunc());
                }
            }
        }
        out
    }

    /// The reference bridge plugin's default name.
    pub fn bridge_name(&self) -> &str {
        self.bridge.as_deref().unwrap_or("cni0")
    }

    /// isDefaultGateway implies isGateway, as in the reference plugin.
    pub fn bridge_is_gateway(&self) -> bool {
        self.is_gateway || self.is_default_gateway
    }

    pub fn pod_metadata_dir(&self) -> PathBuf {
        self.pod_metadata_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_POD_METADATA_DIR))
    }

    pub fn run_dir(&self) -> PathBuf {
        self.run_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_RUN_DIR))
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }

    pub fn ipam_type(&self) -> Option<&str> {
        self.ipam.as_ref().and_then(|i| i.get("type")).and_then(Value::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_runtime_config_and_keeps_unknown_fields() {
        let input = br#"{"cniVersion":"1.0.0","name":"podnet","type":"wasmcni","ipMasq":true,"mtu":1400,
            "ipam":{"type":"builtin","subnet":"10.22.0.0/24"},"dns":{"nameservers":["10.22.0.10"]},
            "runtimeConfig":{"portMappings":[]},"prevResult":{"ips":[]},"capabilities":{"ips":true},"x-custom":7}"#;
        let (conf, raw) = NetConf::parse(input).unwrap();
        assert_eq!(conf.name, "podnet");
        assert!(conf.ip_masq);
        assert_eq!(conf.mtu, Some(1400));
        assert_eq!(conf.ipam_type(), Some("builtin"));
        assert_eq!(conf.dns.unwrap().nameservers, vec!["10.22.0.10"]);
        assert_eq!(conf.extra["x-custom"], 7);
        assert!(conf.extra.contains_key("capabilities"));
        assert_eq!(raw["ipam"]["subnet"], "10.22.0.0/24");
        assert_eq!(conf.mode, Mode::Ptp);
    }

    #[test]
    fn rejects_what_a_user_gets_wrong() {
        assert_eq!(NetConf::parse(b"").unwrap_err().code(), 7);
        assert_eq!(NetConf::parse(b"{not json").unwrap_err().code(), 6);
        let e = NetConf::parse(br#"{"name":"x"}"#).unwrap_err();
        assert_eq!((e.code(), e.to_string().contains("missing field `type`")), (7, true), "type is required: {e}");
        let e = NetConf::parse(br#"{"name":"n","type":"wasmcni","mtu":"1450"}"#).unwrap_err();
        assert_eq!(e.to_string(), "invalid network config: field mtu: invalid type: string \"1450\", expected u32");
        assert_eq!(NetConf::parse(br#"{"name":"n","type":"wasmcni","vlan":7}"#).unwrap_err().code(), 2);
        assert_eq!(NetConf::parse(br#"{"name":"a b","type":"wasmcni"}"#).unwrap_err().code(), 7);
        assert_eq!(NetConf::parse(br#"{"name":"n","type":"wasmcni","mtu":20}"#).unwrap_err().code(), 7);
        let err = NetConf::parse(br#"{"name":"n","plugins":[]}"#).unwrap_err();
        assert!(err.to_string().contains("conflist"), "{err}");
    }
}
