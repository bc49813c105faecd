//! STATUS (CNI 1.1): can this plugin take an ADD right now? Code 50 with the reason when it cannot.

use std::fs;

use super::Deps;
use crate::cni::request::Request;
use crate::error::{Error, Result};
use crate::ipam::IpamMode;

pub fn run(req: &Request, deps: &Deps) -> Result<()> {
    let not_ready = |what: String| Error::NotAvailable(format!("not ready: {what}"));
    let writable = |dir: &std::path::Path| -> Result<()> {
        fs::create_dir_all(dir).map_err(|e| not_ready(format!("cannot create {}: {e}", dir.display())))?;
        tempfile_in(dir).map_err(|e| not_ready(format!("{} is not writable: {e}", dir.display())))
    };
    writable(&req.conf.state_dir())?;
    let ipam = IpamMode::from_request(req)?;
    if let Some(cfg) = ipam.ranges() {
        let subnets: Vec<ipnet::IpNet> = cfg.ranges.iter().flatten().map(|r| r.subnet).collect();
        let bridge = (req.conf.mode == crate::cni::conf::Mode::Bridge).then(|| req.conf.bridge_name());
        let overlaps = super::overlap::check_subnets(deps.kernel.node(), &subnets, bridge).map_err(|e| not_ready(e.to_string()))?;
        if !overlaps.is_empty() {
            return Err(not_ready(format!("{} (pods would shadow the node's neighbours)", overlaps.join("; "))));
        }
    }
    match ipam {
        IpamMode::Builtin(ipam) => {
            writable(&ipam.data_dir)?;
            let full = crate::ipam::full_sets(&ipam, &req.conf.name).map_err(|e| not_ready(e.to_string()))?;
            if !full.is_empty() {
                return Err(Error::LimitedResources(format!(
                    "no free address left in {} on network {} (free addresses with DEL/GC or use a larger range)",
                    full.join(", "),
                    req.conf.name
                )));
            }
        }
        IpamMode::Plugin { invocation, .. } => {
            invocation.find().map_err(|e| not_ready(e.to_string()))?;
            // Forwarded when the plugin knows STATUS; its error (50, 51...) is passed on with its code.
            if invocation.supports("1.1.0").map_err(|e| not_ready(e.to_string()))? {
                invocation.exec("STATUS")?;
            } else {
                log::info!("IPAM plugin {} predates STATUS (no 1.1.0): present counts as ready", invocation.plugin);
            }
        }
    }
    // A manifest that would fail ADD, or a config a hook refuses, makes the plugin not ready; loading also
    // fills the compile cache.
    crate::hooks::check(req).map_err(|e| not_ready(e.to_string()))?;
    let backend = deps.firewalls.choose(req.conf.firewall_backend());
    let how = if req.conf.firewall_backend().is_some() { "configured" } else { "auto" };
    if req.conf.ip_masq || crate::hooks::configured(req) {
        deps.firewalls.get(backend).status().map_err(|e| not_ready(format!("firewall backend {backend} is not usable ({how}): {e}")))?;
        log::info!("status: firewall backend {backend} ({how}) works");
    } else {
        log::info!("status: firewall backend {backend} ({how}); this network applies no rules");
    }
    Ok(())
}

fn tempfile_in(dir: &std::path::Path) -> std::io::Result<()> {
    let p = dir.join(format!(".status-probe.{}", std::process::id()));
    fs::write(&p, b"")?;
    fs::remove_file(&p)
}
