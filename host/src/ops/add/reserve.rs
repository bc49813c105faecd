//! ADD's reserve phase: addresses from the built-in IPAM, or from an IPAM plugin through the spec's
//! delegation protocol. `prepare` gives the undo step first, so it is recorded before anything is reserved.

use crate::cni::request::Request;
use crate::cni::result::CniResult;
use crate::error::{Error, Result};
use crate::ipam::delegate::Invocation;
use crate::ipam::{self, IpamConfig, IpamMode, Reserved};
use crate::ops::undo::Undo;
use crate::plan::Plan;

/// How this ADD reserves.
pub enum Reservation<'a> {
    Builtin(&'a IpamConfig),
    /// The plugin call, with the addresses the plan requests as the "ips" capability.
    Plugin(Invocation),
}

/// The reservation and its undo (idempotent: releasing what is not held is a no-op). A plugin is asked
/// which CNI version to speak now, so its DEL (from the record) needs no second question.
pub fn prepare<'a>(req: &Request, ipam: &'a IpamMode, plan: &Plan) -> Result<(Reservation<'a>, Undo)> {
    Ok(match ipam {
        IpamMode::Builtin(cfg) => (
            Reservation::Builtin(cfg),
            // The addresses are filled in once known; until then the attachment's own, found by scanning.
            Undo::ReleaseIps {
                data_dir: cfg.data_dir.clone(),
                network: req.conf.name.clone(),
                container_id: req.container_id.clone(),
                ifname: req.ifname.clone(),
                ips: Vec::new(),
            },
        ),
        IpamMode::Plugin { invocation, ranges } => {
            let mut inv = invocation.clone();
            if !plan.requested_ips.is_empty() {
                // The "ips" capability, as host-local reads it: addresses with their prefix length.
                let cfg = ranges.as_ref().expect("validated: requested ips need readable ranges");
                let ips: Vec<String> = plan
                    .requested_ips
                    .iter()
                    .filter_map(|ip| cfg.ranges.iter().flatten().find(|r| r.contains(*ip)).map(|r| format!("{ip}/{}", r.subnet.prefix_len())))
                    .collect();
                inv.conf["runtimeConfig"]["ips"] = serde_json::json!(ips);
            }
            inv.negotiate()?;
            let undo = Undo::DelegatedIpam { invocation: inv.clone() };
            (Reservation::Plugin(inv), undo)
        }
    })
}

pub fn reserve(req: &Request, how: &Reservation, mut plan: Plan) -> Result<(Plan, Vec<Reserved>)> {
    let (id, ifname, network) = (&req.container_id, &req.ifname, &req.conf.name);
    let reserved = match how {
        Reservation::Builtin(cfg) => ipam::reserve(cfg, network, id, ifname, &plan.requested_ips)?,
        Reservation::Plugin(inv) => {
            let out = inv
                .exec("ADD")
                .map_err(|e| match e {
                    // Spec: a plugin whose ADD fails leaves nothing behind; say so rather than suggest a leak.
                    ipam::Error::Delegated { plugin, code, msg } => {
                        Error::Ipam(ipam::Error::Delegated { plugin, code, msg: format!("{msg} (its ADD failed, so it reserved nothing)") })
                    }
                    other => Error::Ipam(other),
                })?
                .ok_or_else(|| Error::Ipam(ipam::Error::Unavailable(format!("IPAM plugin {} printed no result", inv.plugin))))?;
            let result = CniResult::from_json(&out)?;
            let extra: Vec<_> = result.routes.iter().filter(|r| !plan.routes.iter().any(|p| p.dst == r.dst)).cloned().collect();
            plan.routes.extend(extra);
            if plan.dns.is_empty() {
                plan.dns = result.dns.clone();
            }
            delegated_reservations(&inv.plugin, &result)?
        }
    };
    Ok((plan, reserved))
}

/// Now that the addresses are known, DEL reads just their files.
pub fn fill_in(step: &mut Undo, reserved: &[Reserved]) {
    if let Undo::ReleaseIps { ips, .. } = step {
        *ips = reserved.iter().map(|r| r.ip).collect();
    }
}

/// Turns an IPAM plugin's result into reservations: one address per entry, each needing a gateway.
fn delegated_reservations(plugin: &str, result: &CniResult) -> Result<Vec<Reserved>> {
    if result.ips.is_empty() {
        return Err(Error::Ipam(ipam::Error::Unavailable(format!("IPAM plugin {plugin} returned no address"))));
    }
    result
        .ips
        .iter()
        .map(|ip| {
            let gateway = ip.gateway.ok_or_else(|| {
                Error::Ipam(ipam::Error::Unavailable(format!(
                    "IPAM plugin {plugin} returned {} without a gateway; a routed pod needs one (set ipam.gateway)",
                    ip.address
                )))
            })?;
            let addr = ip.address.addr();
            Ok(Reserved { ip: addr, range: ipam::Range { subnet: ip.address.trunc(), start: addr, end: addr, gateway } })
        })
        .collect()
}
