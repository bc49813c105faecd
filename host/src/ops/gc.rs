//! GC (CNI 1.1): remove every attachment of this network that the runtime no longer lists in
//! `cni.dev/valid-attachments`: recorded ones through their undo steps; then masquerade chains, hook chains,
//! veths and IP reservations that no record explains, found by our naming. Keeps going past errors and
//! reports them all at the end.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

use super::add::IpamMode;
use super::leaks;
use super::record::Record;
use super::rollback::{Undo, Undoer};
use crate::cni::request::Request;
use crate::ipam::delegate::Invocation;
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

/// Attachments GC must leave alone: the runtime's list, plus those whose cleanup failed this run (they keep
/// their addresses until a retry removes the rest). A leftover masquerade chain names only its container,
/// so a failure there keeps every interface of that container.
#[derive(Default)]
struct Kept {
    attachments: HashSet<(String, String)>,
    containers: HashSet<String>,
}

impl Kept {
    /// `ifname` None or empty (files of old host-local versions): the container alone decides.
    fn contains(&self, id: &str, ifname: Option<&str>) -> bool {
        self.containers.contains(id)
            || match ifname.filter(|n| !n.is_empty()) {
                Some(n) => self.attachments.contains(&(id.to_string(), n.to_string())),
                None => self.attachments.iter().any(|(i, _)| i == id),
            }
    }

    fn insert(&mut self, id: String, ifname: Option<String>) {
        match ifname {
            Some(n) => self.attachments.insert((id, n)),
            None => self.containers.insert(id),
        };
    }
}

pub fn run(req: &Request) -> Result<()> {
    let state_dir = req.conf.state_dir();
    let mut kept = Kept { attachments: valid_attachments(&req.raw_conf)?, ..Kept::default() };
    let _no_add_in_flight = lock(&state_dir, &req.conf.name, true)?;
    let rt = super::runtime()?;
    let node = Netlink::connect(&rt)?;
    let undoer = Undoer { node: &node, iptables: &Iptables };
    let mut errors = Vec::new();
    // Undoes one attachment's steps; true when all of them worked.
    let replay = |what: &str, steps: &[Undo], errors: &mut Vec<String>| {
        log::info!("gc: removing {what}");
        let errs = rt.block_on(undoer.unwind(steps));
        let clean = errs.is_empty();
        errors.extend(errs);
        clean
    };

    let stale: Vec<_> = Record::list(&state_dir, &req.conf.name)
        .into_iter()
        .filter(|(_, rec)| !kept.contains(&rec.container_id, Some(&rec.ifname)))
        .collect();
    for (path, rec) in stale {
        if replay(&format!("stale attachment {}/{}", rec.container_id, rec.ifname), &rec.undo, &mut errors) {
            errors.extend(Record::remove(&path).err().map(|e| e.to_string()));
        } else {
            kept.insert(rec.container_id, Some(rec.ifname));
        }
    }
    // Chains and veths that no record explains, found by our naming, one attachment at a time.
    let (leaked, listed) = rt.block_on(find_leaks(&node, &req.conf.name, &kept, &mut errors));
    let mut by_attachment: BTreeMap<(String, Option<String>), Vec<Undo>> = BTreeMap::new();
    for l in leaked {
        by_attachment.entry((l.container_id, l.ifname)).or_default().push(l.undo);
    }
    for ((id, ifname), steps) in by_attachment {
        if !replay(&format!("leftovers without a record of {id}/{}", ifname.as_deref().unwrap_or("*")), &steps, &mut errors) {
            kept.insert(id, ifname);
        }
    }
    if !listed {
        // Leftovers may exist that we could not see: freeing addresses now could hand out one still in use.
        errors.push("addresses are not swept in this run: the node's rules or links could not be listed".into());
        return Err(Error::TryAgain(format!("GC left work undone: {}", errors.join("; "))));
    }
    match super::add::ipam_mode(req) {
        Ok(IpamMode::Builtin(ipam)) => errors.extend(sweep_reservations(&ipam.data_dir, &req.conf.name, &kept)),
        Ok(IpamMode::Plugin { invocation, .. }) => errors.extend(forward_gc(&invocation, &kept)),
        Err(e) => errors.push(e.to_string()),
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::TryAgain(format!("GC left work undone: {}", errors.join("; "))))
    }
}

/// Releases reservations that no kept attachment holds (older plugins, crashes between reserve and record).
fn sweep_reservations(data_dir: &Path, network: &str, kept: &Kept) -> Vec<String> {
    let store = match crate::ipam::Store::open_existing(data_dir, network) {
        Ok(Some(store)) => store,
        Ok(None) => return Vec::new(),
        Err(e) => return vec![e.to_string()],
    };
    let held = match store.list() {
        Ok(held) => held,
        Err(e) => return vec![e.to_string()],
    };
    held.into_iter()
        .filter(|(_, id, ifname)| !kept.contains(id, Some(ifname)))
        .filter_map(|(ip, id, ifname)| {
            log::info!("gc: releasing leaked {ip} of {id}/{ifname}");
            store.remove(ip).err().map(|e| e.to_string())
        })
        .collect()
}

/// A delegated IPAM plugin that knows GC gets the kept list and cleans what only it knows about.
fn forward_gc(invocation: &Invocation, kept: &Kept) -> Vec<String> {
    match invocation.supports("1.1.0") {
        // Its list needs ifnames, which a leftover masquerade chain does not name: next run.
        Ok(true) if !kept.containers.is_empty() => {
            vec![format!("IPAM plugin {} GC postponed: leftovers of {:?} remain", invocation.plugin, kept.containers)]
        }
        Ok(true) => {
            let mut inv = invocation.clone();
            if let Some(conf) = inv.conf.as_object_mut() {
                conf.remove("cni.dev/attachments");
                let list: Vec<Value> =
                    kept.attachments.iter().map(|(id, ifname)| serde_json::json!({"containerID": id, "ifname": ifname})).collect();
                conf.insert("cni.dev/valid-attachments".into(), Value::Array(list));
            }
            inv.exec("GC").err().map(|e| e.to_string()).into_iter().collect()
        }
        Ok(false) => {
            log::info!("IPAM plugin {} predates GC: its stale attachments were DELeted above", invocation.plugin);
            Vec::new()
        }
        Err(e) => vec![e.to_string()],
    }
}

/// Everything of `network` carrying our naming whose attachment is not kept, and whether every listing
/// (rules of both families, links) worked.
async fn find_leaks(node: &Netlink, network: &str, kept: &Kept, errors: &mut Vec<String>) -> (Vec<leaks::Leak>, bool) {
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
    found.retain(|l| !kept.contains(&l.container_id, l.ifname.as_deref()));
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
