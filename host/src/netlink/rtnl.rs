//! The real `Netlink`: the handful of rtnetlink requests the plugin makes, one socket per namespace. A
//! socket created inside a namespace keeps operating on it, so the pod side is configured from our own
//! thread without further namespace switches. Each call drives its requests to completion on one
//! single-threaded runtime shared by the node's and the pod's socket: the plugin does one thing at a time.

use std::fs;
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use futures::TryStreamExt;
use ipnet::IpNet;
use nix::errno::Errno;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo as LinkInfoNla, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteScope, RouteType};
use rtnetlink::{
    Error as RtError, Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};
use tokio::runtime::Runtime;

use super::{Error, Kernel, LinkInfo, Netlink, Result, RouteInfo, VethSpec};
use crate::netns::NetNs;

/// The node's socket, and the runtime every socket of this process runs on.
pub struct RtnlKernel {
    rt: Arc<Runtime>,
    node: Rtnl,
}

impl RtnlKernel {
    /// A socket in the namespace of the calling thread (the node).
    pub fn connect() -> std::result::Result<Self, crate::error::Error> {
        // One thread: the plugin makes one request at a time.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| crate::error::Error::io("cannot start the netlink runtime", e))?;
        let rt = Arc::new(rt);
        let handle = {
            let _guard = rt.enter();
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| crate::error::Error::io("cannot open a netlink socket", e))?;
            rt.spawn(conn);
            handle
        };
        let node_netns = thread_netns();
        Ok(RtnlKernel { node: Rtnl { rt: rt.clone(), handle, ns: None, node_netns }, rt })
    }
}

impl Kernel for RtnlKernel {
    fn node(&self) -> &dyn Netlink {
        &self.node
    }

    fn netns_exists(&self, netns: &Path) -> std::result::Result<(), crate::error::Error> {
        if netns.exists() {
            return Ok(());
        }
        NetNs::open(netns).map(|_| ())
    }

    fn pod(&self, netns: &Path) -> std::result::Result<Box<dyn Netlink + '_>, crate::error::Error> {
        let ns = NetNs::open(netns)?;
        let rt = self.rt.handle().clone();
        let (conn, handle, _) = ns
            .run(move || {
                let _guard = rt.enter();
                rtnetlink::new_connection()
            })
            .and_then(|r| r)
            .map_err(|e| match e.raw_os_error() {
                // setns refuses a file that is not a network namespace.
                Some(code) if code == Errno::EINVAL as i32 => crate::error::Error::InvalidEnv {
                    var: "CNI_NETNS",
                    msg: format!("{} is not a network namespace", netns.display()),
                },
                _ => crate::error::Error::io(format!("cannot open a netlink socket in netns {}", netns.display()), e),
            })?;
        self.rt.spawn(conn);
        Ok(Box::new(Rtnl { rt: self.rt.clone(), handle, ns: Some(ns), node_netns: None }))
    }
}

/// One namespace's socket; `ns` None is the node.
pub struct Rtnl {
    rt: Arc<Runtime>,
    handle: Handle,
    ns: Option<NetNs>,
    /// The node's socket: the namespace it was opened in (its inode), where a link deletion may be left to
    /// a child process (unlink.rs) when the calling thread is there too.
    node_netns: Option<u64>,
}

/// The calling thread's network namespace (its inode); None when it cannot be read.
fn thread_netns() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/thread-self/ns/net").ok().map(|m| m.ino())
}

fn link_info(m: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: m.header.index,
        name: String::new(),
        mac: String::new(),
        mtu: None,
        up: m.header.flags.contains(LinkFlags::Up),
        running: false,
        kind: None,
        controller: None,
        promisc: m.header.flags.contains(LinkFlags::Promisc),
        alias: None,
    };
    for attr in &m.attributes {
        match attr {
            LinkAttribute::IfName(n) => info.name = n.clone(),
            LinkAttribute::Address(a) => info.mac = crate::netaddr::hex(a, ":"),
            LinkAttribute::Mtu(m) => info.mtu = Some(*m),
            LinkAttribute::OperState(s) => info.running = *s == rtnetlink::packet_route::link::State::Up,
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

fn route_info(m: &RouteMessage, v6: bool) -> Option<RouteInfo> {
    let unspecified: IpAddr = if v6 { std::net::Ipv6Addr::UNSPECIFIED.into() } else { std::net::Ipv4Addr::UNSPECIFIED.into() };
    let ip = |a: &RouteAddress| match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    };
    let mut r = RouteInfo {
        dst: IpNet::new(unspecified, m.header.destination_prefix_length).ok()?,
        gw: None,
        oif: None,
        local: m.header.kind == RouteType::Local,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => r.dst = IpNet::new(ip(d)?, m.header.destination_prefix_length).ok()?,
            RouteAttribute::Gateway(g) => r.gw = ip(g),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            _ => {}
        }
    }
    Some(r)
}

