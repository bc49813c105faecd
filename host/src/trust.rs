//! Whether a file may be trusted with what we are about to do with it: map it as native code (the hook
//! cache) or run it as a hook (manifests and modules, when we are root). A file is trusted when it and
//! every directory above it can only have been written by root or by the invoking user: anyone else who
//! could write one of them could swap what we load.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The owners whose files we accept: root always, and the invoking user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owners {
    uid: u32,
}

impl Owners {
    /// Root and the effective user of this process (just root when that is root).
    pub fn current() -> Self {
        Owners { uid: nix::unistd::geteuid().as_raw() }
    }

    pub fn root_only() -> Self {
        Owners { uid: 0 }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    fn accepts(&self, uid: u32) -> bool {
        uid == 0 || uid == self.uid
    }
}

/// Why a path is not trusted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct Untrusted {
    pub path: PathBuf,
    pub why: String,
}

const STICKY: u32 = 0o1000;

/// The verdict on one path component from its owner and mode; None when it is acceptable.
/// A directory writable by others is accepted only when root owns it and its sticky bit is set (as /tmp):
/// then nobody else can rename or remove what another user created in it.
pub fn judge(uid: u32, mode: u32, is_dir: bool, owners: Owners) -> Option<String> {
    if !owners.accepts(uid) {
        let who = if owners.is_root() { "root".to_string() } else { format!("root or uid {}", owners.uid) };
        return Some(format!("owned by uid {uid}, not by {who}"));
    }
    if is_dir && uid == 0 && mode & STICKY != 0 {
        return None;
    }
    if mode & 0o002 != 0 {
        return Some(format!("writable by everyone (mode {:o})", mode & 0o7777));
    }
    if mode & 0o020 != 0 {
        return Some(format!("writable by its group (mode {:o})", mode & 0o7777));
    }
    None
}

/// Checks `path` (after resolving symlinks) and every directory above it.
pub fn check(path: &Path, owners: Owners) -> Result<(), Untrusted> {
    let untrusted = |p: &Path, why: String| Untrusted { path: p.to_path_buf(), why };
    let real = path.canonicalize().map_err(|e| untrusted(path, format!("cannot resolve: {e}")))?;
    for component in real.ancestors() {
        let meta = std::fs::symlink_metadata(component).map_err(|e| untrusted(component, format!("cannot stat: {e}")))?;
        if let Some(why) = judge(meta.uid(), meta.mode(), meta.is_dir(), owners) {
            return Err(untrusted(component, why));
        }
    }
    Ok(())
}

/// Checks a file we are about to read or map: a regular file (not a symlink, not a device), trusted.
pub fn check_file(path: &Path, owners: Owners) -> Result<(), Untrusted> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Untrusted { path: path.to_path_buf(), why: format!("cannot stat: {e}") })?;
    if !meta.is_file() {
        return Err(Untrusted { path: path.to_path_buf(), why: "not a regular file".into() });
    }
    check(path, owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Owners = Owners { uid: 1000 };

    #[test]
    fn owners_and_modes() {
        assert_eq!(judge(0, 0o40755, true, Owners::root_only()), None);
        assert_eq!(judge(1000, 0o40700, true, ME), None);
        assert!(judge(1000, 0o100644, false, Owners::root_only()).unwrap().contains("owned by uid 1000, not by root"));
        assert!(judge(1001, 0o100644, false, ME).unwrap().contains("not by root or uid 1000"));
        assert!(judge(0, 0o100664, false, ME).unwrap().contains("group"));
        assert!(judge(0, 0o100646, false, ME).unwrap().contains("everyone"));
        // /tmp: root-owned, sticky, world-writable: fine as an ancestor. Without the sticky bit, or owned by
        // someone else, it is not.
        assert_eq!(judge(0, 0o41777, true, ME), None);
        assert!(judge(0, 0o40777, true, ME).is_some());
        assert!(judge(1000, 0o41777, true, ME).is_some());
        assert!(judge(0, 0o101646, false, ME).is_some(), "a sticky file is still a file");
    }

    #[test]
    fn checks_every_directory_above() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("entry");
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(check_file(&f, Owners::current()), Ok(()));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_file(&f, Owners::current()).unwrap_err();
        assert_eq!(err.path, tmp.path().canonicalize().unwrap());
        assert!(err.why.contains("everyone"), "{err}");
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&f, tmp.path().join("link")).unwrap();
        assert!(check_file(&tmp.path().join("link"), Owners::current()).unwrap_err().why.contains("regular file"));
    }
}
