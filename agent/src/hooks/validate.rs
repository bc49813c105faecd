//! Whether a staged hook set may become current: the plugin binary itself loads it (manifest parses, every
//! sha256 pin matches, every module is a component of our contract) and compiles it into the node's
//! cache. Exec'd, so the agent never links wasmtime and judges with exactly the plugin's rules.

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
    /// The plugin's checking command. (`wasmcni hook check MANIFEST` will replace `compile` here.)
    fn args(&self, manifest: &Path) -> Vec<OsString> {
        vec!["hook".into(), "compile".into(), manifest.into(), "--state-dir".into(), self.state_dir.clone().into()]
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
