//! The agent's command line. Paths are as the node sees them; in the DaemonSet the host's directories are
//! mounted at the same paths.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::install::Options;

#[derive(clap::Parser, Debug)]
#[command(name = "wasmcni-agent", version, about = "wasmcni's node agent: installs the plugin once the node has its pod \
CIDR, keeps host-gw routes to the other nodes' pods, ships hook sets and pod metadata to the node.")]
pub struct Args {
    /// This node's name (the DaemonSet passes spec.nodeName through the downward API).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// A kubeconfig to use instead of the in-cluster ServiceAccount (tests, running by hand).
    #[arg(long, conflicts_with = "nodes_file")]
    pub kubeconfig: Option<PathBuf>,
    /// Offline: read the nodes from this file (a JSON list of Node objects) at every resync; no API server.
    #[arg(long)]
    pub nodes_file: Option<PathBuf>,
    /// How often everything is reconciled even without events (a route deleted by hand comes back): 30s, 500ms, 2m.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub resync: Duration,
    /// /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9755")]
    pub listen: SocketAddr,
    /// The plugin binary the agent runs for `install` and hook validation.
    #[arg(long, default_value = "/usr/local/bin/wasmcni")]
    pub plugin: PathBuf,
    /// The cluster's pod ranges, left alone by masquerade (pods see each other's addresses); repeatable or
    /// comma-separated.
    #[arg(long = "cluster-cidr", env = "WASMCNI_CLUSTER_CIDRS", value_delimiter = ',')]
    pub cluster_cidrs: Vec<IpNet>,
    /// The pods' MTU (default: the kernel's).
    #[arg(long, env = "WASMCNI_MTU")]
    pub mtu: Option<u16>,
    /// A conflist template for install (default: the plugin's built-in one).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Passed to install: where the node's filesystem is mounted.
    #[arg(long)]
    pub root: Option<PathBuf>,
    #[arg(long, default_value = "/opt/cni/bin")]
    pub cni_bin_dir: PathBuf,
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    #[arg(long, default_value = "10-wasmcni.conflist")]
    pub conflist_name: String,
    /// Hook sets live here: sets/<version>/ and the `current` link the conflist names.
    #[arg(long, default_value = "/etc/wasmcni/hooks")]
    pub hook_dir: PathBuf,
    #[arg(long, default_value = "/var/lib/cni/wasmcni")]
    pub state_dir: PathBuf,
    /// Pod metadata for hooks goes to <run-dir>/pods/<namespace>/<name>.json.
    #[arg(long, default_value = "/run/wasmcni")]
    pub run_dir: PathBuf,
    /// The ConfigMap with hooks.toml (data) and small modules (binaryData).
    #[arg(long)]
    pub hooks_configmap: Option<String>,
    /// The ConfigMap's namespace (default: the agent's own, from POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE", default_value = "wasmcni-system")]
    pub hooks_namespace: String,
    /// Modules (and optionally hooks.toml) copied in by an init container from a hooks image; re-read at
    /// every resync.
    #[arg(long)]
    pub hooks_image_dir: Option<PathBuf>,
}

impl Args {
    pub fn install_options(&self) -> Options {
        Options {
            plugin: self.plugin.clone(),
            root: self.root.clone(),
            bin_dir: self.cni_bin_dir.clone(),
            conf_dir: self.cni_conf_dir.clone(),
            conflist_name: self.conflist_name.clone(),
            hook_dir: self.hook_dir.clone(),
            state_dir: self.state_dir.clone(),
            template: self.template.clone(),
            cluster_cidrs: self.cluster_cidrs.clone(),
            mtu: self.mtu,
        }
    }

    pub fn hooks_enabled(&self) -> bool {
        self.hooks_configmap.is_some() || self.hooks_image_dir.is_some()
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map(|i| s.split_at(i)).unwrap_or((s, "s"));
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: expected a number with ms, s or m, e.g. 30s"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => return Err(format!("{s:?}: the unit must be ms, s or m")),
    };
    if d.is_zero() {
        return Err("the resync interval must be more than zero".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("1h").is_err() && parse_duration("0s").is_err() && parse_duration("x").is_err());
    }
}
