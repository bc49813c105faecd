//! The locks that order operations on one node. ADD holds its network's lock shared and GC holds it
//! exclusive, so GC never sees an attachment half made; ADD and DEL of one attachment hold its lock
//! exclusive, so a DEL that follows a killed ADD finds everything that ADD did, or will do.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::fsutil;

/// A waiting exclusive flock does not hold back new shared ones: under a steady stream of ADDs GC could
/// wait forever, so it tries for this long and then asks to be called again.
pub const GC_LOCK_WAIT: Duration = Duration::from_secs(30);
/// How often GC tries again meanwhile.
const GC_LOCK_POLL: Duration = Duration::from_millis(10);

pub fn network(state_dir: &Path, network: &str, exclusive: bool) -> Result<Flock<File>> {
    let path = state_dir.join("locks").join(network);
    let failed = |e: std::io::Error| Error::io(format!("cannot lock {}", path.display()), e);
    if !exclusive {
        return fsutil::lock(&path, FlockArg::LockShared).map_err(failed);
    }
    let deadline = Instant::now() + GC_LOCK_WAIT;
    loop {
        match fsutil::lock(&path, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => std::thread::sleep(GC_LOCK_POLL),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(Error::TryAgain(format!(
                    "GC waited {} s for ADDs in flight on network {network}: call it again",
                    GC_LOCK_WAIT.as_secs()
                )))
            }
            Err(e) => return Err(failed(e)),
        }
    }
}

/// One attachment's lock file, in the runDir (tmpfs: made and removed with every attachment, it costs a
/// disk's journal nothing). Network locks stay `<stateDir>/locks/<network>`, as before this one existed.
pub fn attachment_path(run_dir: &Path, network: &str, container_id: &str, ifname: &str) -> std::path::PathBuf {
    run_dir.join("attachment-locks").join(network).join(format!("{container_id}@{ifname}"))
}

pub fn attachment(run_dir: &Path, network: &str, container_id: &str, ifname: &str) -> Result<Flock<File>> {
    let path = attachment_path(run_dir, network, container_id, ifname);
    fsutil::lock(&path, FlockArg::LockExclusive).map_err(|e| Error::io(format!("cannot lock {}", path.display()), e))
}
