//! GC (CNI 1.1): remove every attachment of this network that the runtime no longer lists in
//! `cni.dev/valid-attachments`: recorded ones (finished or not) through their undo steps; then firewall
//! rules, veths and IP reservations that no record explains, found by our naming. Keeps going past errors
//! and reports them all at the end.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::Value;

use super::record::{self, Record};
use super::undo::{self, Undo};
use super::{locks, Deps};
use crate::cni::request::Request;
use crate::error::{Error, Result};
use crate::firewall::Backend;
use crate::ipam::delegate::Invocation;
use crate::ipam::IpamMode;
use crate::naming::{parse_attachment_key, VETH_ALIAS_PREFIX};

/// Every firewall backend GC looks in for leftovers: a node may have switched backends.
const BACKENDS: &[Backend] = &[Backend::Iptables, Backend::Nftables];

/// Attachments GC must leave alone: the runtime's list, plus those whose cleanup failed this run (they keep
/// their addresses until a retry removes the rest). A leftover masquerade chain names only its container,
/// so a failure there keeps every interface of that container.
#[derive(Default)]
struct Kept {
    attachments: HashSet<(String, String)>,
    containers: HashSet<String>,
}

impl Kept {
    /// `ifname` empty (files of old host-local versions, masquerade leftovers): the container alone decides.
    fn contains(&self, id: &str, ifname: &str) -> bool {
        self.containers.contains(id)
            || if ifname.is_empty() {
                self.attachments.iter().any(|(i, _)| i == id)
            } else {
                self.attachments.contains(&(id.to_string(), ifname.to_string()))
            }
    }

    fn insert(&mut self, id: String, ifname: String) {
        if ifname.is_empty() {
            self.containers.insert(id);
        } else {
            self.attachments.insert((id, ifname));
        }
    }
}

pub fn run(req: &Request, deps: &Deps) -> Result<()> {
    let state_dir = req.conf.state_dir();
    let mut kept = Kept { attachments: valid_attachments(&req.raw_conf)?, ..Kept::default() };
    let _no_add_in_flight = locks::network(&state_dir, &req.conf.name, true)?;
    let mut errors = Vec::new();
    // Undoes one attachment's steps; true when all of them worked.
    let replay = |what: &str, steps: &[Undo], errors: &mut Vec<String>| {
        log::info!("gc: removing {what}");
        let errs = undo::unwind(deps, steps);
        let clean = errs.is_empty();
        errors.extend(errs.iter().map(ToString::to_string));
        clean
    };

    let records_dir = record::dir(&state_dir, &req.conf.name);
    // No ADD runs (we hold the network exclusively), so no temp file is being written.
    record::recover_all(&records_dir);
    for (path, rec) in Record::list(&state_dir, &req.conf.name) {
        if kept.contains(&rec.container_id, &rec.ifname) {
            continue;
        }
        let state = if rec.complete { "stale" } else { "unfinished" };
        if replay(&format!("{state} attachment {}/{}", rec.container_id, rec.ifname), &rec.undo, &mut errors) {
            errors.extend(Record::remove(&path).err().map(|e| e.to_string()));
            let _ = std::fs::remove_file(locks::attachment_path(&req.conf.run_dir(), &req.conf.name, &rec.container_id, &rec.ifname));
        } else {
            kept.insert(rec.container_id, rec.ifname);
        }
    }
    // Rules and veths that no record explains, found by our naming, one attachment at a time.
    let Found { leaked, listed, working } = find_leaks(deps, &req.conf.name, &kept, &mut errors);
    for ((id, ifname), steps) in leaked {
        let shown = if ifname.is_empty() { "*" } else { ifname.as_str() };
        if !replay(&format!("leftovers without a record of {id}/{shown}"), &steps, &mut errors) {
            kept.insert(id, ifname);
        }
    }
    sweep_network(deps, &working, &req.conf.name, &mut errors);
    if !listed {
        // Leftovers may exist that we could not see: freeing addresses now could hand out one still in use.
        errors.push("addresses are not swept in this run: the node's rules or links could not be listed".into());
        return Err(Error::TryAgain(format!("GC left work undone: {}", errors.join("; "))));
    }
    match IpamMode::from_request(req) {
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
    let swept = store.sweep_all_temps();
    if swept > 0 {
        log::info!("gc: removed {swept} half-written reservation(s) of killed ADDs");
    }
    let held = match store.list() {
        Ok(held) => held,
        Err(e) => return vec![e.to_string()],
    };
    held.into_iter()
        .filter(|(_, id, ifname)| !kept.contains(id, ifname))
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
            let ids: Vec<&str> = kept.containers.iter().map(String::as_str).collect();
            vec![format!("IPAM plugin {} GC postponed: leftovers of {} remain", invocation.plugin, ids.join(", "))]
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

type Leaks = BTreeMap<(String, String), Vec<Undo>>;

/// What GC's look at the node found.
struct Found {
    /// Everything of the network carrying our naming whose attachment is not kept, by attachment.
    leaked: Leaks,
    /// Every listing (each working backend's rules, the links) worked.
    listed: bool,
    /// The backends that work here (asked once: iptables' answer is a process start).
    working: Vec<Backend>,
}

fn find_leaks(deps: &Deps, network: &str, kept: &Kept, errors: &mut Vec<String>) -> Found {
    let mut found: Leaks = BTreeMap::new();
    let mut listed = true;
    let mut working = Vec::new();
    for backend in BACKENDS {
        let firewall = deps.firewalls.get(*backend);
        // A backend that does not work here (no iptables binary, no nf_tables) holds nothing of ours.
        if let Err(e) = firewall.status() {
            log::debug!("gc: not looking in {backend}: {e}");
            continue;
        }
        working.push(*backend);
        match firewall.leftovers(network) {
            Ok(rules) => {
                for r in rules.into_iter().filter(|r| !kept.contains(&r.container_id, &r.ifname)) {
                    let key = (r.container_id.clone(), r.ifname.clone());
                    found.entry(key).or_default().push(Undo::Firewall { backend: *backend, rules: r });
                }
            }
            Err(e) => {
                listed = false;
                errors.push(format!("cannot list the {backend} rules: {e}"));
            }
        }
    }
    match deps.kernel.node().links() {
        Ok(links) => {
            for l in links {
                let Some(key) = l.alias.as_deref().and_then(|a| a.strip_prefix(VETH_ALIAS_PREFIX)) else { continue };
                let Some((id, ifname)) = parse_attachment_key(key, network) else { continue };
                if !kept.contains(&id, &ifname) {
                    found.entry((id, ifname)).or_default().push(Undo::DeleteHostLink { name: l.name, if_alias: None });
                }
            }
        }
        Err(e) => {
            listed = false;
            errors.push(format!("cannot {e}"));
        }
    }
    Found { leaked: found, listed, working }
}

/// After the leftovers: what the network itself has in each working backend and no pod uses any more.
fn sweep_network(deps: &Deps, working: &[Backend], network: &str, errors: &mut Vec<String>) {
    for backend in working {
        if let Err(e) = deps.firewalls.get(*backend).sweep(network) {
            errors.push(format!("cannot sweep the {backend} rules of {network}: {e}"));
        }
    }
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
