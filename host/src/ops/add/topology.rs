//! What differs between the two modes, in one small interface: routed (`ptp`: the node end holds the
//! gateway as a host address and a host route leads to each pod) and `bridge` (the node end is a port of a
//! bridge shared by the network's pods, which holds the gateway with `isGateway`).

use std::net::IpAddr;

use ipnet::IpNet;
use nix::errno::Errno;

use crate::cni::conf::{Mode, NetConf};
use crate::error::{Error, Result};
use crate::ipam::Reserved;
use crate::netaddr::host_net;
use crate::netlink::{own_link_local, up_without_dad, LinkInfo, Netlink};

pub trait Topology {
    /// The part every pod of the network shares (bridge mode: the bridge and its gateways); it outlives
    /// the pods, like the reference bridge plugin's, so no undo is recorded for it.
    fn prepare(&self, node: &dyn Netlink, conf: &NetConf, reserved: &[Reserved]) -> Result<Option<LinkInfo>>;
    /// Pod addresses without a subnet route, and a scope-link route to the gateway: everything goes via
    /// the gateway. A bridged pod keeps its subnet route: pods share the segment.
    fn routed(&self) -> bool;
    /// The node end comes up in the create request (else in `configure_host`, once IPv6 DAD is off on it).
    fn host_up_at_create(&self, v6: bool) -> bool;
    /// The node side after the veth exists.
    fn configure_host(&self, node: &dyn Netlink, host: &LinkInfo, reserved: &[Reserved], conf: &NetConf) -> Result<()>;
    /// The pod gets a default route via its gateway.
    fn default_routes(&self, conf: &NetConf) -> bool;
    /// The node forwards for these pods (a bridge that is not the gateway forwards nothing at L3).
    fn forwards(&self, conf: &NetConf) -> bool;
    /// Firewall rules match the pod by address, not by its veth.
    fn match_by_address(&self) -> bool;
}

pub fn of(conf: &NetConf) -> Box<dyn Topology> {
    match conf.mode {
        Mode::Ptp => Box::new(Ptp),
        Mode::Bridge => Box::new(Bridge),
    }
}

pub struct Ptp;

impl Topology for Ptp {
    fn prepare(&self, _node: &dyn Netlink, _conf: &NetConf, _reserved: &[Reserved]) -> Result<Option<LinkInfo>> {
        Ok(None)
    }

    fn routed(&self) -> bool {
        true
    }

    fn host_up_at_create(&self, v6: bool) -> bool {
        // With IPv6 a routed node end comes up only once it has its link-local address without DAD: while
        // that address is tentative, the node cannot resolve pods for forwarded packets (~2 s).
        !v6
    }

    /// The gateway address as a host prefix on the veth and a host route to each pod address.
    fn configure_host(&self, node: &dyn Netlink, host: &LinkInfo, reserved: &[Reserved], _conf: &NetConf) -> Result<()> {
        if !self.host_up_at_create(reserved.iter().any(|r| r.ip.is_ipv6())) {
            let mac = crate::netaddr::parse_mac(&host.mac).map_err(|e| Error::Internal(format!("node end {}: {e}", host.name)))?;
            own_link_local(node, host.index, mac)?;
            node.set_up(host.index)?;
        }
        for r in reserved {
            let gw = host_net(r.range.gateway);
            node.add_address(host.index, gw, false)?;
            let pod = host_net(r.ip);
            match node.add_route(pod, None, host.index, true) {
                Err(e) if e.is(Errno::EEXIST) => {
                    return Err(Error::Conflict(format!(
                        "a route to {pod} already exists on the node: the address is in use elsewhere \
                         (a leaked attachment, or a range overlapping another network)"
                    )))
                }
                other => other?,
            }
        }
        Ok(())
    }

    fn default_routes(&self, _conf: &NetConf) -> bool {
        true
    }

    fn forwards(&self, _conf: &NetConf) -> bool {
        true
    }

    fn match_by_address(&self) -> bool {
        false
    }
}

pub struct Bridge;

