//! ADD's reserve phase: addresses from the built-in IPAM, or from an IPAM plugin through the spec's
//! delegation protocol. Each pushes its undo before it reserves.

use crate::cni::request::Request;
use crate::cni::result::CniResult;
use crate::error::{Error, Result};
use crate::ipam::{self, IpamMode, Reserved};
use crate::ops::undo::Undo;
use crate::plan::Plan;

pub fn reserve(req: &Request, ipam: &IpamMode, mut plan: Plan, undo: &mut Vec<Undo>) -> Result<(Plan, Vec<Reserved>)> {
    let (id, ifname, network) = (&req.container_id, &req.ifname, &req.conf.name);
    let reserved = match ipam {
        IpamMode::Builtin(cfg) => {
            // Pushed after: a refused reservation (a duplicate) must not release the holder's addresses. A
            // crash in between leaves files that DEL by name and GC's sweep find.
            let reserved = ipam::reserve(cfg, network, id, ifname, &plan.requested_ips)?;
            undo.push(Undo::ReleaseIps {
                data_dir: cfg.data_dir.clone(),
                network: network.clone(),
                container_id: id.clone(),
                ifname: ifname.clone(),
                ips: reserved.iter().map(|r| r.ip).collect(),
            });
            reserved
        }
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
            // Pushed first: the plugin's DEL is idempotent, and an ADD that fails half-way must be undone.
            undo.push(Undo::DelegatedIpam { invocation: inv.clone() });
            let out = inv
                .exec("ADD")?
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
