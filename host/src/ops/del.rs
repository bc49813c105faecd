//! DEL: run the undo steps ADD recorded. Without a record (ADD crashed, or state was lost) fall back to what
//! can be found by name: the deterministic veth and chain names and the IPAM files of this container. Every
//! step treats "already gone" as success, so DEL twice, or after the netns vanished, succeeds.

use super::record::{self, Record};
use super::rollback::{Undo, Undoer};
use crate::cni::request::Request;
use crate::error::{Error, Result};
use crate::firewall::{Family, Iptables, Masquerade};
use crate::hooks::manifest::Stage;
use crate::hooks::Hooks;
use super::add::IpamMode;
use crate::ipam::DEFAULT_DATA_DIR;
use crate::netlink::Netlink;

pub fn run(req: &Request, hooks: &dyn Hooks) -> Result<()> {
    // Hooks are told first, while the attachment still exists; they cannot fail DEL.
    hooks.del(req);

    let state_dir = req.conf.state_dir();
    let path = record::path(&state_dir, &req.conf.name, &req.container_id, &req.ifname);
    let steps = match Record::load(&path) {
        Ok(Some(rec)) => rec.undo,
        Ok(None) => fallback_steps(req),
        Err(e) => {
            log::warn!("{e}: cleaning up by name instead");
            fallback_steps(req)
        }
    };
    let rt = super::runtime()?;
    let node = Netlink::connect(&rt)?;
    let errors = rt.block_on(Undoer { node: &node, iptables: &Iptables }.unwind(&steps));
    if !errors.is_empty() {
        // Keep the record so a retried DEL (runtimes retry) can finish the job.
        return Err(Error::TryAgain(format!("DEL of {} left work undone: {}", req.container_id, errors.join("; "))));
    }
    Record::remove(&path)?;
    log::info!("{}/{}: deleted", req.container_id, req.ifname);
    Ok(())
}

/// What ADD would have recorded, found by deterministic names.
fn fallback_steps(req: &Request) -> Vec<Undo> {
    let release_builtin = |data_dir| Undo::ReleaseIps {
        data_dir,
        network: req.conf.name.clone(),
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
        ips: Vec::new(),
    };
    let release = match super::add::ipam_mode(req) {
        Ok(IpamMode::Plugin { invocation, .. }) => Undo::DelegatedIpam { invocation },
        Ok(IpamMode::Builtin(cfg)) => release_builtin(cfg.data_dir),
        // An unreadable ipam section must not stop the cleanup: try host-local's default place.
        Err(_) => release_builtin(DEFAULT_DATA_DIR.into()),
    };
    let mut steps = vec![release, Undo::DeleteHostLink { name: crate::naming::host_veth_name(&req.container_id, &req.ifname) }];
    if req.conf.ip_masq {
        steps.push(Undo::RemoveMasquerade {
            masq: Masquerade::new(&req.conf.name, &req.container_id, Vec::new()),
            families: vec![Family::V4, Family::V6],
        });
    }
    // Hook chain names depend only on the attachment and the hook's name, so the manifest tells them.
    if crate::hooks::configured(req) {
        match crate::hooks::manifest::load(req.conf.hooks_manifest.as_deref(), req.conf.hooks.as_ref()) {
            Ok(specs) => {
                let chains: Vec<String> = specs
                    .iter()
                    .filter(|s| s.runs_at(Stage::PostAdd))
                    .map(|s| crate::naming::hook_chain(&req.conf.name, &req.container_id, &req.ifname, &s.name))
                    .collect();
                if !chains.is_empty() {
                    for family in [Family::V4, Family::V6] {
                        steps.push(Undo::RemoveChains { family, table: "filter".into(), chains: chains.clone() });
                    }
                }
            }
            Err(e) => log::warn!("cannot read the hooks to clean their chains by name: {e}"),
        }
    }
    steps
}
