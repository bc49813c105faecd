//! A candidate hook set: the files of one version, from the cluster's ConfigMap (`data` holds hooks.toml,
//! `binaryData` small modules) over a directory filled by an init container from a hooks image (modules
//! too large for a ConfigMap's 1 MiB). Its version is a hash of every name and byte, so the same content
//! always has the same version on every node.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "hooks.toml";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookFiles {
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

impl HookFiles {
    /// 16 hex digits of sha256 over (name, length, bytes) of every file, in name order.
    pub fn version(&self) -> String {
        let mut h = Sha256::new();
        for (name, bytes) in &self.files {
            h.update(name.as_os_str().as_encoded_bytes());
            h.update([0]);
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        }
        h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
    }

    /// No manifest anywhere means "no hooks": an empty manifest, which is a valid set.
    pub fn with_manifest(mut self) -> HookFiles {
        self.files.entry(PathBuf::from(MANIFEST)).or_default();
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("hook file name {0:?} is not allowed (a plain relative path without '..')")]
    BadName(String),
    #[error("cannot read the hooks image dir {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

fn safe(rel: &Path) -> bool {
    !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(n) if !n.to_string_lossy().starts_with('.')))
}

/// Every regular file under `dir`, by relative path; an absent dir is an empty set (the init container
/// may not exist in a given setup).
pub fn from_dir(dir: &Path) -> Result<HookFiles, SourceError> {
    let mut out = HookFiles::default();
    if !dir.exists() {
        return Ok(out);
    }
    let err = |path: &Path, source| SourceError::Read { path: path.display().to_string(), source };
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let here = dir.join(&rel);
        for e in std::fs::read_dir(&here).map_err(|e| err(&here, e))? {
            let e = e.map_err(|e| err(&here, e))?;
            let r = rel.join(e.file_name());
            if !safe(&r) {
                continue; // dotfiles: the staging dirs of whatever copied them in
            }
            let path = e.path();
            let meta = std::fs::metadata(&path).map_err(|e| err(&path, e))?;
            if meta.is_dir() {
                stack.push(r);
            } else if meta.is_file() {
                out.files.insert(r, std::fs::read(&path).map_err(|e| err(&path, e))?);
            }
        }
    }
    Ok(out)
}

/// A ConfigMap's files laid over `base`: `data` as text, `binaryData` as bytes (k8s-openapi decodes the
/// base64). Keys are file names in the set's top directory.
pub fn overlay_configmap(mut base: HookFiles, cm: &ConfigMap) -> Result<HookFiles, SourceError> {
    let text = cm.data.iter().flatten().map(|(k, v)| (k, v.as_bytes().to_vec()));
    let binary = cm.binary_data.iter().flatten().map(|(k, v)| (k, v.0.clone()));
    for (k, bytes) in text.chain(binary) {
        let rel = PathBuf::from(k);
        if !safe(&rel) || rel.components().count() != 1 {
            return Err(SourceError::BadName(k.clone()));
        }
        base.files.insert(rel, bytes);
    }
    Ok(base)
}
