//! Hook sets on the node: `<hook-dir>/sets/<version>/` each, and `<hook-dir>/current`, a symlink to one of
//! them, replaced by rename. The conflist names `<hook-dir>/current/hooks.toml`, so an ADD that resolves
//! the link once sees the old set or the new one, never a mix.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::source::{HookFiles, MANIFEST};

pub struct SetDir {
    root: PathBuf,
}

impl SetDir {
    pub fn new(root: PathBuf) -> SetDir {
        SetDir { root }
    }

    /// What the conflist names.
    pub fn manifest_link(&self) -> PathBuf {
        self.root.join("current").join(MANIFEST)
    }

    fn sets(&self) -> PathBuf {
        self.root.join("sets")
    }

    pub fn set_path(&self, version: &str) -> PathBuf {
        self.sets().join(version)
    }

    /// The version `current` points to, if any.
    pub fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.root.join("current")).ok()?;
        let v = target.file_name()?.to_string_lossy().into_owned();
        self.set_path(&v).join(MANIFEST).is_file().then_some(v)
    }

    /// Writes the set under its version (a staging dir renamed into place); returns its manifest path.
    pub fn stage(&self, version: &str, files: &HookFiles) -> io::Result<PathBuf> {
        let staging = self.sets().join(format!(".staging-{version}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        for (rel, bytes) in &files.files {
            let path = staging.join(rel);
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, bytes)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
        }
        let dest = self.set_path(version);
        // A leftover of the same version (an earlier rejected or interrupted try) is rebuilt, not trusted.
        if dest.exists() && self.current().as_deref() != Some(version) {
            std::fs::remove_dir_all(&dest)?;
        }
        std::fs::rename(&staging, &dest)?;
        Ok(dest.join(MANIFEST))
    }

    pub fn discard(&self, version: &str) {
        if self.current().as_deref() != Some(version) {
            let _ = std::fs::remove_dir_all(self.set_path(version));
        }
    }

    /// Points `current` at `version` in one rename.
    pub fn switch(&self, version: &str) -> io::Result<()> {
        let tmp = self.root.join(format!(".current.tmp.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        // Relative, so the link also resolves from a container that mounts the hook dir elsewhere.
        std::os::unix::fs::symlink(Path::new("sets").join(version), &tmp)?;
        std::fs::rename(&tmp, self.root.join("current")).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// Removes sets other than `current` and `previous`: the one before stays, since an ADD that resolved
    /// the link a moment ago may still read it, and rolling back to it needs no copy.
    pub fn prune(&self, current: &str, previous: Option<&str>) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.sets()) else { return Vec::new() };
        let mut removed = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == current || Some(name.as_str()) == previous {
                continue;
            }
            if std::fs::remove_dir_all(e.path()).is_ok() {
                removed.push(name);
            }
        }
        removed
    }
}
