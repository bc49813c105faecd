//! The attachment record: every undo step of an attachment, written atomically under the state dir before
//! ADD makes the changes it lists (so a killed ADD leaves a record DEL and GC can replay) and again, marked
//! complete, with the result. DEL, CHECK and GC work from it rather than from live interfaces, which may
//! already be gone.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::undo::Undo;
use crate::cni::result::CniResult;
use crate::error::Error;
use crate::firewall::{AttachmentRules, Backend, Family, Masquerade};

/// 2: firewall steps name their backend (format 1 had iptables steps of their own, still read).
const FORMAT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub format: u32,
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: Option<PathBuf>,
    pub host_veth: String,
    /// What DEL runs, in ADD's order (unwound last-first).
    #[serde(deserialize_with = "legacy::undo_list")]
    pub undo: Vec<Undo>,
    /// The result ADD returned, in the internal (1.1) form.
    pub result: CniResult,
    /// False while ADD runs (and forever, if it was killed): CHECK reports it, DEL and GC undo it all.
    #[serde(default = "legacy::complete")]
    pub complete: bool,
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
            complete: false,
        }
    }

    /// Written whole to `<stem>.tmp`, then the old record removed and the new one renamed into place: a
    /// reader sees the old record, the new one, or (a writer killed in between) only the `.tmp`, which
    /// `recover` takes. Not renamed over the old one: ext4 then starts writing the new file out at once
    /// (its auto_da_alloc), ~0.1 ms per write, twice per ADD. No fsync (~3 ms): after a power loss a lost or
    /// empty record makes DEL clean up by name. The writer holds the attachment's lock, so the temporary
    /// name is its alone.
    pub fn write(&self, state_dir: &Path) -> Result<PathBuf, Error> {
        let target = path(state_dir, &self.network, &self.container_id, &self.ifname);
        let dir = target.parent().expect("record path has a parent");
        let failed = |e| Error::io(format!("cannot write attachment record {}", target.display()), e);
        let bytes = serde_json::to_vec_pretty(self).expect("record serializes");
        let tmp = target.with_extension("tmp");
        let written = fs::write(&tmp, &bytes).or_else(|e| {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(e);
            }
            fs::create_dir_all(dir)?;
            fs::write(&tmp, &bytes)
        });
        written.map_err(failed)?;
        match fs::remove_file(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
            _ => {}
        }
        fs::rename(&tmp, &target).map_err(failed)?;
        Ok(target)
    }

    /// None if there is no record; a corrupt record is an error the caller decides about.
    pub fn load(path: &Path) -> Result<Option<Self>, Error> {
        match fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Record>(&bytes)
                .map(|mut r| {
                    r.fill_legacy_steps();
                    Some(r)
                })
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

    /// Format-1 firewall steps know the chains but not the attachment: it is this record's.
    fn fill_legacy_steps(&mut self) {
        for step in &mut self.undo {
            if let Undo::Firewall { rules, .. } = step {
                if rules.network.is_empty() {
                    rules.network = self.network.clone();
                    rules.container_id = self.container_id.clone();
                    rules.ifname = self.ifname.clone();
                    rules.host_veth = self.host_veth.clone();
                }
            }
        }
    }
}

/// What a writer killed midway left for the record at `path`: a `.tmp` that parses is the newest record (the
/// writer was killed after writing it, before or while putting it in place) and takes the record's place; one
/// that does not (killed while writing it) goes. Callers hold the attachment's lock, so no writer is at work.
/// One failed open when there is nothing: ADD and DEL never list the directory, which grows with the pods.
pub fn recover(path: &Path) {
    let tmp = path.with_extension("tmp");
    let Ok(bytes) = fs::read(&tmp) else { return };
    if serde_json::from_slice::<Record>(&bytes).is_ok() && fs::rename(&tmp, path).is_ok() {
        log::info!("recovered {} from {}, which a writer that did not finish left", path.display(), tmp.display());
    } else if fs::remove_file(&tmp).is_ok() {
        log::info!("removed {}, left half written by a writer that did not finish", tmp.display());
    }
}

/// `recover` for every record of `dir` (GC: it holds the network exclusively, so no ADD writes meanwhile;
/// DEL and ADD of one attachment take its lock, and GC takes none, so at worst it recovers a record a
/// concurrent DEL was about to remove, which the DEL's retry removes), and the `.tmp.<pid>` files of older
/// versions. Returns how many files it acted on.
pub fn recover_all(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut done = 0;
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if let Some(stem) = name.strip_suffix(".tmp") {
            recover(&dir.join(format!("{stem}.json")));
            done += 1;
        } else if name.rsplit_once(".tmp.").is_some_and(|(_, pid)| pid.chars().all(|c| c.is_ascii_digit())) && fs::remove_file(&path).is_ok() {
            log::info!("removed {}, left by a writer that did not finish", path.display());
            done += 1;
        }
    }
    done
}

/// Records of format 1 (before the firewall seam) name iptables chains directly; they are read as
/// iptables firewall steps.
mod legacy {
    use super::*;

    pub fn complete() -> bool {
        // Format 1 wrote records only when ADD had succeeded.
        true
    }

    #[derive(Deserialize)]
    struct OldMasquerade {
        sources: Vec<(std::net::IpAddr, ipnet::IpNet)>,
    }

