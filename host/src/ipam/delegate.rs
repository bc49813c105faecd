//! Delegated IPAM: when `ipam.type` names a plugin (host-local, static, dhcp...), exec it from CNI_PATH with
//! our environment and the whole netconf on stdin, exactly as the spec's "delegated plugin" protocol says,
//! and use its result.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error;

/// Everything needed to call the plugin again later (DEL from the attachment record, GC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invocation {
    pub plugin: String,
    pub cni_path: Vec<PathBuf>,
    pub container_id: String,
    pub ifname: String,
    pub netns: Option<PathBuf>,
    /// CNI_ARGS as received.
    pub args: String,
    /// The netconf as received (the plugin reads its own `ipam` section from it).
    pub conf: Value,
}

impl Invocation {
    pub fn find(&self) -> Result<PathBuf, Error> {
        if self.plugin.contains('/') {
            return Err(Error::Config(format!("ipam.type {:?} must be a plugin name, not a path", self.plugin)));
        }
        self.cni_path.iter().map(|d| d.join(&self.plugin)).find(|p| p.is_file()).ok_or_else(|| {
            Error::Unavailable(format!(
                "IPAM plugin {:?} not found in CNI_PATH ({})",
                self.plugin,
                self.cni_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":")
            ))
        })
    }

    /// Whether the plugin speaks `version` (its VERSION answer): STATUS and GC exist only from 1.1.0, and a
    /// plugin that predates them would fail them as unknown commands.
    pub fn supports(&self, version: &str) -> Result<bool, Error> {
        let mut probe = self.clone();
        probe.conf = serde_json::json!({"cniVersion": version});
        let reply = probe.exec("VERSION")?.unwrap_or(Value::Null);
        Ok(reply["supportedVersions"].as_array().is_some_and(|v| v.iter().any(|x| x == version)))
    }

    /// Runs `command`; Ok(Some(result)) for ADD, Ok(None) for commands that print nothing.
    pub fn exec(&self, command: &str) -> Result<Option<Value>, Error> {
        let binary = self.find()?;
        let io = |source| Error::Io { path: binary.clone(), source };
        let mut child = Command::new(&binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", self.netns.as_deref().unwrap_or(Path::new("")))
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", &self.args)
            .env("CNI_PATH", std::env::join_paths(&self.cni_path).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io)?;
        // A plugin may exit without reading its config (VERSION): a closed pipe is not our error.
        match child.stdin.take().expect("piped").write_all(self.conf.to_string().as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(io(e)),
            _ => {}
        }
        let out = child.wait_with_output().map_err(io)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            log::info!("IPAM plugin {} {command} stderr: {}", self.plugin, stderr.trim());
        }
        if !out.status.success() {
            // Spec: a delegated plugin's error object is passed on, code and all.
            let reply: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
            return Err(Error::Delegated {
                plugin: self.plugin.clone(),
                code: reply["code"].as_u64().map(|c| c as u32).unwrap_or(999),
                msg: reply["msg"].as_str().map(String::from).unwrap_or_else(|| format!("{} {}", out.status, stderr.trim())),
            });
        }
        if stdout.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&stdout)
            .map(Some)
            .map_err(|e| Error::Unavailable(format!("IPAM plugin {} printed a result that is not JSON: {e}", self.plugin)))
    }
}
