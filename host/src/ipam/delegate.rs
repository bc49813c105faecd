//! Delegated IPAM: when `ipam.type` names a plugin (host-local, static, dhcp...), exec it from CNI_PATH with
//! our environment and the netconf on stdin, exactly as the spec's "delegated plugin" protocol says, in the
//! highest CNI version both of us speak (Debian's host-local stops at 1.0.0), and use its result.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Error;
use crate::cni::version::SUPPORTED;

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
    /// The version the plugin is called in, once negotiated (stored in the record: DEL asks no again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The highest of our versions, no newer than `wanted`, that the plugin lists.
fn highest_common(wanted: &str, theirs: &[String]) -> Option<&'static str> {
    let limit = SUPPORTED.iter().position(|v| *v == wanted).unwrap_or(SUPPORTED.len() - 1);
    SUPPORTED[..=limit].iter().rev().find(|v| theirs.iter().any(|t| t == *v)).copied()
}

impl Invocation {
    pub fn find(&self) -> Result<PathBuf, Error> {
        if self.plugin.contains('/') {
            return Err(Error::Config(format!("field ipam.type: {:?} must be a plugin name, not a path", self.plugin)));
        }
        self.cni_path.iter().map(|d| d.join(&self.plugin)).find(|p| p.is_file()).ok_or_else(|| {
            let looked = self.cni_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
            let hint = match crate::cni::suggest::closest(&self.plugin, &["builtin", "host-local", "static", "dhcp"]) {
                Some(s) => format!("; did you mean {s:?}?"),
                None => String::new(),
            };
            Error::Config(format!(
                "field ipam.type: no IPAM plugin {:?} in CNI_PATH ({}){hint} (\"builtin\" is wasmcni's own IPAM)",
                self.plugin,
                if looked.is_empty() { "empty".into() } else { looked }
            ))
        })
    }

    /// The versions the plugin speaks (its VERSION answer).
    pub fn supported_versions(&self) -> Result<Vec<String>, Error> {
        let mut probe = self.clone();
        probe.conf = serde_json::json!({"cniVersion": crate::cni::version::LATEST});
        probe.version = None;
        let reply = probe.run("VERSION", &probe.conf)?.unwrap_or(Value::Null);
        Ok(reply["supportedVersions"].as_array().map(|v| v.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default())
    }

    /// Whether the plugin speaks `version`: STATUS and GC exist only from 1.1.0, and a plugin that predates
    /// them would fail them as unknown commands.
    pub fn supports(&self, version: &str) -> Result<bool, Error> {
        Ok(self.supported_versions()?.iter().any(|v| v == version))
    }

    /// Settles the version to call the plugin in: the netconf's, or the highest older one it speaks.
    pub fn negotiate(&mut self) -> Result<(), Error> {
        if self.version.is_some() {
            return Ok(());
        }
        let wanted = self.conf.get("cniVersion").and_then(Value::as_str).unwrap_or(crate::cni::version::LATEST).to_string();
        let theirs = self.supported_versions()?;
        match highest_common(&wanted, &theirs) {
            Some(v) => {
                if v != wanted {
                    log::info!("IPAM plugin {} speaks up to {v}; calling it in {v} (the network is {wanted})", self.plugin);
                }
                self.version = Some(v.to_string());
                Ok(())
            }
            None => Err(Error::Config(format!(
                "IPAM plugin {} speaks CNI {}, none of them {wanted} or older that wasmcni speaks",
                self.plugin,
                theirs.join(", ")
            ))),
        }
    }

    /// Runs `command` in the negotiated version (negotiating first if needed); Ok(Some(result)) for ADD,
    /// Ok(None) for commands that print nothing.
    pub fn exec(&self, command: &str) -> Result<Option<Value>, Error> {
        let mut inv = self.clone();
        inv.negotiate()?;
        let mut conf = inv.conf.clone();
        if let (Some(v), Some(obj)) = (&inv.version, conf.as_object_mut()) {
            obj.insert("cniVersion".into(), Value::String(v.clone()));
        }
        inv.run(command, &conf)
    }

    fn run(&self, command: &str, conf: &Value) -> Result<Option<Value>, Error> {
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
        match child.stdin.take().expect("piped").write_all(conf.to_string().as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(io(e)),
            _ => {}
        }
        let out = child.wait_with_output().map_err(io)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = crate::logging::bounded(String::from_utf8_lossy(&out.stderr).trim(), 1024);
        if !stderr.is_empty() {
            log::info!("IPAM plugin {} {command} stderr: {stderr}", self.plugin);
        }
        if !out.status.success() {
            // Spec: a delegated plugin's error object is passed on, code and all.
            let reply: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
            let msg = reply["msg"].as_str().map(|m| crate::logging::bounded(m, 1024));
            return Err(match (reply["code"].as_u64(), msg) {
                (Some(code), Some(msg)) => Error::Delegated { plugin: self.plugin.clone(), code: code as u32, msg },
                _ => Error::Delegated {
                    plugin: self.plugin.clone(),
                    code: crate::error::code::DELEGATE_GAVE_NO_CODE,
                    msg: format!("it printed no CNI error object ({}; stderr: {})", out.status, if stderr.is_empty() { "empty" } else { &stderr }),
                },
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

#[cfg(test)]
mod tests {
    use super::highest_common;

    #[test]
    fn the_highest_version_both_speak() {
        let host_local: Vec<String> = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"].iter().map(|s| s.to_string()).collect();
        assert_eq!(highest_common("1.1.0", &host_local), Some("1.0.0"));
        assert_eq!(highest_common("0.3.1", &host_local), Some("0.3.1"));
        assert_eq!(highest_common("1.1.0", &["2.0.0".into()]), None);
    }
}
