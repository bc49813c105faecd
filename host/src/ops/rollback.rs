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
    pub async fn unwind(&self, steps: &[Undo]) -> Vec<String> {
        let mut errors = Vec::new();
        for step in steps.iter().rev() {
            log::debug!("undo: {step:?}");
            if let Err(e) = self.undo(step).await {
                log::warn!("undo {step:?} failed: {e}");
                errors.push(e);
            }
        }
        errors
    }

    async fn undo(&self, step: &Undo) -> Result<(), String> {
        match step {
            Undo::ReleaseIps { data_dir, network, container_id, ifname } => {
                crate::ipam::release(data_dir, network, container_id, ifname)
                    .map(|ips| log::debug!("released {ips:?}"))
                    .map_err(|e| e.to_string())
            }
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
            Undo::RemoveMasquerade { masq, families } => {
                for family in families {
                    let saved = self.iptables.save(*family, "nat").map_err(|e| e.to_string())?;
                    if let Some(input) = masq.render_teardown(&saved) {
                        self.iptables.restore(*family, &input).map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            }
            Undo::RemoveChains { family, table, chains } => {
                let saved = self.iptables.save(*family, table).map_err(|e| e.to_string())?;
                for chain in chains {
                    if let Some(input) = firewall::masq_teardown(table, chain, &saved) {
                        self.iptables.restore(*family, &input).map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            }
        }
    }
}
