//! CHECK: is the attachment still what ADD made? Works from the record and names every missing piece.

use std::collections::HashSet;

use super::record::{self, Record};
use super::undo::Undo;
use super::Deps;
use crate::cni::conf::{Mode, NetConf};
use crate::cni::request::Request;
use crate::cni::result::CniResult;
use crate::error::{Error, Result};
use crate::ipam::{IpamMode, Store};
use crate::netaddr::host_net;
use crate::netlink::{LinkInfo, Netlink};

pub fn run(req: &Request, deps: &Deps) -> Result<()> {
    let path = record::path(&req.conf.state_dir(), &req.conf.name, &req.container_id, &req.ifname);
    let rec = Record::load(&path)?.ok_or_else(|| {
        Error::CheckFailed(format!(
            "no attachment record for container {} ifname {} on network {} (ADD never succeeded here, or DEL ran)",
            req.container_id, req.ifname, req.conf.name
        ))
    })?;
    let netns = req.netns.as_deref().expect("CHECK requires CNI_NETNS (checked when parsing)");
    let pod = deps.kernel.pod(netns)?;
    let mut missing = Vec::new();
    if !rec.complete {
        missing.push("its ADD never finished (it was killed or is still running)".to_string());
    }
    if let Some(prev) = &req.conf.prev_result {
        let prev = CniResult::from_json(prev)?;
        for ip in &prev.ips {
            if !rec.result.ips.iter().any(|r| r.address == ip.address) {
                missing.push(format!("prevResult address {} was not assigned by this plugin", ip.address));
            }
        }
    }
    check_node(deps.kernel.node(), &rec, &req.conf, &mut missing);
    check_pod(pod.as_ref(), &rec, &req.ifname, &mut missing);
    for step in &rec.undo {
        match step {
            Undo::Firewall { backend, rules } => match deps.firewalls.get(*backend).check(rules) {
                Ok(m) => missing.extend(m),
                Err(e) => missing.push(format!("cannot check the {backend} rules: {e}")),
            },
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
            Undo::DelegatedIpam { .. } => match IpamMode::from_request(req) {
                Ok(IpamMode::Plugin { invocation, .. }) => {
                    if let Err(e) = invocation.exec("CHECK") {
                        missing.push(e.to_string());
                    }
                }
                Ok(_) => missing.push("the attachment was made by an IPAM plugin, the config now names the built-in IPAM".into()),
                Err(e) => missing.push(format!("cannot ask the IPAM plugin: {e}")),
            },
            Undo::DeleteHostLink { .. } => {}
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::CheckFailed(format!("attachment {}/{} is broken: {}", req.container_id, req.ifname, missing.join("; "))))
    }
}

/// The host veth, up; routed pods' host routes; bridge mode's bridge, port and gateways.
fn check_node(node: &dyn Netlink, rec: &Record, conf: &NetConf, missing: &mut Vec<String>) {
    let veth = match node.link(&rec.host_veth) {
        Ok(Some(l)) => l,
        Ok(None) => return missing.push(format!("host veth {} is missing", rec.host_veth)),
        Err(e) => return missing.push(format!("cannot {e}")),
    };
    if !veth.up {
        missing.push(format!("host veth {} is down", rec.host_veth));
    }
    if conf.mode == Mode::Bridge {
        return check_bridge(node, rec, &veth, conf, missing);
    }
    // Routed (ptp) pods: the node reaches each pod address through a host route on the veth.
    for ip in &rec.result.ips {
        let Some(table) = listed(node.routes(ip.address.addr().is_ipv6()), missing) else { continue };
        let dst = host_net(ip.address.addr());
        if !table.iter().any(|t| t.dst == dst && t.oif == Some(veth.index)) {
            missing.push(format!("node route {dst} dev {} is missing", rec.host_veth));
        }
    }
}

/// The pod's interface, its addresses and our routes (routes other plugins added later are fine).
fn check_pod(pod: &dyn Netlink, rec: &Record, ifname: &str, missing: &mut Vec<String>) {
    let link = match pod.link(ifname) {
        Ok(Some(l)) => l,
        Ok(None) => return missing.push(format!("interface {ifname} is missing from {}", pod.place())),
        Err(e) => return missing.push(format!("cannot {e}")),
    };
    if let Some(have) = listed(pod.addresses(link.index), missing) {
        let have: HashSet<_> = have.into_iter().collect();
        for ip in rec.result.ips.iter().filter(|ip| !have.contains(&ip.address)) {
            missing.push(format!("address {} is missing from {ifname}", ip.address));
        }
    }
    for v6 in [false, true] {
        let ours: Vec<_> = rec.result.routes.iter().filter(|r| r.dst.addr().is_ipv6() == v6).collect();
        if ours.is_empty() {
            continue;
        }
        let Some(table) = listed(pod.routes(v6), missing) else { continue };
        for route in ours {
            let found = table.iter().any(|t| t.dst == route.dst && t.oif == Some(link.index) && (route.gw.is_none() || t.gw == route.gw));
            if !found {
                let via = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
                missing.push(format!("route {}{via} is missing from {}", route.dst, pod.place()));
            }
        }
    }
}

/// The bridge exists, is up, holds the gateways (isGateway) and still has the pod's veth as a port.
fn check_bridge(node: &dyn Netlink, rec: &Record, veth: &LinkInfo, conf: &NetConf, missing: &mut Vec<String>) {
    let name = conf.bridge_name();
    let bridge = match node.link(name) {
        Ok(Some(b)) => b,
        Ok(None) => return missing.push(format!("bridge {name} is missing")),
        Err(e) => return missing.push(format!("cannot {e}")),
    };
    if !bridge.up {
        missing.push(format!("bridge {name} is down"));
    }
    if veth.controller != Some(bridge.index) {
        missing.push(format!("host veth {} is not a port of bridge {name}", veth.name));
    }
    if conf.bridge_is_gateway() {
        let Some(have) = listed(node.addresses(bridge.index), missing) else { return };
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

/// A listing that failed is reported as such (None), not taken for "everything is missing".
fn listed<T>(r: crate::netlink::Result<Vec<T>>, missing: &mut Vec<String>) -> Option<Vec<T>> {
    r.map_err(|e| missing.push(format!("cannot {e}"))).ok()
}
