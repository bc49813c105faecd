//! What install wrote, with hashes: `<state-dir>/install.json`. It tells a file of ours that nobody touched
//! (safe to replace or remove) from one changed by hand or never ours (kept unless `--force`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Binary,
    Hook,
    /// A precompiled hook in the plugin's cache.
    Cache,
    Conflist,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// As the node sees it (without `--root`).
    pub path: PathBuf,
    pub sha256: String,
    pub mode: u32,
    pub kind: Kind,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub files: Vec<Entry>,
    /// Directories install created (so uninstall removes them when they are empty again).
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
}

impl Record {
    /// A missing record is an empty one (nothing installed yet).
    pub fn load(real_path: &Path) -> Result<Record, String> {
        match std::fs::read(real_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!("the install record {} is not valid ({e}); move it away to start over", real_path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(format!("cannot read the install record {}: {e}", real_path.display())),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("a record serializes");
        v.push(b'\n');
        v
    }

    pub fn get(&self, path: &Path) -> Option<&Entry> {
        self.files.iter().find(|e| e.path == path)
    }

    pub fn put(&mut self, entry: Entry) {
        match self.files.iter_mut().find(|e| e.path == entry.path) {
            Some(e) => *e = entry,
            None => self.files.push(entry),
        }
    }

    pub fn forget(&mut self, path: &Path) {
        self.files.retain(|e| e.path != path);
    }

    pub fn add_dir(&mut self, dir: &Path) {
        if !self.dirs.iter().any(|d| d == dir) {
            self.dirs.push(dir.to_path_buf());
        }
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A file as it is on disk now: its hash and permission bits, or None when it does not exist.
pub fn observe(real_path: &Path) -> std::io::Result<Option<(String, u32)>> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::read(real_path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(real_path)?.permissions().mode() & 0o7777;
            Ok(Some((sha256_hex(&bytes), mode)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
