//! Undo steps as data. ADD pushes one after each change it makes; a failure unwinds them in reverse. The
//! same list is stored in the attachment record, so DEL and GC run exactly the steps ADD recorded.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::firewall::{self, Family, Iptables, Masquerade};
use crate::netlink::{self, Netlink};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    ReleaseIps {
        data_dir: PathBuf,
        network: String,
        container_id: String,
        ifname: String,
        /// The reserved addresses, so DEL reads only their files; empty (DEL by name, older records) means
        /// whatever the attachment holds.
        #[serde(default)]
        ips: Vec<std::net::IpAddr>,
    },
    /// Deleting the node end of a veth pair deletes the pod end with it.
    DeleteHostLink { name: String },
    RemoveMasquerade { masq: Masquerade, families: Vec<Family> },
    /// An IPAM plugin's reservation: undone by calling its DEL.
    DelegatedIpam { invocation: crate::ipam::delegate::Invocation },
    /// Chains of hook rules in the filter table.
    RemoveChains { family: Family, table: String, chains: Vec<String> },
}

/// Runs undo steps against the node.
pub struct Undoer<'a> {
    pub node: &'a Netlink,
    pub iptables: &'a Iptables,
}

impl Undoer<'_> {
    /// Undoes `steps` last-first, going on past failures; returns every failure. Each step treats
    /// "already gone" as done, which makes DEL idempotent.
    ///
    /// Firewall teardown runs on a thread while the links are deleted: both wait on kernel grace periods
    /// (the netfilter commit, the veth unregister), so overlapping them halves DEL. Addresses are released
    /// only after both, and only when both succeeded, so an ADD never gets an address whose old route or
    /// rules still exist.
    pub async fn unwind(&self, steps: &[Undo]) -> Vec<String> {
        let is_firewall = |s: &&Undo| matches!(s, Undo::RemoveMasquerade { .. } | Undo::RemoveChains { .. });
        let (firewall, rest): (Vec<&Undo>, Vec<&Undo>) = steps.iter().rev().partition(is_firewall);
        let (links, release): (Vec<&Undo>, Vec<&Undo>) = rest.into_iter().partition(|s| matches!(s, Undo::DeleteHostLink { .. }));
        // `release` holds ReleaseIps and DelegatedIpam: addresses go last.
        let iptables = self.iptables.clone();
        let firewall: Vec<Undo> = firewall.into_iter().cloned().collect();
        let fw = std::thread::spawn(move || {
            [Family::V4, Family::V6].into_iter().filter_map(|family| Self::undo_firewall(&iptables, family, &firewall).err()).collect()
        });
        let mut errors = Vec::new();
        for step in links {
            errors.extend(self.undo(step).await.err());
        }
        errors.extend(fw.join().unwrap_or_else(|_| vec!["the firewall teardown thread panicked".to_string()]));
        if errors.is_empty() {
            for step in release {
                errors.extend(self.undo(step).await.err());
            }
        } else if !release.is_empty() {
            // A new pod must not get an address whose old veth, route or rules are still live: the record stays
            // and the release happens on the retry (DEL or GC again) once the rest is gone.
            errors.push("the addresses stay reserved until the steps above succeed (run DEL or GC again)".into());
        }
        for e in &errors {
            log::warn!("undo failed: {e}");
        }
        errors
    }

    async fn undo(&self, step: &Undo) -> Result<(), String> {
        log::debug!("undo: {step:?}");
        match step {
            Undo::ReleaseIps { data_dir, network, container_id, ifname, ips } => {
                crate::ipam::release(data_dir, network, container_id, ifname, ips)
                    .map(|ips| log::debug!("released {ips:?}"))
                    .map_err(|e| e.to_string())
            }
            Undo::DelegatedIpam { invocation } => invocation.exec("DEL").map(|_| ()).map_err(|e| e.to_string()),
            Undo::DeleteHostLink { name } => {
                match self.node.delete_link(name).await {
                    Err(e) if !netlink::is_errno(&e, nix::errno::Errno::ENODEV) => {
                        Err(netlink::describe(&format!("delete link {name}"), &e))
                    }
                    _ => Ok(()),
                }
            }
            // Firewall steps are undone together, one save and one restore per family (undo_firewall).
            Undo::RemoveMasquerade { .. } | Undo::RemoveChains { .. } => Ok(()),
        }
        .map_err(|e| format!("{step:?}: {e}"))
    }

    /// Removes every rule of `steps` for one family with one `iptables-save` and one `iptables-restore`,
    /// whatever the number of chains and tables.
    fn undo_firewall(iptables: &Iptables, family: Family, steps: &[Undo]) -> Result<(), String> {
        let wanted = |f: &Family| *f == family;
        let mine: Vec<&Undo> = steps
            .iter()
            .filter(|s| match s {
                Undo::RemoveMasquerade { families, .. } => families.iter().any(wanted),
                Undo::RemoveChains { family: f, .. } => wanted(f),
                _ => false,
            })
            .collect();
        if mine.is_empty() {
            return Ok(());
        }
        log::debug!("undo ({family:?}): {mine:?}");
        let saved = match iptables.save(family, None) {
            // Without the tools nothing can have been applied: there is nothing to remove.
            Err(firewall::Error::NotFound { .. }) => return Ok(()),
            other => other.map_err(|e| e.to_string())?,
        };
        let input: String = mine
            .iter()
            .flat_map(|s| match s {
                Undo::RemoveMasquerade { masq, .. } => masq.render_teardown(firewall::table_section(&saved, "nat")).into_iter().collect::<Vec<_>>(),
                Undo::RemoveChains { table, chains, .. } => chains
                    .iter()
                    .filter_map(|c| firewall::render_chain_teardown(table, c, firewall::table_section(&saved, table)))
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        if input.is_empty() {
            return Ok(());
        }
        iptables.restore(family, &input).map_err(|e| e.to_string())
    }
}
