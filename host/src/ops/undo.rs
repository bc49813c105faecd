//! Undo steps as data. ADD pushes one for each change it is about to make; a failure unwinds them in
//! reverse. The same list is stored in the attachment record, so DEL and GC run exactly the steps ADD
//! recorded. Every step treats "already gone" as done, which makes DEL idempotent and lets ADD record a
//! step before the change happens.

use std::net::IpAddr;
use std::path::PathBuf;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};

use super::Deps;
use crate::firewall::{AttachmentRules, Backend};

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
        ips: Vec<IpAddr>,
    },
    /// Deleting the node end of a veth pair deletes the pod end with it. `if_alias`: only when the link
    /// carries that alias (or none, as older versions left them): a link found by name alone may belong to
    /// another network's attachment of the same container and ifname.
    DeleteHostLink {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        if_alias: Option<String>,
    },
    /// An IPAM plugin's reservation: undone by calling its DEL.
    DelegatedIpam { invocation: crate::ipam::delegate::Invocation },
    /// Everything a firewall backend applied for the attachment.
    Firewall { backend: Backend, rules: AttachmentRules },
}

impl std::fmt::Display for Undo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Undo::ReleaseIps { container_id, ifname, ips, .. } if ips.is_empty() => {
                write!(f, "release the addresses of {container_id}/{ifname}")
            }
            Undo::ReleaseIps { container_id, ifname, ips, .. } => {
                let ips: Vec<String> = ips.iter().map(|i| i.to_string()).collect();
                write!(f, "release {} of {container_id}/{ifname}", ips.join(", "))
            }
            Undo::DeleteHostLink { name, .. } => write!(f, "delete link {name}"),
            Undo::DelegatedIpam { invocation } => write!(f, "call IPAM plugin {} DEL", invocation.plugin),
            Undo::Firewall { backend, rules } => write!(f, "remove the {backend} rules of {}/{}", rules.container_id, rules.ifname),
        }
    }
}

/// A step that could not be undone, and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {cause}")]
pub struct UndoError {
    pub step: String,
    pub cause: String,
}

impl UndoError {
    fn new(step: &Undo, cause: impl std::fmt::Display) -> Self {
        UndoError { step: step.to_string(), cause: cause.to_string() }
    }
}

/// Undoes `steps` last-first, going on past failures; returns every failure.
///
/// Firewall teardown runs on a thread while the links are deleted: both wait on the kernel (the netfilter
/// commit; the veth's removal, whose freeing afterwards is left to a child process, netlink/unlink.rs). Addresses are released only
/// after both, and only when both succeeded, so an ADD never gets an address whose old route or rules
/// still exist.
pub fn unwind(deps: &Deps, steps: &[Undo]) -> Vec<UndoError> {
    let (firewall, rest): (Vec<&Undo>, Vec<&Undo>) = steps.iter().rev().partition(|s| matches!(s, Undo::Firewall { .. }));
    let (links, release): (Vec<&Undo>, Vec<&Undo>) = rest.into_iter().partition(|s| matches!(s, Undo::DeleteHostLink { .. }));
    let firewalls = deps.firewalls;
    let mut errors = std::thread::scope(|s| {
        let fw = s.spawn(move || firewall.iter().filter_map(|step| remove_rules(firewalls, step).err()).collect::<Vec<_>>());
        let mut errors: Vec<UndoError> = links.iter().filter_map(|step| undo(deps, step).err()).collect();
        match fw.join() {
            Ok(e) => errors.extend(e),
            Err(_) => errors.push(UndoError { step: "remove firewall rules".into(), cause: "the teardown thread panicked".into() }),
        }
        errors
    });
    if errors.is_empty() {
        errors.extend(release.iter().filter_map(|step| undo(deps, step).err()));
    } else if let Some(step) = release.first() {
        // A new pod must not get an address whose old veth, route or rules are still live: the record stays
        // and the release happens on the retry (DEL or GC again) once the rest is gone.
        errors.push(UndoError::new(step, "not done yet: the addresses stay reserved until the steps above succeed (run DEL or GC again)"));
    }
    for e in &errors {
        log::warn!("undo failed: {e}");
    }
    errors
}

fn undo(deps: &Deps, step: &Undo) -> Result<(), UndoError> {
    log::debug!("undo: {step}");
    match step {
        Undo::ReleaseIps { data_dir, network, container_id, ifname, ips } => crate::ipam::release(data_dir, network, container_id, ifname, ips)
            .map(|released| log::debug!("released {} address(es)", released.len()))
            .map_err(|e| UndoError::new(step, e)),
        Undo::DelegatedIpam { invocation } => invocation.exec("DEL").map(|_| ()).map_err(|e| UndoError::new(step, e)),
        Undo::DeleteHostLink { name, if_alias } => {
            if let Some(want) = if_alias {
                match deps.kernel.node().link(name) {
                    Ok(Some(l)) if l.alias.as_ref().is_some_and(|a| a != want) => {
                        log::info!("leaving link {name}: it belongs to {}", l.alias.unwrap_or_default());
                        return Ok(());
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(UndoError::new(step, e)),
                    Ok(Some(_)) => {}
                }
            }
            match deps.kernel.node().delete_link(name) {
                Err(e) if !e.is(Errno::ENODEV) => Err(UndoError::new(step, e)),
                _ => Ok(()),
            }
        }
        Undo::Firewall { .. } => remove_rules(deps.firewalls, step),
    }
}

fn remove_rules(firewalls: &dyn crate::firewall::Firewalls, step: &Undo) -> Result<(), UndoError> {
    match step {
        Undo::Firewall { backend, rules } => firewalls.get(*backend).teardown(rules).map_err(|e| UndoError::new(step, e)),
        _ => Ok(()),
    }
}