impl Topology for Bridge {
    /// Finds or creates the bridge, up, promiscuous if asked, with the gateway addresses if it is the
    /// gateway. Many ADDs may race to create them: "already exists" means another ADD won.
    fn prepare(&self, node: &dyn Netlink, conf: &NetConf, reserved: &[Reserved]) -> Result<Option<LinkInfo>> {
        let name = conf.bridge_name();
        let bridge = match node.link(name)? {
            Some(link) => link,
            None => match node.create_bridge(name, conf.mtu, bridge_mac(name), conf.promisc_mode) {
                Err(e) if !e.is(Errno::EEXIST) => return Err(e.into()),
                _ => lookup(node, name)?,
            },
        };
        if bridge.kind.as_deref() != Some("bridge") {
            return Err(Error::Conflict(format!(
                "link {name} exists on the node but is not a bridge (kind {}): choose another \"bridge\" name",
                bridge.kind.as_deref().unwrap_or("none")
            )));
        }
        if !bridge.up {
            // Created down (by us or a racing ADD) so that a v6 gateway on it is usable at once.
            up_without_dad(node, bridge.index, name)?;
        }
        if conf.promisc_mode && !bridge.promisc {
            node.set_promisc(bridge.index)?;
        }
        if conf.bridge_is_gateway() {
            for r in reserved {
                let gw = IpNet::new(r.range.gateway, r.range.subnet.prefix_len()).expect("prefix from a valid subnet");
                ensure_address(node, &bridge, gw, conf.force_address)?;
            }
        }
        Ok(Some(bridge))
    }

    fn routed(&self) -> bool {
        false
    }

    fn host_up_at_create(&self, _v6: bool) -> bool {
        // A bridge port holds no address: nothing waits on its DAD.
        true
    }

    fn configure_host(&self, node: &dyn Netlink, host: &LinkInfo, _reserved: &[Reserved], conf: &NetConf) -> Result<()> {
        if conf.hairpin_mode {
            node.set_hairpin(host.index)?;
        }
        Ok(())
    }

    fn default_routes(&self, conf: &NetConf) -> bool {
        conf.is_default_gateway
    }

    fn forwards(&self, conf: &NetConf) -> bool {
        conf.bridge_is_gateway()
    }

    fn match_by_address(&self) -> bool {
        // Routed traffic of bridged pods enters FORWARD from the bridge, not from their veth.
        true
    }
}

/// The bridge's MAC, derived from its name: stable across node reboots and pod churn (a bridge without
/// one takes the lowest MAC of its ports, which changes as pods come and go).
fn bridge_mac(name: &str) -> [u8; 6] {
    crate::naming::derived_mac(&format!("bridge/{name}"))
}

fn lookup(node: &dyn Netlink, name: &str) -> Result<LinkInfo> {
    node.link(name)?.ok_or_else(|| Error::Conflict(format!("bridge {name} vanished right after it was created")))
}

/// The reference plugin's rule: the bridge may hold one address per subnet. A different address in the
/// gateway's subnet is an error, unless `forceAddress` says to replace it.
fn ensure_address(node: &dyn Netlink, bridge: &LinkInfo, gw: IpNet, force: bool) -> Result<()> {
    let have = node.addresses(bridge.index)?;
    if have.contains(&gw) {
        return Ok(());
    }
    for other in have.iter().filter(|a| same_subnet(a, &gw)) {
        if !force {
            return Err(Error::Conflict(format!(
                "bridge {} already has {other}, not the gateway {gw}: set \"forceAddress\": true to replace it, \
                 or fix the subnet",
                bridge.name
            )));
        }
        match node.delete_address(bridge.index, *other) {
            // A racing ADD with forceAddress removed it first.
            Err(e) if !e.is(Errno::EADDRNOTAVAIL) => return Err(e.into()),
            _ => {}
        }
    }
    match node.add_address(bridge.index, gw, false) {
        Err(e) if e.is(Errno::EEXIST) => Ok(()),
        other => Ok(other?),
    }
}

/// Link-local v6 addresses (the kernel's own) never count.
fn same_subnet(a: &IpNet, b: &IpNet) -> bool {
    let link_local = matches!(a.addr(), IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
    a.addr().is_ipv4() == b.addr().is_ipv4() && (a.contains(&b.addr()) || b.contains(&a.addr())) && !link_local
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_subnet_is_per_family_and_ignores_link_local() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(same_subnet(&n("10.0.0.9/24"), &n("10.0.0.1/24")));
        assert!(!same_subnet(&n("10.0.1.9/24"), &n("10.0.0.1/24")));
        assert!(!same_subnet(&n("fe80::1/64"), &n("fe80::2/64")));
        assert!(same_subnet(&n("fd00::9/64"), &n("fd00::1/64")));
        assert_eq!(bridge_mac("cni0"), bridge_mac("cni0"));
        assert_eq!(bridge_mac("cni0")[0] & 0x03, 0x02, "locally administered unicast");
    }
}
