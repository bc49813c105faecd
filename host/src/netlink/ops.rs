//! The handful of rtnetlink requests the plugin makes. Errors stay `rtnetlink::Error` so callers can tell
//! "already exists" or "no such device" apart and say what it means for the user.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as LinkInfoNla, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteScope};
use rtnetlink::{
    Error as RtError, Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use tokio::runtime::Runtime;

use crate::error::Error;
use crate::netns::NetNs;

#[derive(Debug, Clone, PartialEq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub mtu: Option<u32>,
    pub up: bool,
    /// "bridge", "veth"...; None for links without a kind (loopback, physical).
    pub kind: Option<String>,
    /// The bridge (or bond) this link is a port of.
    pub controller: Option<u32>,
    pub promisc: bool,
    /// IFLA_IFALIAS: wasmcni writes the attachment into its node-side veths, so GC can find leaked ones.
    pub alias: Option<String>,
}

impl LinkInfo {
    fn from_message(m: &LinkMessage) -> Self {
        let mut info = LinkInfo {
            index: m.header.index,
            name: String::new(),
            mac: String::new(),
            mtu: None,
            up: m.header.flags.contains(LinkFlags::Up),
            kind: None,
            controller: None,
            promisc: m.header.flags.contains(LinkFlags::Promisc),
            alias: None,
        };
        for attr in &m.attributes {
            match attr {
                LinkAttribute::IfName(n) => info.name = n.clone(),
                LinkAttribute::Address(a) => {
                    info.mac = crate::netaddr::hex(a, ":")
                }
                LinkAttribute::Mtu(m) => info.mtu = Some(*m),
                LinkAttribute::Controller(c) => info.controller = Some(*c),
                LinkAttribute::IfAlias(a) => info.alias = Some(a.clone()),
                LinkAttribute::LinkInfo(infos) => {
                    info.kind = infos.iter().find_map(|i| match i {
                        LinkInfoNla::Kind(k) => Some(k.to_string()),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        info
    }
}

/// Both ends of a pod's veth pair.
pub struct VethSpec<'a> {
    pub host: &'a str,
    pub peer: &'a str,
    pub peer_ns: &'a NetNs,
    pub mtu: Option<u32>,
    pub host_mac: [u8; 6],
    pub peer_mac: [u8; 6],
    pub up: bool,
    /// The bridge to attach the node end to (bridge mode).
    pub controller: Option<u32>,
}

fn address_of(m: &AddressMessage) -> Option<IpNet> {
    m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => IpNet::new(*ip, m.header.prefix_len).ok(),
        _ => None,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteInfo {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
}

pub struct Netlink {
    handle: Handle,
}

fn invalid(e: impl std::fmt::Debug) -> RtError {
    RtError::InvalidNla(format!("{e:?}"))
}

impl Netlink {
    /// A socket in the namespace of the calling thread.
    pub fn connect(rt: &Runtime) -> Result<Self, Error> {
        let _guard = rt.enter();
        let (conn, handle, _) =
            rtnetlink::new_connection().map_err(|e| Error::io("cannot open a netlink socket", e))?;
        rt.spawn(conn);
        Ok(Netlink { handle })
    }

    /// A socket inside `ns`: created on a thread that entered it, then used from ours.
    pub fn connect_in(rt: &Runtime, ns: &NetNs) -> Result<Self, Error> {
        let handle = rt.handle().clone();
        let (conn, nl, _) = ns
            .run(move || {
                let _guard = handle.enter();
                rtnetlink::new_connection()
            })
            .and_then(|r| r)
            .map_err(|e| match e.raw_os_error() {
                // setns refuses a file that is not a network namespace.
                Some(libc_einval) if libc_einval == nix::errno::Errno::EINVAL as i32 => Error::InvalidEnv {
                    var: "CNI_NETNS",
                    msg: format!("{} is not a network namespace", ns.path().display()),
                },
                _ => Error::io(format!("cannot open a netlink socket in netns {}", ns.path().display()), e),
            })?;
        rt.spawn(conn);
        Ok(Netlink { handle: nl })
    }

    pub async fn links(&self) -> Result<Vec<LinkInfo>, RtError> {
        let msgs: Vec<_> = self.handle.link().get().execute().try_collect().await?;
        Ok(msgs.iter().map(LinkInfo::from_message).collect())
    }

    pub async fn link(&self, name: &str) -> Result<Option<LinkInfo>, RtError> {
        let mut stream = self.handle.link().get().match_name(name.to_string()).execute();
        match stream.try_next().await {
            Ok(m) => Ok(m.as_ref().map(LinkInfo::from_message)),
            Err(e) if super::is_errno(&e, nix::errno::Errno::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the pair in one request with the peer born inside the pod namespace (no move, no rename
    /// race), the node end up if `spec.up` and, in bridge mode, already a port of the bridge. The peer
    /// cannot be brought up in the same request: the kernel configures it before the pair is linked and
    /// veth_open fails with ENOTCONN.
    pub async fn create_veth(&self, spec: &VethSpec<'_>) -> Result<(), RtError> {
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.peer.to_string())
            .setns_by_fd(spec.peer_ns.fd())
            .address(spec.peer_mac.to_vec());
        let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host.to_string())
            .address(spec.host_mac.to_vec());
        if spec.up {
            msg = msg.up();
        }
        if let Some(bridge) = spec.controller {
            msg = msg.controller(bridge);
        }
        if let Some(mtu) = spec.mtu {
            peer_msg = peer_msg.mtu(mtu);
            msg = msg.mtu(mtu);
        }
        let msg = msg.set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build()))).build();
        self.handle.link().add(msg).execute().await
    }

    /// A bridge, created down (so DAD can be turned off before it comes up) with a fixed MAC: a bridge
    /// without one takes the lowest MAC of its ports, which changes as pods come and go.
    pub async fn create_bridge(&self, name: &str, mtu: Option<u32>, mac: [u8; 6], promisc: bool) -> Result<(), RtError> {
        let mut msg = LinkMessageBuilder::<LinkBridge>::new(name).address(mac.to_vec()).promiscuous(promisc);
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        self.handle.link().add(msg.build()).execute().await
    }

    /// The kernel ignores IFLA_IFALIAS when it creates a link: set it afterwards, by name.
    pub async fn set_alias(&self, name: &str, alias: &str) -> Result<(), RtError> {
        self.handle.link().set(LinkUnspec::new_with_name(name).alias(alias).build()).execute().await
    }

    pub async fn set_promisc(&self, index: u32) -> Result<(), RtError> {
        self.handle.link().set(LinkUnspec::new_with_index(index).promiscuous(true).build()).execute().await
    }

    /// Lets frames leave a bridge port through the port they came in on (a pod reaching itself through a
    /// service address).
    pub async fn set_hairpin(&self, port_index: u32) -> Result<(), RtError> {
        self.handle.link().set_port(LinkBridgePort::new(port_index).hairpin(true).build()).execute().await
    }

    pub async fn set_up(&self, index: u32) -> Result<(), RtError> {
        self.handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await
    }

    /// Deletes by name in one request (no lookup first).
    pub async fn delete_link(&self, name: &str) -> Result<(), RtError> {
        self.handle.link().del_with_message(LinkUnspec::new_with_name(name).build()).execute().await
    }

    /// Adds `addr` (address + prefix length). `no_prefix_route` keeps the kernel from adding a subnet route,
    /// which a routed (ptp) pod must not have: everything goes via the gateway. IPv6 addresses skip duplicate
    /// address detection: IPAM already made them unique, and a tentative address cannot be used for ~2 s.
    pub async fn add_address(&self, index: u32, addr: IpNet, no_prefix_route: bool) -> Result<(), RtError> {
        let mut req = self.handle.address().add(index, addr.addr(), addr.prefix_len());
        let mut flags = AddressFlags::empty();
        if no_prefix_route {
            flags |= AddressFlags::Noprefixroute;
        }
        if addr.addr().is_ipv6() {
            flags |= AddressFlags::Nodad;
        }
        if !flags.is_empty() {
            req.message_mut().attributes.push(AddressAttribute::Flags(flags));
        }
        req.execute().await
    }

    /// The address messages of link `index` (the dump is filtered on our side).
    async fn address_msgs(&self, index: u32) -> Result<Vec<AddressMessage>, RtError> {
        self.handle.address().get().set_link_index_filter(index).execute().try_collect().await
    }

    pub async fn addresses(&self, index: u32) -> Result<Vec<IpNet>, RtError> {
        Ok(self.address_msgs(index).await?.iter().filter_map(address_of).collect())
    }

    /// Addresses on `index` still in duplicate address detection (IPv6), which cannot be used yet.
    pub async fn tentative_addresses(&self, index: u32) -> Result<Vec<IpNet>, RtError> {
        let tentative = |m: &&AddressMessage| {
            m.header.flags.contains(AddressHeaderFlags::Tentative)
                || m.attributes.iter().any(|a| matches!(a, AddressAttribute::Flags(f) if f.contains(AddressFlags::Tentative)))
        };
        Ok(self.address_msgs(index).await?.iter().filter(tentative).filter_map(address_of).collect())
    }

    pub async fn delete_address(&self, index: u32, addr: IpNet) -> Result<(), RtError> {
        for m in self.address_msgs(index).await?.into_iter().filter(|m| address_of(m) == Some(addr)) {
            self.handle.address().del(m).execute().await?;
        }
        Ok(())
    }

    /// The main table's routes of one family: destination, next hop and output interface.
    pub async fn routes(&self, v6: bool) -> Result<Vec<RouteInfo>, RtError> {
        let msg = if v6 {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        };
        let msgs: Vec<_> = self.handle.route().get(msg).execute().try_collect().await?;
        let unspecified: IpAddr = if v6 { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
        let ip = |a: &RouteAddress| match a {
            RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
            RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
            _ => None,
        };
        Ok(msgs
            .iter()
            .filter_map(|m| {
                let mut r = RouteInfo { dst: IpNet::new(unspecified, m.header.destination_prefix_length).ok()?, gw: None, oif: None };
                for a in &m.attributes {
                    match a {
                        RouteAttribute::Destination(d) => r.dst = IpNet::new(ip(d)?, m.header.destination_prefix_length).ok()?,
                        RouteAttribute::Gateway(g) => r.gw = ip(g),
                        RouteAttribute::Oif(i) => r.oif = Some(*i),
                        _ => {}
                    }
                }
                Some(r)
            })
            .collect())
    }

    /// `ip route add DST [via GW] dev INDEX [scope link]`.
    pub async fn add_route(&self, dst: IpNet, gw: Option<IpAddr>, index: u32, scope_link: bool) -> Result<(), RtError> {
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .map_err(invalid)?
            .output_interface(index);
        if let Some(gw) = gw {
            b = b.gateway(gw).map_err(invalid)?;
        }
        if scope_link {
            b = b.scope(RouteScope::Link);
        }
        self.handle.route().add(b.build()).execute().await
    }
}
