//! Reservations on disk in host-local's layout: `<dataDir>/<network>/<ip>` holding "id\r\nifname",
//! `last_reserved_ip.<set index>`, and a `lock` file taken with flock for the whole read-modify-write.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::Error;

const LAST_IP_PREFIX: &str = "last_reserved_ip.";
const TEMP_PREFIX: &str = ".reserving.";
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

    /// The store if the network has one; None without creating anything (DEL, CHECK, GC, STATUS only read or
    /// remove).
    pub fn open_existing(data_dir: &Path, network: &str) -> Result<Option<Self>, Error> {
        if !data_dir.join(network).is_dir() {
            return Ok(None);
        }
        Self::open(data_dir, network).map(Some)
    }

    pub fn is_reserved(&self, ip: IpAddr) -> bool {
        self.dir.join(ip.to_string()).exists()
    }

    pub fn last_reserved(&self, set_index: usize) -> Option<IpAddr> {
        fs::read_to_string(self.dir.join(format!("{LAST_IP_PREFIX}{set_index}"))).ok()?.trim().parse().ok()
    }

    /// Creates the reservation file exclusively, owner inside before it is visible: the owner goes into a
    /// temporary file named after the attachment, which is then hard-linked to the address's name (which
    /// fails if another container holds it). A writer killed midway leaves only that temporary file, which
    /// DEL of the attachment or GC removes. Ok(false) if another container holds the address.
    pub fn reserve(&self, ip: IpAddr, id: &str, ifname: &str, set_index: usize) -> Result<bool, Error> {
        let path = self.dir.join(ip.to_string());
        let tmp = self.temp_path(id, ifname);
        fs::write(&tmp, format!("{}{LINE_BREAK}{ifname}", id.trim())).map_err(io_err(&tmp))?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io_err(&path)(e)),
        }
        let last = self.dir.join(format!("{LAST_IP_PREFIX}{set_index}"));
        write_in_place(&last, ip.to_string().as_bytes()).map_err(io_err(&last))?;
        Ok(true)
    }

    /// Where a reservation of `id`/`ifname` is written before it is linked into place. Dot files are not
    /// addresses: host-local and our listing skip them.
    fn temp_path(&self, id: &str, ifname: &str) -> PathBuf {
        self.dir.join(format!("{TEMP_PREFIX}{}@{ifname}", id.trim()))
    }

    /// Removes what a reservation of `id`/`ifname` killed midway left (no directory listing needed).
    pub fn sweep_temp(&self, id: &str, ifname: &str) {
        let _ = fs::remove_file(self.temp_path(id, ifname));
    }

    /// Removes every temporary file a killed reservation left (GC: nobody reserves meanwhile, we hold the
    /// store's lock). Returns how many.
    pub fn sweep_all_temps(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else { return 0 };
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .filter(|e| fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Removes every reservation of this container and interface; returns what was released. With the
    /// addresses known (`ips`, from the record) only their files are read, each checked to be still this
    /// attachment's; without them every file is (host-local's layout has no index).
    pub fn release(&self, id: &str, ifname: &str, ips: &[IpAddr]) -> Result<Vec<IpAddr>, Error> {
        self.sweep_temp(id, ifname);
        let held: Vec<IpAddr> = if ips.is_empty() {
            self.find(id, ifname)?
        } else {
            ips.iter().copied().filter(|ip| self.holder(*ip).is_some_and(|(i, n)| i == id.trim() && (n == ifname || n.is_empty()))).collect()
        };
        let mut released = Vec::new();
        for ip in held {
            if self.remove(ip)? {
                released.push(ip);
            }
        }
        Ok(released)
    }

    /// Removes the reservation file of `ip`; false if there was none.
    pub fn remove(&self, ip: IpAddr) -> Result<bool, Error> {
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// (container id, ifname) in the reservation file of `ip`; ifname is empty in files of old host-local
    /// versions.
    fn holder(&self, ip: IpAddr) -> Option<(String, String)> {
        let content = fs::read_to_string(self.dir.join(ip.to_string())).ok()?;
        let mut lines = content.trim().split(LINE_BREAK);
        Some((lines.next().unwrap_or_default().to_string(), lines.next().unwrap_or_default().to_string()))
    }

    /// Every reservation file as (ip, container id, ifname); for GC and inspection.
    pub fn list(&self) -> Result<Vec<(IpAddr, String, String)>, Error> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err(&self.dir))? {
            let entry = entry.map_err(io_err(&self.dir))?;
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) else { continue };
            let Some((id, ifname)) = self.holder(ip) else { continue };
            out.push((ip, id, ifname));
        }
        Ok(out)
    }

    /// Addresses held by this container and interface or, failing that, by the id alone: host-local wrote
    /// files before it recorded ifnames.
    pub fn find(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, Error> {
        let list = self.list()?;
        let id = id.trim();
        let exact: Vec<IpAddr> = list.iter().filter(|(_, i, n)| i == id && n == ifname).map(|(ip, _, _)| *ip).collect();
        if !exact.is_empty() {
            return Ok(exact);
        }
        Ok(list.iter().filter(|(_, i, n)| i == id && n.is_empty()).map(|(ip, _, _)| *ip).collect())
    }
}

