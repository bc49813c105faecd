//! Whether a staged hook set may become current: the plugin binary itself checks it (`wasmcni hook check`:
//! manifest parses, every sha256 pin and contract version matches, every module compiles into the node's
//! cache, and every hook accepts its config). Exec'd, so the agent never links wasmtime and judges with exactly the plugin's rules.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

#[allow(async_fn_in_trait)]
pub trait Validate {
    async fn validate(&self, manifest: &Path) -> Result<(), String>;
}

pub struct Plugin {
    pub binary: PathBuf,
    pub state_dir: PathBuf,
}

impl Plugin {
    /// The plugin's checking command: loads every hook as ADD would, compiles it into the node's cache and
    /// asks each hook's validate-config about its config.
    fn args(&self, manifest: &Path) -> Vec<OsString> {
        vec!["hook".into(), "check".into(), manifest.into(), "--state-dir".into(), self.state_dir.clone().into()]
    }
}

impl Validate for Plugin {
    async fn validate(&self, manifest: &Path) -> Result<(), String> {
        let out = tokio::process::Command::new(&self.binary)
            .args(self.args(manifest))
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("no message");
        Err(why.trim_start_matches("wasmcni: ").to_string())
    }
}