fn address_of(m: &AddressMessage) -> Option<IpNet> {
    m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => IpNet::new(*ip, m.header.prefix_len).ok(),
        _ => None,
    })
}

/// "what we tried: what the kernel said", keeping the errno.
fn err(op: impl Into<String>, e: RtError) -> Error {
    let op = op.into();
    match &e {
        RtError::NetlinkError(m) => match m.code.map(|c| -c.get()) {
            Some(n) => Error::kernel(op, Errno::from_raw(n)),
            None => Error::new(op, None, e.to_string()),
        },
        _ => Error::new(op, None, e.to_string()),
    }
}

fn io_err(op: impl Into<String>, e: std::io::Error) -> Error {
    let errno = e.raw_os_error().map(Errno::from_raw);
    Error::new(op, errno, e.to_string())
}

impl Rtnl {
    fn block<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// " in netns X" for messages about the pod side; "" for the node.
    fn where_(&self) -> String {
        self.ns.as_ref().map(|n| format!(" in netns {}", n.path().display())).unwrap_or_default()
    }

    async fn address_msgs(&self, index: u32) -> std::result::Result<Vec<AddressMessage>, RtError> {
        self.handle.address().get().set_link_index_filter(index).execute().try_collect().await
    }

    async fn lookup(&self, name: &str) -> std::result::Result<Option<LinkInfo>, RtError> {
        let mut stream = self.handle.link().get().match_name(name.to_string()).execute();
        match stream.try_next().await {
            Ok(m) => Ok(m.as_ref().map(link_info)),
            Err(RtError::NetlinkError(m)) if m.code.map(|c| -c.get()) == Some(Errno::ENODEV as i32) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a sysctl of this namespace: /proc/sys/net resolves to the namespace of the thread opening it.
    fn write_sysctl(&self, path: &str, value: &str) -> std::io::Result<()> {
        match &self.ns {
            Some(ns) => ns.run(|| fs::write(path, value)).and_then(|r| r),
            None => fs::write(path, value),
        }
    }
}

impl Netlink for Rtnl {
    fn place(&self) -> String {
        match &self.ns {
            Some(ns) => format!("netns {}", ns.path().display()),
            None => "the node".into(),
        }
    }

    fn links(&self) -> Result<Vec<LinkInfo>> {
        let msgs: Vec<_> = self.block(self.handle.link().get().execute().try_collect()).map_err(|e| err(format!("list links{}", self.where_()), e))?;
        Ok(msgs.iter().map(link_info).collect())
    }

    fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        self.block(self.lookup(name)).map_err(|e| err(format!("look up {name}{}", self.where_()), e))
    }

    fn create_veth(&self, spec: &VethSpec, pod: &dyn Netlink) -> Result<LinkInfo> {
        let pod = pod.as_any().downcast_ref::<Rtnl>().expect("a pod of the same kernel");
        let pod_ns = pod.ns.as_ref().expect("the pod side has a namespace");
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(spec.peer.to_string())
            .setns_by_fd(pod_ns.fd())
            .address(spec.peer_mac.to_vec());
        let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host.to_string())
            .address(spec.host_mac.to_vec());
        // The peer cannot come up in the same request: the kernel configures it before the pair is linked
        // and veth_open fails with ENOTCONN.
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
        let op = format!("create veth {} with peer {} in {}", spec.host, spec.peer, pod.place());
        self.block(self.handle.link().add(msg).execute()).map_err(|e| err(op, e))?;
        // The alias and the lookup go out together: one round trip.
        let (host, aliased) = self.block(async {
            futures::join!(
                self.lookup(spec.host),
                self.handle.link().set(LinkUnspec::new_with_name(spec.host).alias(spec.alias).build()).execute()
            )
        });
        aliased.map_err(|e| err(format!("set the alias of {}", spec.host), e))?;
        host.map_err(|e| err(format!("look up {}", spec.host), e))?
            .ok_or_else(|| Error::new(format!("look up {}", spec.host), Some(Errno::ENODEV), "it vanished right after it was created"))
    }

