//! Undo steps as data. ADD pushes one after each change it makes; a failure unwinds them in reverse. The
//! same list is stored in the attachment record, so DEL and GC run exactly the steps ADD recorded.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::firewall::{self, Family, Iptables, Masquerade};
use crate::netlink::{self, Netlink};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "undo", rename_all = "kebab-case")]
pub enum Undo {
    ReleaseIps { data_dir: PathBuf, network: String, container_id: String, ifname: String },
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
    /// only after both, so a concurrent ADD never gets an address whose old route or rules still exist.
    pub async fn unwind(&self, steps: &[Undo]) -> Vec<String> {
        let is_firewall = |s: &&Undo| matches!(s, Undo::RemoveMasquerade { .. } | Undo::RemoveChains { .. });
        let (firewall, rest): (Vec<&Undo>, Vec<&Undo>) = steps.iter().rev().partition(is_firewall);
        let (links, release): (Vec<&Undo>, Vec<&Undo>) = rest.into_iter().partition(|s| matches!(s, Undo::DeleteHostLink { .. }));
        // `release` holds ReleaseIps and DelegatedIpam: addresses go last.
        let mut errors = Vec::new();
        let iptables = self.iptables.clone();
        let fw = std::thread::spawn({
            let firewall: Vec<Undo> = firewall.into_iter().cloned().collect();
            move || firewall.iter().filter_map(|s| Self::undo_firewall(&iptables, s).err().map(|e| (s.clone(), e))).collect::<Vec<_>>()
        });
        for step in links {
            if let Err(e) = self.undo(step).await {
                errors.push((step.clone(), e));
            }
        }
        errors.extend(fw.join().unwrap_or_else(|_| {
            vec![(Undo::DeleteHostLink { name: String::new() }, "the firewall teardown thread panicked".to_string())]
        }));
        for step in release {
            if let Err(e) = self.undo(step).await {
                errors.push((step.clone(), e));
            }
        }
        errors
            .into_iter()
            .map(|(step, e)| {
                log::warn!("undo {step:?} failed: {e}");
                e
            })
            .collect()
    }

    async fn undo(&self, step: &Undo) -> Result<(), String> {
        log::debug!("undo: {step:?}");
        match step {
            Undo::ReleaseIps { data_dir, network, container_id, ifname } => {
                crate::ipam::release(data_dir, network, container_id, ifname)
                    .map(|ips| log::debug!("released {ips:?}"))
                    .map_err(|e| e.to_string())
            }
            Undo::DelegatedIpam { invocation } => invocation.exec("DEL").map(|_| ()).map_err(|e| e.to_string()),
            Undo::DeleteHostLink { name } => {
                let gone = |e: &rtnetlink::Error| netlink::is_errno(e, nix::errno::Errno::ENODEV);
                match self.node.link(name).await {
                    Ok(None) => Ok(()),
                    Ok(Some(link)) => match self.node.delete_link(link.index).await {
                        Err(e) if !gone(&e) => Err(netlink::describe(&format!("delete link {name}"), &e)),
                        _ => Ok(()),
                    },
                    Err(e) => Err(netlink::describe(&format!("look up link {name}"), &e)),
                }
            }
            Undo::RemoveMasquerade { .. } | Undo::RemoveChains { .. } => Self::undo_firewall(self.iptables, step),
        }
    }

    fn undo_firewall(iptables: &Iptables, step: &Undo) -> Result<(), String> {
        log::debug!("undo: {step:?}");
        // Without the tools nothing can have been applied: there is nothing to remove.
        let save = |family: Family, table: &str| match iptables.save(family, table) {
            Err(firewall::Error::NotFound { .. }) => Ok(String::new()),
            other => other.map_err(|e| e.to_string()),
        };
        match step {
            Undo::RemoveMasquerade { masq, families } => {
                for family in families {
                    let saved = save(*family, "nat")?;
                    if let Some(input) = masq.render_teardown(&saved) {
                        iptables.restore(*family, &input).map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            }
            Undo::RemoveChains { family, table, chains } => {
                let saved = save(*family, table)?;
                // One restore for all of the attachment's hook chains.
                let input: String = chains.iter().filter_map(|c| firewall::masq_teardown(table, c, &saved)).collect();
                if !input.is_empty() {
                    iptables.restore(*family, &input).map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
