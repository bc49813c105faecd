//! Network namespaces by path. Work that must happen inside one runs on a short-lived thread that enters it:
//! the calling thread never switches, so an early return or a panic cannot leave it in the wrong namespace.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

use crate::error::Error;

#[derive(Debug)]
pub struct NetNs {
    path: PathBuf,
    file: File,
}

impl NetNs {
    /// Opens the namespace at `path` (a bind mount such as /var/run/netns/x, or /proc/PID/ns/net).
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::UnknownContainer(format!(
                    "netns {} does not exist (was the pod already deleted?)",
                    path.display()
                ))
            } else {
                Error::io(format!("cannot open netns {}", path.display()), e)
            }
        })?;
        Ok(NetNs { path: path.to_path_buf(), file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` on a fresh thread inside this namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, std::io::Error> {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("thread inside the netns panicked")))
        })
    }
}