    fn create_bridge(&self, name: &str, mtu: Option<u32>, mac: [u8; 6], promisc: bool) -> Result<()> {
        let mut msg = LinkMessageBuilder::<LinkBridge>::new(name).address(mac.to_vec()).promiscuous(promisc);
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        self.block(self.handle.link().add(msg.build()).execute()).map_err(|e| err(format!("create bridge {name}"), e))
    }

    fn set_up(&self, index: u32) -> Result<()> {
        self.block(self.handle.link().set(LinkUnspec::new_with_index(index).up().build()).execute())
            .map_err(|e| err(format!("set link {index} up{}", self.where_()), e))
    }

    fn set_promisc(&self, index: u32) -> Result<()> {
        self.block(self.handle.link().set(LinkUnspec::new_with_index(index).promiscuous(true).build()).execute())
            .map_err(|e| err(format!("set link {index} promiscuous"), e))
    }

    fn set_hairpin(&self, port_index: u32) -> Result<()> {
        self.block(self.handle.link().set_port(LinkBridgePort::new(port_index).hairpin(true).build()).execute())
            .map_err(|e| err(format!("set hairpin mode on port {port_index}"), e))
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        if self.node_netns.is_some() && self.node_netns == thread_netns() {
            match super::unlink::delete_detached(name, std::time::Duration::from_secs(5)) {
                Ok(super::unlink::Unlinked::Gone) => return Ok(()),
                Ok(super::unlink::Unlinked::Refused(e)) => return Err(Error::kernel(format!("delete link {name}"), e)),
                Ok(super::unlink::Unlinked::Unknown) => log::debug!("delete link {name}: no answer from the child, deleting it here"),
                Err(e) => log::debug!("delete link {name}: cannot leave it to a child ({e}), deleting it here"),
            }
        }
        // By name, in one request: no lookup first.
        self.block(self.handle.link().del_with_message(LinkUnspec::new_with_name(name).build()).execute())
            .map_err(|e| err(format!("delete link {name}{}", self.where_()), e))
    }

    fn add_address(&self, index: u32, addr: IpNet, no_prefix_route: bool) -> Result<()> {
        let mut req = self.handle.address().add(index, addr.addr(), addr.prefix_len());
        let mut flags = AddressFlags::empty();
        if no_prefix_route {
            flags |= AddressFlags::Noprefixroute;
        }
        // IPAM already made the address unique, and a tentative address cannot be used for ~2 s.
        if addr.addr().is_ipv6() {
            flags |= AddressFlags::Nodad;
        }
        if !flags.is_empty() {
            req.message_mut().attributes.push(AddressAttribute::Flags(flags));
        }
        self.block(req.execute()).map_err(|e| err(format!("add {addr} to link {index}{}", self.where_()), e))
    }

