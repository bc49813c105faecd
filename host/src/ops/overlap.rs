//! A pod network must not overlap the node's own: a pod address inside a subnet the node is directly
//! connected to (its uplink's, say) shadows the node's neighbours there, and one that is a node address
//! breaks the node. ADD checks the addresses it is about to give (one route lookup each); STATUS checks the
//! configured ranges against every address and on-link route of the node.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::netlink::{LinkInfo, Netlink};

/// Links whose routes and addresses are the pods' own: our veths, and the network's bridge.
fn ours(link: Option<&LinkInfo>, bridge: Option<&str>) -> bool {
    link.is_some_and(|l| l.name.starts_with("wcni") || Some(l.name.as_str()) == bridge)
}

/// ADD: the addresses about to be given, each looked up once (no dump: the cost does not grow with pods).
/// A conflict is a local address, or an on-link subnet route that is not the network's bridge's. A host route
/// (another pod's) is left to the route step, which says the address is in use.
pub fn check_addresses(node: &dyn Netlink, ips: &[IpAddr], bridge: Option<&LinkInfo>) -> Result<()> {
    for ip in ips {
        let Some(route) = node.route_to(*ip)? else { continue };
        let host_route = route.dst.prefix_len() == route.dst.max_prefix_len();
        let on_link_subnet = route.dst.prefix_len() > 0 && !host_route && route.gw.is_none();
        let bridges = bridge.is_some_and(|b| route.oif == Some(b.index));
        let why = if route.local {
            format!("{ip} is an address of the node")
        } else if on_link_subnet && !bridges {
            format!("{ip} is inside {}, a subnet the node reaches directly", route.dst)
        } else {
            continue;
        };
        // Only now, off the success path: which link it is.
        let dev = route.oif.and_then(|i| node.links().ok()?.into_iter().find(|l| l.index == i)).map(|l| format!(" (on {})", l.name));
        return Err(Error::Conflict(format!(
            "the pod network overlaps the node's own: {why}{}; pick ranges that do not overlap the node's networks",
            dev.unwrap_or_default()
        )));
    }
    Ok(())
}

/// STATUS: every configured subnet against the node's addresses and on-link routes.
pub fn check_subnets(node: &dyn Netlink, subnets: &[IpNet], bridge: Option<&str>) -> Result<Vec<String>> {
    let links = node.links()?;
    let link = |i: u32| links.iter().find(|l| l.index == i);
    let mut found = Vec::new();
    for (index, addr) in node.all_addresses()? {
        let l = link(index);
        if ours(l, bridge) || l.is_some_and(|l| l.name == "lo") {
            continue;
        }
        for s in subnets.iter().filter(|s| s.contains(&addr.addr()) || addr.trunc().contains(&s.addr())) {
            found.push(format!("pod subnet {s} overlaps the node's address {addr} on {}", l.map(|l| l.name.as_str()).unwrap_or("?")));
        }
    }
    for v6 in [false, true] {
        for r in node.routes(v6)? {
            let l = r.oif.and_then(link);
            if r.dst.prefix_len() == 0 || r.gw.is_some() || ours(l, bridge) {
                continue;
            }
            for s in subnets.iter().filter(|s| s.contains(&r.dst.addr()) || r.dst.contains(&s.addr())) {
                let msg = format!("pod subnet {s} overlaps the node's on-link route {}{}", r.dst, l.map(|l| format!(" on {}", l.name)).unwrap_or_default());
                if !found.contains(&msg) {
                    found.push(msg);
                }
            }
        }
    }
    Ok(found)
}
