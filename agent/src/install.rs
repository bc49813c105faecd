//! The node's install, done by the plugin binary itself (`wasmcni install`), so the agent never links the
//! plugin's code: the agent only supplies what the cluster says (pod ranges) and its own settings.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot run {binary}: {source}")]
    Spawn { binary: String, source: std::io::Error },
    #[error("wasmcni install failed (exit {code}): {message}")]
    Failed { code: i32, message: String },
}

#[allow(async_fn_in_trait)]
pub trait Installer {
    /// Installs for these pod ranges (idempotent); returns the plugin's summary line.
    async fn install(&self, pod_cidrs: &[IpNet], hooks_manifest: Option<&Path>) -> Result<String, InstallError>;
    /// Whether the conflist is still there (a hand-deleted one is put back).
    fn present(&self) -> bool;
}

/// Everything `wasmcni install` is told besides the pod ranges; paths as the node sees them.
#[derive(Debug, Clone)]
pub struct Options {
    pub plugin: PathBuf,
    pub root: Option<PathBuf>,
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub conflist_name: String,
    pub hook_dir: PathBuf,
    pub state_dir: PathBuf,
    pub template: Option<PathBuf>,
    pub cluster_cidrs: Vec<IpNet>,
    pub mtu: Option<u16>,
}

pub struct Exec(pub Options);

impl Exec {
    pub fn args(&self, pod_cidrs: &[IpNet], hooks_manifest: Option<&Path>) -> Vec<OsString> {
        let o = &self.0;
        let mut a: Vec<OsString> = vec!["install".into()];
        let mut flag = |k: &str, v: OsString| {
            a.push(format!("--{k}").into());
            a.push(v);
        };
        if let Some(r) = &o.root {
            flag("root", r.into());
        }
        flag("bin-dir", o.bin_dir.clone().into());
        flag("conf-dir", o.conf_dir.clone().into());
        flag("conflist-name", o.conflist_name.clone().into());
        flag("hook-dir", o.hook_dir.clone().into());
        flag("state-dir", o.state_dir.clone().into());
        if let Some(t) = &o.template {
            flag("template", t.into());
        }
        for c in pod_cidrs {
            flag("pod-cidr", c.to_string().into());
        }
        for c in &o.cluster_cidrs {
            flag("cluster-cidr", c.to_string().into());
        }
        if let Some(m) = o.mtu {
            flag("mtu", m.to_string().into());
        }
        if let Some(m) = hooks_manifest {
            flag("hooks-manifest", m.into());
        }
        a
    }
}

impl Installer for Exec {
    async fn install(&self, pod_cidrs: &[IpNet], hooks_manifest: Option<&Path>) -> Result<String, InstallError> {
        let binary = &self.0.plugin;
        let out = tokio::process::Command::new(binary)
            .args(self.args(pod_cidrs, hooks_manifest))
            .output()
            .await
            .map_err(|source| InstallError::Spawn { binary: binary.display().to_string(), source })?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Warnings (another CNI's config sorting first) go to the agent's log too.
        for w in stderr.lines().filter(|l| l.contains("warning:")) {
            crate::warn!("install.warning", message = w.trim_start_matches("wasmcni: warning: "));
        }
        if !out.status.success() {
            let message = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message").trim_start_matches("wasmcni: ").to_string();
            return Err(InstallError::Failed { code: out.status.code().unwrap_or(-1), message });
        }
        Ok(stdout.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("").to_string())
    }

    fn present(&self) -> bool {
        let node_path = self.0.conf_dir.join(&self.0.conflist_name);
        let real = match &self.0.root {
            Some(r) => r.join(node_path.strip_prefix("/").unwrap_or(&node_path)),
            None => node_path,
        };
        real.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_nodes_ranges_and_every_path() {
        let e = Exec(Options {
            plugin: "/usr/local/bin/wasmcni".into(),
            root: None,
            bin_dir: "/opt/cni/bin".into(),
            conf_dir: "/etc/cni/net.d".into(),
            conflist_name: "10-wasmcni.conflist".into(),
            hook_dir: "/etc/wasmcni/hooks".into(),
            state_dir: "/var/lib/cni/wasmcni".into(),
            template: None,
            cluster_cidrs: vec!["10.77.0.0/16".parse().unwrap()],
            mtu: Some(1450),
        });
        let a: Vec<String> = e
            .args(&["10.77.1.0/24".parse().unwrap(), "fd00:1::/64".parse().unwrap()], Some(Path::new("/etc/wasmcni/hooks/current/hooks.toml")))
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let joined = a.join(" ");
        assert!(joined.starts_with("install --bin-dir /opt/cni/bin --conf-dir /etc/cni/net.d"), "{joined}");
        for part in ["--pod-cidr 10.77.1.0/24 --pod-cidr fd00:1::/64", "--cluster-cidr 10.77.0.0/16", "--mtu 1450",
                     "--hooks-manifest /etc/wasmcni/hooks/current/hooks.toml", "--state-dir /var/lib/cni/wasmcni"] {
            assert!(joined.contains(part), "{part} missing: {joined}");
        }
    }
}