    fn addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let msgs = self.block(self.address_msgs(index)).map_err(|e| err(format!("list addresses of link {index}{}", self.where_()), e))?;
        Ok(msgs.iter().filter_map(address_of).collect())
    }

    fn tentative_addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let tentative = |m: &&AddressMessage| {
            m.header.flags.contains(AddressHeaderFlags::Tentative)
                || m.attributes.iter().any(|a| matches!(a, AddressAttribute::Flags(f) if f.contains(AddressFlags::Tentative)))
        };
        let msgs = self.block(self.address_msgs(index)).map_err(|e| err(format!("list addresses of link {index}{}", self.where_()), e))?;
        Ok(msgs.iter().filter(tentative).filter_map(address_of).collect())
    }

    fn delete_address(&self, index: u32, addr: IpNet) -> Result<()> {
        let op = format!("remove {addr} from link {index}{}", self.where_());
        self.block(async {
            for m in self.address_msgs(index).await?.into_iter().filter(|m| address_of(m) == Some(addr)) {
                self.handle.address().del(m).execute().await?;
            }
            Ok(())
        })
        .map_err(|e| err(op, e))
    }

    fn routes(&self, v6: bool) -> Result<Vec<RouteInfo>> {
        let msg = if v6 {
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build()
        } else {
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build()
        };
        let msgs: Vec<_> =
            self.block(self.handle.route().get(msg).execute().try_collect()).map_err(|e| err(format!("list routes{}", self.where_()), e))?;
        Ok(msgs.iter().filter_map(|m| route_info(m, v6)).collect())
    }

    fn route_to(&self, addr: IpAddr) -> Result<Option<RouteInfo>> {
        let mut msg = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(addr, if addr.is_ipv4() { 32 } else { 128 })
            .map_err(|e| Error::new(format!("look up the route to {addr}"), Some(Errno::EINVAL), e.to_string()))?
            .build();
        // The table entry that matched, not a clone for this one destination.
        msg.header.flags |= RouteFlags::FibMatch;
        let got: std::result::Result<Vec<RouteMessage>, _> = self.block(self.handle.route().get(msg).execute().try_collect());
        match got {
            Ok(msgs) => Ok(msgs.first().and_then(|m| route_info(m, addr.is_ipv6()))),
            // Nothing routes there, or a blackhole/unreachable/prohibit route does (the kernel answers "get"
            // for those with an error): not a subnet the node reaches directly.
            Err(RtError::NetlinkError(m))
                if m.code.is_some_and(|c| {
                    [Errno::ENETUNREACH, Errno::EHOSTUNREACH, Errno::EINVAL, Errno::EACCES].iter().any(|e| -c.get() == *e as i32)
                }) =>
            {
                Ok(None)
            }
            Err(e) => Err(err(format!("look up the route to {addr}{}", self.where_()), e)),
        }
    }

    fn all_addresses(&self) -> Result<Vec<(u32, IpNet)>> {
        let msgs: Vec<AddressMessage> =
            self.block(self.handle.address().get().execute().try_collect()).map_err(|e| err(format!("list addresses{}", self.where_()), e))?;
        Ok(msgs.iter().filter_map(|m| Some((m.header.index, address_of(m)?))).collect())
    }

    fn add_route(&self, dst: IpNet, gw: Option<IpAddr>, index: u32, scope_link: bool) -> Result<()> {
        let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
        let op = format!("add route {dst}{via} dev {index}{}", self.where_());
        let invalid = |e: String| Error::new(op.clone(), Some(Errno::EINVAL), e);
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .map_err(|e| invalid(e.to_string()))?
            .output_interface(index);
        if let Some(gw) = gw {
            b = b.gateway(gw).map_err(|e| invalid(e.to_string()))?;
        }
        if scope_link {
            b = b.scope(RouteScope::Link);
        }
        self.block(self.handle.route().add(b.build()).execute()).map_err(|e| err(op, e))
    }

    fn disable_dad(&self, ifname: &str) -> Result<()> {
        let path = format!("/proc/sys/net/ipv6/conf/{ifname}/accept_dad");
        match self.write_sysctl(&path, "0") {
            // No IPv6 on this link or node: no DAD to turn off.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("turn off DAD ({path}{})", self.where_()), e)),
            Ok(()) => Ok(()),
        }
    }

    fn no_auto_link_local(&self, index: u32) -> Result<()> {
        use rtnetlink::packet_route::link::{AfSpecInet6, AfSpecUnspec, In6AddrGenMode};
        let mode = AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)]);
        let msg = LinkUnspec::new_with_index(index).append_extra_attribute(LinkAttribute::AfSpecUnspec(vec![mode])).build();
        match self.block(self.handle.link().set(msg).execute()) {
            // No IPv6 in this kernel or namespace: no link-local address to keep away.
            Err(RtError::NetlinkError(m)) if m.code.map(|c| -c.get()) == Some(Errno::EAFNOSUPPORT as i32) => Ok(()),
            other => other.map_err(|e| err(format!("set addrgenmode none on link {index}{}", self.where_()), e)),
        }
    }

    fn disable_ipv6(&self, ifname: &str) -> Result<()> {
        let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
        match self.write_sysctl(&path, "1") {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("turn off IPv6 ({path}{})", self.where_()), e)),
            Ok(()) => Ok(()),
        }
    }

    fn enable_forwarding(&self, v6: bool) -> Result<()> {
        let path = if v6 { "/proc/sys/net/ipv6/conf/all/forwarding" } else { "/proc/sys/net/ipv4/ip_forward" };
        // Never undone: other pods rely on it. Asked first (over netlink: see netconf.rs for why not read
        // from /proc) so the write happens only once per node.
        let on = match &self.ns {
            Some(ns) => ns.run(|| super::netconf::forwarding(v6)).and_then(|r| r),
            None => super::netconf::forwarding(v6),
        };
        if on.unwrap_or(false) {
            return Ok(());
        }
        self.write_sysctl(path, "1").map_err(|e| io_err(format!("enable forwarding ({path})"), e))
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
