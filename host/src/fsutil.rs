//! The two file patterns the plugin's state relies on: whole-file replacement and advisory locks.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// Writes through a temporary file and a rename: readers see the old content or the new, never a part.
/// `sync` flushes to disk before the rename (for data that must survive a power loss).
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        // 0644 whatever the umask: readers check that no one but the owner can write what they load.
        let mut f = File::options().write(true).create(true).truncate(true).mode(0o644).open(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Opens (creating it and its directory) and flocks `path`; the lock lasts as long as the value.
pub fn lock(path: &Path, how: FlockArg) -> std::io::Result<Flock<File>> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let file = File::options().create(true).truncate(false).write(true).open(path)?;
    Flock::lock(file, how).map_err(|(_, errno)| errno.into())
}