    #[derive(Deserialize)]
    #[serde(tag = "undo", rename_all = "kebab-case")]
    enum OldStep {
        RemoveMasquerade {
            masq: OldMasquerade,
            #[allow(dead_code)]
            families: Vec<Family>,
        },
        RemoveChains {
            #[allow(dead_code)]
            family: Family,
            chains: Vec<String>,
        },
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Current(Undo),
        Old(OldStep),
    }

    pub fn undo_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Undo>, D::Error> {
        let stored = Vec::<Stored>::deserialize(d)?;
        let mut out = Vec::new();
        // The old steps of one record all become one iptables step (filled in by fill_legacy_steps).
        let mut old = AttachmentRules::new("", "", "", "");
        let mut any_old = false;
        for s in stored {
            match s {
                Stored::Current(u) => out.push(u),
                Stored::Old(OldStep::RemoveMasquerade { masq, .. }) => {
                    any_old = true;
                    old.masquerade = Some(Masquerade { sources: masq.sources, except: Vec::new() });
                }
                Stored::Old(OldStep::RemoveChains { chains, .. }) => {
                    any_old = true;
                    for c in chains {
                        if !old.extra_chains.contains(&c) {
                            old.extra_chains.push(c);
                        }
                    }
                }
            }
        }
        if any_old {
            old.addresses = old.masquerade.iter().flat_map(|m| m.sources.iter().map(|(ip, _)| *ip)).collect();
            // Where the old firewall steps stood: after the host link (unwinding runs firewall steps on their
            // own thread anyway).
            out.push(Undo::Firewall { backend: Backend::Iptables, rules: old });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_load_remove_roundtrip() {
        let tmp = tempfile::tempdir().unwrap();
        let mut r = Record::new("net", "ctr", "eth0", Some("/var/run/netns/x".into()), "wcni0".into());
        r.undo.push(Undo::DeleteHostLink { name: "wcni0".into(), if_alias: None });
        let p = r.write(tmp.path()).unwrap();
        assert_eq!(p, path(tmp.path(), "net", "ctr", "eth0"));
        assert_eq!(Record::load(&p).unwrap(), Some(r.clone()));
        assert_eq!(Record::list(tmp.path(), "net").len(), 1);
        Record::remove(&p).unwrap();
        Record::remove(&p).unwrap();
        assert_eq!(Record::load(&p).unwrap(), None);
        assert!(fs::read_dir(p.parent().unwrap()).unwrap().next().is_none(), "no temp files left");
    }

    #[test]
    fn a_format_1_record_reads_as_iptables_steps_of_its_attachment() {
        let old = r#"{"format":1,"network":"net","container_id":"ctr","ifname":"eth0","netns":null,"host_veth":"wcni1",
          "undo":[{"undo":"release-ips","data_dir":"/d","network":"net","container_id":"ctr","ifname":"eth0","ips":["10.0.0.5"]},
                  {"undo":"delete-host-link","name":"wcni1"},
                  {"undo":"remove-chains","family":"V4","table":"filter","chains":["WCNI-aaa"]},
                  {"undo":"remove-masquerade","masq":{"chain":"CNI-x","comment":"c","sources":[["10.0.0.5","10.0.0.0/24"]]},"families":["V4"]}],
          "result":{"interfaces":[],"ips":[],"routes":[]}}"#;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("r.json");
        fs::write(&p, old).unwrap();
        let r = Record::load(&p).unwrap().unwrap();
        assert!(r.complete);
        assert_eq!(r.undo.len(), 3);
        match &r.undo[2] {
            Undo::Firewall { backend: Backend::Iptables, rules } => {
                assert_eq!((rules.network.as_str(), rules.container_id.as_str(), rules.ifname.as_str()), ("net", "ctr", "eth0"));
                assert_eq!(rules.extra_chains, vec!["WCNI-aaa".to_string()]);
                assert_eq!(rules.masquerade.as_ref().unwrap().sources.len(), 1);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn what_a_killed_writer_left_is_recovered_or_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path();
        let rec = Record::new("net", "a", "eth0", None, "wcniabc".into());
        let target = rec.write(state).unwrap();
        assert!(!target.with_extension("tmp").exists(), "a finished write leaves no temporary file");
        // Killed after the new record was written, before it was put in place.
        let mut newer = Record::new("net", "a", "eth0", None, "wcniabc".into());
        newer.complete = true;
        fs::write(target.with_extension("tmp"), serde_json::to_vec(&newer).unwrap()).unwrap();
        fs::remove_file(&target).unwrap();
        recover(&target);
        assert!(Record::load(&target).unwrap().unwrap().complete, "the newest record takes the place");
        // Killed while writing it: half a record goes, the one in place stays.
        fs::write(target.with_extension("tmp"), b"{\"net").unwrap();
        recover(&target);
        assert!(!target.with_extension("tmp").exists() && target.exists());
        // GC: every record's, and an older version's per-pid file.
        let dir = target.parent().unwrap();
        fs::write(dir.join("b@eth0.tmp"), b"{").unwrap();
        fs::write(dir.join("c@eth0.tmp.456"), b"").unwrap();
        fs::write(dir.join("a@eth0.tmp.x"), b"").unwrap();
        assert_eq!(recover_all(dir), 2);
        let mut left: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["a@eth0.json", "a@eth0.tmp.x"]);
    }
}
