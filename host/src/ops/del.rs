//! DEL: run the undo steps ADD recorded. Without a record (state was lost, or an ADD was killed before it
//! recorded anything) fall back to what can be found by name: the deterministic veth name, the masquerade
//! and hook rules of this attachment and its IPAM files. Every step treats "already gone" as success, so
//! DEL twice, or after the netns vanished, succeeds.

use super::record::{self, Record};
use super::undo::{self, Undo};
use super::{locks, Deps};
use crate::cni::request::Request;
use crate::error::{Error, Result};
use crate::firewall::{AttachmentRules, Backend, HookChain, Masquerade};
use crate::hooks::manifest::Stage;
use crate::hooks::Hooks;
use crate::ipam::{IpamMode, DEFAULT_DATA_DIR};

pub fn run(req: &Request, deps: &Deps, hooks: &dyn Hooks) -> Result<()> {
    // Hooks are told first, while the attachment still exists; they cannot fail DEL.
    hooks.del(req);

    let state_dir = req.conf.state_dir();
    // Waits for an ADD of this attachment that is still running (or whose firewall child still is).
    let _attachment = locks::attachment(&req.conf.run_dir(), &req.conf.name, &req.container_id, &req.ifname)?;
    let path = record::path(&state_dir, &req.conf.name, &req.container_id, &req.ifname);
    record::recover(&path);
    let steps = match Record::load(&path) {
        Ok(Some(rec)) => rec.undo,
        Ok(None) => by_name(req, deps),
        Err(e) => {
            log::warn!("{e}: cleaning up by name instead");
            by_name(req, deps)
        }
    };
    let errors = undo::unwind(deps, &steps);
    if !errors.is_empty() {
        // Keep the record so a retried DEL (runtimes retry) can finish the job.
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        return Err(Error::TryAgain(format!("DEL of {} left work undone: {}", req.container_id, list.join("; "))));
    }
    Record::remove(&path)?;
    let _ = std::fs::remove_file(locks::attachment_path(&req.conf.run_dir(), &req.conf.name, &req.container_id, &req.ifname));
    log::info!("{}/{}: deleted", req.container_id, req.ifname);
    Ok(())
}

/// What ADD would have recorded, found by deterministic names.
fn by_name(req: &Request, deps: &Deps) -> Vec<Undo> {
    let release_builtin = |data_dir| Undo::ReleaseIps {
        data_dir,
        network: req.conf.name.clone(),
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
        ips: Vec::new(),
    };
    let data_dir = match IpamMode::from_request(req) {
        Ok(IpamMode::Plugin { .. }) => None,
        Ok(IpamMode::Builtin(cfg)) => Some(cfg.data_dir),
        // An unreadable ipam section must not stop the cleanup: try host-local's default place.
        Err(_) => Some(DEFAULT_DATA_DIR.into()),
    };
    // The addresses this attachment still holds tell which masquerade rules are its own.
    let held = data_dir.as_ref().map(|d| held_addresses(d, req)).unwrap_or_default();
    let release = match (IpamMode::from_request(req), data_dir) {
        (Ok(IpamMode::Plugin { invocation, .. }), _) => Undo::DelegatedIpam { invocation },
        (_, data_dir) => release_builtin(data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into())),
    };
    let host_veth = crate::naming::host_veth_name(&req.container_id, &req.ifname);
    let mut rules = AttachmentRules::new(&req.conf.name, &req.container_id, &req.ifname, &host_veth);
    rules.addresses = held.clone();
    rules.match_by_address = super::add::topology::of(&req.conf).match_by_address();
    // Without known addresses the whole masquerade of this container goes (every interface of it on this
    // network shares the reference plugins' chain); with them, only this interface's rules.
    let sources = held.iter().map(|ip| (*ip, crate::netaddr::host_net(*ip))).collect();
    rules.masquerade = req.conf.ip_masq.then(|| Masquerade { sources, except: req.conf.non_masquerade_cidrs() });
    // Hook rule names depend only on the attachment and the hook's name, so the manifest tells them.
    if crate::hooks::configured(req) {
        match crate::hooks::manifest::load(req.conf.hooks_manifest.as_deref(), req.conf.hooks.as_ref()) {
            Ok(specs) => {
                rules.hooks = specs
                    .iter()
                    .filter(|s| s.runs_at(Stage::PostAdd))
                    .map(|s| HookChain { hook: s.name.clone(), rules: Vec::new() })
                    .collect();
            }
            Err(e) => log::warn!("cannot read the hooks to clean their rules by name: {e}"),
        }
    }
    let alias = crate::naming::veth_alias(&req.conf.name, &req.container_id, &req.ifname);
    let mut steps = vec![release, Undo::DeleteHostLink { name: host_veth, if_alias: Some(alias) }];
    if rules.masquerade.is_some() || !rules.hooks.is_empty() {
        // Configured: that backend made the rules. `auto` may have chosen differently on an earlier version
        // or setting: look in every backend that works here.
        let backends = match req.conf.firewall_backend() {
            Some(b) => vec![b],
            None => [Backend::Iptables, Backend::Nftables].into_iter().filter(|b| deps.firewalls.get(*b).status().is_ok()).collect(),
        };
        steps.extend(backends.into_iter().map(|backend| Undo::Firewall { backend, rules: rules.clone() }));
    }
    steps
}

fn held_addresses(data_dir: &std::path::Path, req: &Request) -> Vec<std::net::IpAddr> {
    match crate::ipam::Store::open_existing(data_dir, &req.conf.name) {
        Ok(Some(store)) => store.find(&req.container_id, &req.ifname).unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
pub(super) fn by_name_for_tests(req: &Request, deps: &Deps) -> Vec<Undo> {
    by_name(req, deps)
}
