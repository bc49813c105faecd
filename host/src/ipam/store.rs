//! Reservations on disk in host-local's layout: `<dataDir>/<network>/<ip>` holding "id\r\nifname",
//! `last_reserved_ip.<set index>`, and a `lock` file taken with flock for the whole read-modify-write.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::Error;

const LAST_IP_PREFIX: &str = "last_reserved_ip.";
const LINE_BREAK: &str = "\r\n";

/// An open, exclusively locked network directory. The lock is released on drop.
pub struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

impl Store {
    pub fn open(data_dir: &Path, network: &str) -> Result<Self, Error> {
        let dir = data_dir.join(network);
        let lock_path = dir.join("lock");
        let lock = crate::fsutil::lock(&lock_path, FlockArg::LockExclusive).map_err(io_err(&lock_path))?;
        Ok(Store { dir, _lock: lock })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_reserved(&self, ip: IpAddr) -> bool {
        self.dir.join(ip.to_string()).exists()
    }

    pub fn last_reserved(&self, set_index: usize) -> Option<IpAddr> {
        fs::read_to_string(self.dir.join(format!("{LAST_IP_PREFIX}{set_index}"))).ok()?.trim().parse().ok()
    }

    /// Creates the reservation file exclusively; Ok(false) if another container holds the address.
    pub fn reserve(&self, ip: IpAddr, id: &str, ifname: &str, set_index: usize) -> Result<bool, Error> {
        let path = self.dir.join(ip.to_string());
        let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(&path)(e)),
        };
        if let Err(e) = f.write_all(format!("{}{LINE_BREAK}{ifname}", id.trim()).as_bytes()) {
            let _ = fs::remove_file(&path);
            return Err(io_err(&path)(e));
        }
        let last = self.dir.join(format!("{LAST_IP_PREFIX}{set_index}"));
        fs::write(&last, ip.to_string()).map_err(io_err(&last))?;
        Ok(true)
    }

    /// Addresses held by this container and interface (or by the id alone: files of old host-local versions).
    pub fn find(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, Error> {
        Ok(self.matching(id, ifname)?.into_iter().map(|(ip, _)| ip).collect())
    }

    /// Removes every reservation of this container and interface; returns what was released.
    pub fn release(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, Error> {
        let mut released = Vec::new();
        for (ip, path) in self.matching(id, ifname)? {
            match fs::remove_file(&path) {
                Ok(()) => released.push(ip),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
        }
        Ok(released)
    }

    /// Every reservation file as (ip, container id, ifname); for GC and inspection.
    pub fn list(&self) -> Result<Vec<(IpAddr, String, String)>, Error> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) else { continue };
            let Ok(content) = fs::read_to_string(entry.path()) else { continue };
            let mut lines = content.trim().split(LINE_BREAK);
            let id = lines.next().unwrap_or_default().to_string();
            let ifname = lines.next().unwrap_or_default().to_string();
            out.push((ip, id, ifname));
        }
        Ok(out)
    }

    fn matching(&self, id: &str, ifname: &str) -> Result<Vec<(IpAddr, PathBuf)>, Error> {
        let full = format!("{}{LINE_BREAK}{ifname}", id.trim());
        let list = self.list()?;
        let exact: Vec<_> = list.iter().filter(|(_, i, n)| format!("{i}{LINE_BREAK}{n}") == full).collect();
        // host-local compatibility: files written before ifname was recorded hold the id only.
        let chosen = if exact.is_empty() {
            list.iter().filter(|(_, i, n)| i == id.trim() && n.is_empty()).collect()
        } else {
            exact
        };
        Ok(chosen.into_iter().map(|(ip, _, _)| (*ip, self.dir.join(ip.to_string()))).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn reserve_writes_host_local_layout_and_release_removes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        assert!(store.reserve(ip("10.0.0.2"), "ctr1", "eth0", 0).unwrap());
        assert!(!store.reserve(ip("10.0.0.2"), "ctr2", "eth0", 0).unwrap(), "second holder refused");
        let dir = tmp.path().join("net");
        assert_eq!(fs::read_to_string(dir.join("10.0.0.2")).unwrap(), "ctr1\r\neth0");
        assert_eq!(fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(), "10.0.0.2");
        assert!(dir.join("lock").exists());
        assert_eq!(store.last_reserved(0), Some(ip("10.0.0.2")));
        assert_eq!(store.find("ctr1", "eth0").unwrap(), vec![ip("10.0.0.2")]);
        assert!(store.find("ctr1", "eth1").unwrap().is_empty());
        assert_eq!(store.release("ctr1", "eth0").unwrap(), vec![ip("10.0.0.2")]);
        assert!(!dir.join("10.0.0.2").exists());
        assert!(store.release("ctr1", "eth0").unwrap().is_empty(), "releasing twice is fine");
    }

    #[test]
    fn reads_old_id_only_files() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        fs::write(tmp.path().join("net/10.0.0.9"), "oldctr").unwrap();
        assert_eq!(store.release("oldctr", "eth0").unwrap(), vec![ip("10.0.0.9")]);
    }
}
