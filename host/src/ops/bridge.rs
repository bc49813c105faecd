//! Bridge mode's node-level part: the bridge and, with `isGateway`, the gateway addresses on it. Both are
//! shared by every pod of the network and outlive them (like the reference `bridge` plugin, DEL leaves
//! them), so nothing here records an undo. Many ADDs may race to create them: "already exists" from the
//! kernel means another ADD won, and its object is used.

use std::net::IpAddr;

use ipnet::IpNet;
use nix::errno::Errno;

use crate::cni::conf::NetConf;
use crate::error::{Error, Result};
use crate::ipam::Reserved;
use crate::netlink::{self, LinkInfo, Netlink};


/// The bridge's MAC, derived from its name: stable across node reboots and pod churn.
fn bridge_mac(name: &str) -> [u8; 6] {
    super::derived_mac(&format!("bridge/{name}"))
}

/// Finds or creates the bridge, up, promiscuous if asked, with the gateway addresses if it is the gateway.
pub async fn ensure(node: &Netlink, conf: &NetConf, reserved: &[Reserved]) -> Result<LinkInfo> {
    let name = conf.bridge_name();
    let bridge = match node.link(name).await.map_err(|e| netlink::err(format!("look up bridge {name}"), e))? {
        Some(link) => link,
        None => match node.create_bridge(name, conf.mtu, bridge_mac(name), conf.promisc_mode).await {
            Ok(()) => lookup(node, name).await?,
            Err(e) if netlink::is_errno(&e, Errno::EEXIST) => lookup(node, name).await?,
            Err(e) => return Err(netlink::err(format!("create bridge {name}"), e)),
        },
    };
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(Error::Netlink(format!(
            "link {name} exists on the node but is not a bridge (kind {}): choose another \"bridge\" name",
            bridge.kind.as_deref().unwrap_or("none")
        )));
    }
    if !bridge.up {
        // Created down (by us or a racing ADD) so that a v6 gateway on it is usable at once.
        super::up_without_dad(node, None, bridge.index, name).await?;
    }
    if conf.promisc_mode && !bridge.promisc {
        node.set_promisc(bridge.index).await.map_err(|e| netlink::err(format!("set bridge {name} promiscuous"), e))?;
    }
    if conf.bridge_is_gateway() {
        for r in reserved {
            let gw = IpNet::new(r.range.gateway, r.range.subnet.prefix_len()).expect("prefix from a valid subnet");
            ensure_address(node, &bridge, gw, conf.force_address).await?;
        }
    }
    Ok(bridge)
}

async fn lookup(node: &Netlink, name: &str) -> Result<LinkInfo> {
    node.link(name)
        .await
        .map_err(|e| netlink::err(format!("look up bridge {name}"), e))?
        .ok_or_else(|| Error::Netlink(format!("bridge {name} vanished right after it was created")))
}

/// The reference plugin's rule: the bridge may hold one address per subnet. A different address in the
/// gateway's subnet is an error, unless `forceAddress` says to replace it.
async fn ensure_address(node: &Netlink, bridge: &LinkInfo, gw: IpNet, force: bool) -> Result<()> {
    let have = node.addresses(bridge.index).await.map_err(|e| netlink::err(format!("list addresses of {}", bridge.name), e))?;
    if have.contains(&gw) {
        return Ok(());
    }
    for other in have.iter().filter(|a| same_subnet(a, &gw)) {
        if !force {
            return Err(Error::Netlink(format!(
                "bridge {} already has {other}, not the gateway {gw}: set \"forceAddress\": true to replace it, \
                 or fix the subnet",
                bridge.name
            )));
        }
        match node.delete_address(bridge.index, *other).await {
            // A racing ADD with forceAddress removed it first.
            Err(e) if !netlink::is_errno(&e, Errno::EADDRNOTAVAIL) => {
                return Err(netlink::err(format!("remove {other} from {} (forceAddress)", bridge.name), e))
            }
            _ => {}
        }
    }
    match node.add_address(bridge.index, gw, false).await {
        Ok(()) => Ok(()),
        Err(e) if netlink::is_errno(&e, Errno::EEXIST) => Ok(()),
        Err(e) => Err(netlink::err(format!("add gateway {gw} to bridge {}", bridge.name), e)),
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
