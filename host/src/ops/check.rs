//! CHECK: is the attachment still what ADD made? Works from the record and names every missing piece.

use std::collections::HashSet;

use super::record::{self, Record};
use super::rollback::Undo;
use crate::cni::conf::{Mode, NetConf};
use crate::cni::request::Request;
use crate::cni::result::CniResult;
use crate::error::{Error, Result};
use crate::firewall::{declares_chain, table_section, Family, Iptables};
use crate::ipam::Store;
use crate::netaddr::host_net;
use crate::netlink::Netlink;
use crate::netns::NetNs;

pub fn run(req: &Request) -> Result<()> {
    let path = record::path(&req.conf.state_dir(), &req.conf.name, &req.container_id, &req.ifname);
    let rec = Record::load(&path)?.ok_or_else(|| {
        Error::CheckFailed(format!(
            "no attachment record for container {} ifname {} on network {} (ADD never succeeded here, or DEL ran)",
            req.container_id, req.ifname, req.conf.name
        ))
    })?;
    let netns = req.netns.as_deref().expect("CHECK requires CNI_NETNS (checked when parsing)");
    let pod_ns = NetNs::open(netns)?;
    let mut missing = Vec::new();

    if let Some(prev) = &req.conf.prev_result {
        let prev = CniResult::from_json(prev)?;
        for ip in &prev.ips {
            if !rec.result.ips.iter().any(|r| r.address == ip.address) {
                missing.push(format!("prevResult address {} was not assigned by this plugin", ip.address));
            }
        }
    }

    let rt = super::runtime()?;
    let node = Netlink::connect(&rt)?;
    let pod = Netlink::connect_in(&rt, &pod_ns)?;
    rt.block_on(async {
        match node.link(&rec.host_veth).await {
            Ok(Some(l)) => {
                if !l.up {
                    missing.push(format!("host veth {} is down", rec.host_veth));
                }
                let bridged = req.conf.mode == Mode::Bridge;
                if bridged {
                    check_bridge(&node, &rec, &l, &req.conf, &mut missing).await;
                }
                // Routed (ptp) pods: the node reaches each pod address through a host route on the veth; a
                // bridged pod's subnet route is the bridge's.
                if !bridged {
                    for ip in &rec.result.ips {
                        let table = listed(node.routes(ip.address.addr().is_ipv6()).await, "list node routes", &mut missing);
                        let dst = host_net(ip.address.addr());
                        if !table.iter().any(|t| t.dst == dst && t.oif == Some(l.index)) {
                            missing.push(format!("node route {dst} dev {} is missing", rec.host_veth));
                        }
                    }
                }
            }
            _ => missing.push(format!("host veth {} is missing", rec.host_veth)),
        }
        match pod.link(&req.ifname).await {
            Ok(Some(l)) => {
                let have: HashSet<_> = listed(pod.addresses(l.index).await, "list pod addresses", &mut missing).into_iter().collect();
                for ip in &rec.result.ips {
                    if !have.contains(&ip.address) {
                        missing.push(format!("address {} is missing from {}", ip.address, req.ifname));
                    }
                }
                // Our routes must be there; routes other plugins added later are fine.
                for v6 in [false, true] {
                    let ours: Vec<_> = rec.result.routes.iter().filter(|r| r.dst.addr().is_ipv6() == v6).collect();
                    if ours.is_empty() {
                        continue;
                    }
                    let table = listed(pod.routes(v6).await, "list pod routes", &mut missing);
                    for route in ours {
                        let found = table.iter().any(|t| {
                            t.dst == route.dst && t.oif == Some(l.index) && (route.gw.is_none() || t.gw == route.gw)
                        });
                        if !found {
                            let via = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
                            missing.push(format!("route {}{via} is missing from netns {}", route.dst, netns.display()));
                        }
                    }
                }
            }
            _ => missing.push(format!("interface {} is missing from netns {}", req.ifname, netns.display())),
        }
    });

    // One iptables-save per family the record has rules in, for every chain of it.
    let mut saved: Vec<(Family, String)> = Vec::new();
    let mut dump = |family: Family| -> Result<String> {
        if let Some((_, s)) = saved.iter().find(|(f, _)| *f == family) {
            return Ok(s.clone());
        }
        let s = Iptables.save(family, None).map_err(Error::Firewall)?;
        saved.push((family, s.clone()));
        Ok(s)
    };
    for step in &rec.undo {
        match step {
            Undo::RemoveMasquerade { masq, families } => {
                for family in families {
                    if !declares_chain(table_section(&dump(*family)?, "nat"), &masq.chain) {
                        missing.push(format!("masquerade chain {} is missing", masq.chain));
                    }
                }
            }
            Undo::RemoveChains { family, table, chains } => {
                let all = dump(*family)?;
                for chain in chains.iter().filter(|c| !declares_chain(table_section(&all, table), c)) {
                    missing.push(format!("hook rule chain {chain} is missing"));
                }
            }
            Undo::ReleaseIps { data_dir, network, container_id, ifname, .. } => {
                let held = match Store::open_existing(data_dir, network)? {
                    Some(store) => store.find(container_id, ifname)?,
                    None => Vec::new(),
                };
                for ip in &rec.result.ips {
                    if !held.contains(&ip.address.addr()) {
                        missing.push(format!("IP reservation for {} is missing", ip.address.addr()));
                    }
                }
            }
            // The IPAM plugin checks its own state (host-local: the reservation) with the same config.
            Undo::DelegatedIpam { .. } => {
                match super::add::ipam_mode(req) {
                    Ok(super::add::IpamMode::Plugin { invocation, .. }) => {
                        if let Err(e) = invocation.exec("CHECK") {
                            missing.push(e.to_string());
                        }
                    }
                    Ok(_) => missing.push("the attachment was made by an IPAM plugin, the config now names the built-in IPAM".into()),
                    Err(e) => missing.push(format!("cannot ask the IPAM plugin: {e}")),
                }
            }
            _ => {}
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::CheckFailed(format!("attachment {}/{} is broken: {}", req.container_id, req.ifname, missing.join("; "))))
    }
}

