//! host-gw routing: one route per other node's pod range via that node's InternalIP of the same family.
//! What to route is decided here without side effects; the kernel work is behind `RouteTable`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::node::NodeSet;

pub mod netlink;

/// The route protocol number on every route the agent makes (`ip route show proto 87`). The kernel keeps it
/// as an opaque tag; listing and deleting filter on it, so the agent never sees or touches a route it did
/// not make. 87 ('W') is in no iproute2 rt_protos list and not taken by the routing daemons and CNIs a
/// node is likely to run: the kernel and iproute2 use 0-4 and 8-18, babel 42, Calico 80, openr 99, FRR
/// 186-192 (EIGRP 192, also Cilium's encryption routes), others in the high 190s.
pub const PROTOCOL: u8 = 87;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: IpNet,
    pub via: IpAddr,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", self.dst, self.via)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("a route to {0} exists that wasmcni did not make; leaving it (remove it, or fix the overlap)")]
    Foreign(IpNet),
}

/// The kernel's routing table as the agent may see it: this node's connected subnets, and its own routes.
#[allow(async_fn_in_trait)] // used through generics on a single-threaded runtime
pub trait RouteTable {
    /// Subnets of this node's addresses (what is on-link from here).
    async fn connected(&self) -> Result<Vec<IpNet>, RouteError>;
    /// Routes carrying PROTOCOL.
    async fn ours(&self) -> Result<Vec<Route>, RouteError>;
    /// A new route; `Foreign` when the kernel already has another route to that destination.
    async fn add(&self, r: &Route) -> Result<(), RouteError>;
    /// Our route to `r.dst` now goes via `r.via`.
    async fn replace(&self, r: &Route) -> Result<(), RouteError>;
    async fn delete(&self, r: &Route) -> Result<(), RouteError>;
}

/// The routes this node should have, and why some nodes get none.
#[derive(Debug, Default, PartialEq)]
pub struct Wanted {
    pub routes: Vec<Route>,
    /// node name -> why it has no route (one log line each when it changes).
    pub skipped: BTreeMap<String, String>,
}

pub fn wanted(me: &str, nodes: &NodeSet, connected: &[IpNet]) -> Wanted {
    let mut w = Wanted::default();
    let own: Vec<IpNet> = nodes.get(me).map(|n| n.pod_cidrs.clone()).unwrap_or_default();
    let mut taken: BTreeMap<IpNet, String> = BTreeMap::new();
    for n in nodes.values().filter(|n| n.name != me) {
        let mut reasons = Vec::new();
        for cidr in &n.pod_cidrs {
            let v4 = matches!(cidr, IpNet::V4(_));
            let family = if v4 { "IPv4" } else { "IPv6" };
            let Some(ip) = n.internal_ip(v4) else {
                reasons.push(format!("no {family} InternalIP for pod range {cidr}"));
                continue;
            };
            if !connected.iter().any(|c| c.contains(&ip)) {
                reasons.push(format!(
                    "InternalIP {ip} is not on-link (in no subnet of this node's addresses): host-gw needs the nodes on one L2 segment"
                ));
                continue;
            }
            if let Some(o) = own.iter().find(|o| o.contains(&cidr.network()) || cidr.contains(&o.network())) {
                reasons.push(format!("pod range {cidr} overlaps this node's own {o}"));
                continue;
            }
            if let Some(other) = taken.get(cidr) {
                reasons.push(format!("pod range {cidr} is also node {other}'s"));
                continue;
            }
            taken.insert(*cidr, n.name.clone());
            w.routes.push(Route { dst: *cidr, via: ip });
        }
        if !reasons.is_empty() {
            w.skipped.insert(n.name.clone(), reasons.join("; "));
        }
    }
    w.routes.sort();
    w
}

#[derive(Debug, Default, PartialEq)]
pub struct Synced {
    pub added: Vec<Route>,
    pub replaced: Vec<Route>,
    pub removed: Vec<Route>,
    /// Routes of ours in the kernel after the sync.
    pub managed: usize,
    pub errors: Vec<String>,
}

/// Makes our routes in the kernel exactly `want`: missing ones added (a route deleted by hand comes back),
/// changed ones replaced, ones of nodes that left removed. One failing route does not stop the others.
pub async fn sync(table: &impl RouteTable, want: &[Route]) -> Result<Synced, RouteError> {
    let have = table.ours().await?;
    let mut s = Synced::default();
    for r in want {
        let result = match have.iter().find(|h| h.dst == r.dst) {
            Some(h) if h.via == r.via => {
                s.managed += 1;
                continue;
            }
            Some(_) => table.replace(r).await.map(|_| s.replaced.push(r.clone())),
            None => table.add(r).await.map(|_| s.added.push(r.clone())),
        };
        match result {
            Ok(()) => s.managed += 1,
            Err(e) => s.errors.push(format!("{r}: {e}")),
        }
    }
    for h in have.iter().filter(|h| !want.iter().any(|r| r.dst == h.dst)) {
        match table.delete(h).await {
            Ok(()) => s.removed.push(h.clone()),
            Err(e) => {
                s.managed += 1;
                s.errors.push(format!("removing {h}: {e}"));
            }
        }
    }
    Ok(s)
}

#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod tests;
