//! The only side effects install has, behind a trait so tests can watch their order. Reads are plain
//! `std::fs`: they change nothing.

use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub trait Disk {
    /// Replaces `path` whole: a reader (a runtime loading the conf dir, an ADD exec'ing the binary) sees the
    /// old file or the new one, never a part.
    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
}

pub struct RealDisk;

/// The temporary name beside `path`: a leading dot and no `.conf`/`.conflist`/`.json` ending, so a runtime
/// scanning the conf dir skips it, and same directory, so the rename is atomic.
pub fn tmp_name(path: &Path) -> std::path::PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp.{}", std::process::id()))
}

impl Disk for RealDisk {
    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        let tmp = tmp_name(path);
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.set_permissions(Permissions::from_mode(mode))?;
            // On disk before the rename: after a power loss the node has the old file or the whole new one.
            f.sync_all()?;
            // A new inode renamed over the old: a running ADD keeps executing its old binary (no "text file
            // busy", which writing in place would give).
            fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)?;
        fs::set_permissions(path, Permissions::from_mode(0o755))
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }
}