/// The bridge exists, is up, holds the gateways (isGateway) and still has the pod's veth as a port.
async fn check_bridge(node: &Netlink, rec: &Record, veth: &crate::netlink::LinkInfo, conf: &NetConf, missing: &mut Vec<String>) {
    let name = conf.bridge_name();
    let bridge = match node.link(name).await {
        Ok(Some(b)) => b,
        Ok(None) => return missing.push(format!("bridge {name} is missing")),
        Err(e) => return missing.push(crate::netlink::describe(&format!("look up bridge {name}"), &e)),
    };
    if !bridge.up {
        missing.push(format!("bridge {name} is down"));
    }
    if veth.controller != Some(bridge.index) {
        missing.push(format!("host veth {} is not a port of bridge {name}", veth.name));
    }
    if conf.bridge_is_gateway() {
        let have = listed(node.addresses(bridge.index).await, "list bridge addresses", missing);
        for ip in &rec.result.ips {
            if let Some(gw) = ip.gateway {
                let want = ipnet::IpNet::new(gw, ip.address.prefix_len()).expect("prefix from a valid address");
                if !have.contains(&want) {
                    missing.push(format!("gateway {want} is missing from bridge {name}"));
                }
            }
        }
    }
}

/// A listing that failed is reported as such, not taken for "everything is missing".
fn listed<T>(r: Result<Vec<T>, rtnetlink::Error>, what: &str, missing: &mut Vec<String>) -> Vec<T> {
    r.unwrap_or_else(|e| {
        missing.push(crate::netlink::describe(&format!("cannot {what}"), &e));
        Vec::new()
    })
}
