//! The attachment record: what a successful ADD created, written atomically under the state dir. DEL, CHECK
//! and GC work from it rather than from live interfaces, which may already be gone.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rollback::Undo;
use crate::cni::result::CniResult;
use crate::error::Error;

const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: Option<PathBuf>,
    pub host_veth: String,
    /// What DEL runs, in ADD's order (unwound last-first).
    pub undo: Vec<Undo>,
    /// The result ADD returned, in the internal (1.1) form.
    pub result: CniResult,
    /// Set by ADD once it wrote this record (not stored).
    #[serde(skip)]
    pub written: bool,
}

pub fn dir(state_dir: &Path, network: &str) -> PathBuf {
    state_dir.join("attachments").join(network)
}

pub fn path(state_dir: &Path, network: &str, container_id: &str, ifname: &str) -> PathBuf {
    // '@' never occurs in a container id (spec alphabet), so the file name is unambiguous.
    dir(state_dir, network).join(format!("{container_id}@{ifname}.json"))
}

impl Record {
    pub fn new(network: &str, container_id: &str, ifname: &str, netns: Option<PathBuf>, host_veth: String) -> Self {
        Record {
            format: FORMAT,
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            netns,
            host_veth,
            undo: Vec::new(),
            result: CniResult::default(),
            written: false,
        }
    }

    /// Write to a temporary file and rename: readers see the old record or the new one, never a part. No
    /// fsync (it cost ~3 ms per ADD): after a power loss a lost or empty record makes DEL clean up by name.
    pub fn write(&self, state_dir: &Path) -> Result<PathBuf, Error> {
        let target = path(state_dir, &self.network, &self.container_id, &self.ifname);
        let dir = target.parent().expect("record path has a parent");
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let bytes = serde_json::to_vec_pretty(self).expect("record serializes");
        crate::fsutil::write_atomic(&target, &bytes, false)
            .map_err(|e| Error::io(format!("cannot write attachment record {}", target.display()), e))?;
        Ok(target)
    }

    /// None if there is no record; a corrupt record is an error the caller decides about.
    pub fn load(path: &Path) -> Result<Option<Self>, Error> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Decode { what: "attachment record", source }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
        }
    }

    pub fn remove(path: &Path) -> Result<(), Error> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(Error::io(format!("cannot remove {}", path.display()), e)),
            _ => Ok(()),
        }
    }

    /// Every record of `network` (for GC and inspection); unreadable ones are skipped with a warning.
    pub fn list(state_dir: &Path, network: &str) -> Vec<(PathBuf, Record)> {
        let Ok(entries) = fs::read_dir(dir(state_dir, network)) else { return Vec::new() };
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter_map(|p| match Record::load(&p) {
                Ok(Some(r)) => Some((p, r)),
                Ok(None) => None,
                Err(e) => {
                    log::warn!("skipping {}: {e}", p.display());
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_load_remove_roundtrip() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = Record::new("net", "ctr", "eth0", Some("/var/run/netns/x".into()), "wcni0".into());
        r.undo.push(Undo::DeleteHostLink { name: "wcni0".into() });
        let p = r.write(tmp.path()).unwrap();
        assert_eq!(p, path(tmp.path(), "net", "ctr", "eth0"));
        assert_eq!(Record::load(&p).unwrap(), Some(r.clone()));
        assert_eq!(Record::list(tmp.path(), "net").len(), 1);
        Record::remove(&p).unwrap();
        Record::remove(&p).unwrap();
        assert_eq!(Record::load(&p).unwrap(), None);
        assert!(fs::read_dir(p.parent().unwrap()).unwrap().next().is_none(), "no temp files left");
    }
}
