//! GC (CNI 1.1): remove every attachment of this network that the runtime no longer lists in
//! `cni.dev/valid-attachments`: recorded ones through their undo steps; then masquerade chains, hook chains,
//! veths and IP reservations that no record explains, found by our naming. Keeps going past errors and
//! reports them all at the end.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

use super::leaks;
use super::record::Record;
use super::rollback::{Undo, Undoer};
use crate::cni::request::Request;
use crate::error::{Error, Result};
use crate::firewall::{Family, Iptables};
use crate::fsutil;
use crate::netlink::Netlink;

/// ADD holds this lock shared for its whole run and GC holds it exclusive, so GC never sees an attachment
/// half made (a reservation without its record yet) and takes it for a leak.
pub fn lock(state_dir: &Path, network: &str, exclusive: bool) -> Result<Flock<File>> {
    let path = state_dir.join("locks").join(network);
    let failed = |e: std::io::Error| Error::io(format!("cannot lock {}", path.display()), e);
    if !exclusive {
        return fsutil::lock(&path, FlockArg::LockShared).map_err(failed);
    }
    // A waiting exclusive flock does not hold back new shared ones: under a steady stream of ADDs GC could
    // wait forever, so it tries for a bounded time and then asks to be called again.
    let deadline = std::time::Instant::now() + GC_LOCK_WAIT;
    loop {
        match fsutil::lock(&path, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
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

const GC_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn run(req: &Request) -> Result<()> {
    let valid = valid_attachments(&req.raw_conf)?;
    let state_dir = req.conf.state_dir();
    let _no_add_in_flight = lock(&state_dir, &req.conf.name, true)?;
    let rt = super::runtime()?;
    let node = Netlink::connect(&rt)?;
    let undoer = Undoer { node: &node, iptables: &Iptables };
    let mut errors = Vec::new();
    // Attachments whose cleanup failed keep their record and their addresses (released last, on retry).
    let mut kept = valid.clone();
    for (path, rec) in Record::list(&state_dir, &req.conf.name) {
        if valid.contains(&(rec.container_id.clone(), rec.ifname.clone())) {
            continue;
        }
        log::info!("gc: removing stale attachment {}/{}", rec.container_id, rec.ifname);
        let errs = rt.block_on(undoer.unwind(&rec.undo));
        if errs.is_empty() {
            if let Err(e) = Record::remove(&path) {
                errors.push(e.to_string());
            }
        } else {
            kept.insert((rec.container_id.clone(), rec.ifname.clone()));
        }
        errors.extend(errs);
    }
    // Chains and veths that no record explains, found by our naming, removed one attachment at a time: an
    // attachment whose leftovers stay keeps its addresses too (masquerade chains name only the container).
    let (leaked, listed) = rt.block_on(find_leaks(&node, &req.conf.name, &kept, &mut errors));
    let mut kept_ids: HashSet<String> = HashSet::new();
    let mut by_attachment: BTreeMap<(String, Option<String>), Vec<Undo>> = BTreeMap::new();
    for l in leaked {
        by_attachment.entry((l.container_id, l.ifname)).or_default().push(l.undo);
    }
    for ((id, ifname), undo) in by_attachment {
        log::info!("gc: removing leftovers without a record of {id}/{}", ifname.as_deref().unwrap_or("*"));
        let errs = rt.block_on(undoer.unwind(&undo));
        if !errs.is_empty() {
            match ifname {
                Some(ifname) => kept.insert((id, ifname)),
                None => kept_ids.insert(id),
            };
        }
        errors.extend(errs);
    }
    if !listed {
        // Leftovers may exist that we could not see: freeing addresses now could hand out one still in use.
        errors.push("addresses are not swept in this run: the node's rules or links could not be listed".into());
        return Err(Error::TryAgain(format!("GC left work undone: {}", errors.join("; "))));
    }
    // Reservations that no record explains (older plugins, crashes between reserve and record).
    if let Ok(ipam) = super::add::builtin_ipam(req) {
        if ipam.data_dir.join(&req.conf.name).exists() {
            match crate::ipam::Store::open(&ipam.data_dir, &req.conf.name) {
                Ok(store) => {
                    let held = match store.list() {
                        Ok(l) => l,
                        Err(e) => {
                            errors.push(e.to_string());
                            Vec::new()
                        }
                    };
                    for (ip, id, ifname) in held {
                        // Files of old host-local versions hold only the container id: match on it alone.
                        let listed = kept_ids.contains(&id)
                            || if ifname.is_empty() {
                                kept.iter().any(|(i, _)| *i == id)
                            } else {
                                kept.contains(&(id.clone(), ifname.clone()))
                            };
                        if !listed {
                            log::info!("gc: releasing leaked {ip} of {id}/{ifname}");
                            if let Err(e) = store.release(&id, &ifname) {
                                errors.push(e.to_string());
                            }
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    // A delegated IPAM plugin that knows GC gets the same list and cleans what only it knows about.
    if let Ok(super::add::IpamMode::Plugin { invocation, .. }) = super::add::ipam_mode(req) {
        match invocation.supports("1.1.0") {
            // Its list needs ifnames, which a leftover masquerade chain does not name: next run.
            Ok(true) if !kept_ids.is_empty() => errors.push(format!("IPAM plugin {} GC postponed: leftovers of {kept_ids:?} remain", invocation.plugin)),
            Ok(true) => {
                // Attachments whose cleanup failed above are still the plugin's to keep.
                let mut inv = invocation.clone();
                if let Some(conf) = inv.conf.as_object_mut() {
                    conf.remove("cni.dev/attachments");
                    let list: Vec<Value> = kept.iter().map(|(id, ifname)| serde_json::json!({"containerID": id, "ifname": ifname})).collect();
                    conf.insert("cni.dev/valid-attachments".into(), Value::Array(list));
                }
                if let Err(e) = inv.exec("GC") {
                    errors.push(e.to_string());
                }
            }
            Ok(false) => log::info!("IPAM plugin {} predates GC: its stale attachments were DELeted above", invocation.plugin),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::TryAgain(format!("GC left work undone: {}", errors.join("; "))))
    }
}

/// Everything of `network` carrying our naming whose attachment is not kept, and whether every listing
/// (rules of both families, links) worked.
async fn find_leaks(
    node: &Netlink,
    network: &str,
    kept: &HashSet<(String, String)>,
    errors: &mut Vec<String>,
) -> (Vec<leaks::Leak>, bool) {
    let mut found = Vec::new();
    let mut listed = true;
    for family in [Family::V4, Family::V6] {
        match Iptables.save(family, None) {
            Ok(saved) => {
                found.extend(leaks::masquerade(network, &saved, family));
                found.extend(leaks::hook_chains(network, &saved, family));
            }
            // A node without ip6tables has no v6 chains to leak.
            Err(e) if family == Family::V6 => log::debug!("gc: no ip6tables to look at: {e}"),
            Err(e) => {
                listed = false;
                errors.push(e.to_string())
            }
        }
    }
    match node.links().await {
        Ok(links) => found.extend(leaks::veths(network, &links)),
        Err(e) => {
            listed = false;
            errors.push(crate::netlink::describe("list links", &e))
        }
    }
    let found = found
        .into_iter()
        .filter(|l| match &l.ifname {
            Some(ifname) => !kept.contains(&(l.container_id.clone(), ifname.clone())),
            None => !kept.iter().any(|(id, _)| *id == l.container_id),
        })
        .inspect(|l| log::info!("gc: leaked without a record: {:?}", l.undo))
        .collect();
    (found, listed)
}

/// Spec 1.1 names the key `cni.dev/valid-attachments`; early drafts and some runtimes used
/// `cni.dev/attachments`. Both are read.
fn valid_attachments(conf: &Value) -> Result<HashSet<(String, String)>> {
    let list = conf
        .get("cni.dev/valid-attachments")
        .or_else(|| conf.get("cni.dev/attachments"))
        .and_then(Value::as_array)
        .ok_or_else(|| Error::InvalidConfig("GC needs \"cni.dev/valid-attachments\" in the config".into()))?;
    Ok(list
        .iter()
        .filter_map(|a| Some((a.get("containerID")?.as_str()?.to_string(), a.get("ifname")?.as_str()?.to_string())))
        .collect())
}