/// Overwrites `path` with `bytes` without truncating it to zero first: truncating a file that has data makes
/// ext4 free its block through the journal, ~0.17 ms, against ~0.01 ms for overwriting and trimming the tail.
/// Readers (ours, host-local's) hold the store's lock, as the writer does, so none sees it half done.
fn write_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = fs::File::options().write(true).create(true).truncate(false).open(path)?;
    f.write_all_at(bytes, 0)?;
    f.set_len(bytes.len() as u64)
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
        assert_eq!(store.release("ctr1", "eth0", &[]).unwrap(), vec![ip("10.0.0.2")]);
        assert!(!dir.join("10.0.0.2").exists());
        assert!(store.release("ctr1", "eth0", &[]).unwrap().is_empty(), "releasing twice is fine");
        // With the addresses known, a file that another container holds by now is left alone.
        assert!(store.reserve(ip("10.0.0.2"), "ctr2", "eth0", 0).unwrap());
        assert!(store.release("ctr1", "eth0", &[ip("10.0.0.2")]).unwrap().is_empty());
        assert_eq!(store.release("ctr2", "eth0", &[ip("10.0.0.2")]).unwrap(), vec![ip("10.0.0.2")]);
    }

    #[test]
    fn a_reservation_is_never_visible_half_made() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        // What a writer killed before the link leaves: only the temporary file, which is no address.
        fs::write(tmp.path().join("net/.reserving.ctr1@eth0"), "ctr1\r\neth0").unwrap();
        assert!(store.list().unwrap().is_empty());
        assert!(store.reserve(ip("10.0.0.2"), "ctr1", "eth0", 0).unwrap(), "a retry overwrites its own leftover");
        assert!(!tmp.path().join("net/.reserving.ctr1@eth0").exists());
        fs::write(tmp.path().join("net/.reserving.ctr1@eth0"), "x").unwrap();
        store.release("ctr1", "eth0", &[]).unwrap();
        assert!(!tmp.path().join("net/.reserving.ctr1@eth0").exists(), "DEL sweeps it");
        fs::write(tmp.path().join("net/.reserving.ctr9@eth0"), "x").unwrap();
        assert_eq!(store.sweep_all_temps(), 1);
    }

    #[test]
    fn reads_old_id_only_files() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path(), "net").unwrap();
        fs::write(tmp.path().join("net/10.0.0.9"), "oldctr").unwrap();
        assert_eq!(store.release("oldctr", "eth0", &[]).unwrap(), vec![ip("10.0.0.9")]);
    }
}
