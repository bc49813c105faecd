//! Kernel networking of one network namespace, as the operations need it: links, addresses, routes and the
//! two sysctls ADD touches. `Netlink` is the seam: `rtnl` speaks rtnetlink to the kernel, `fake` records
//! calls against an in-memory model so the operations are unit-tested without root.

pub mod fake;
mod netconf;
mod rtnl;
mod unlink;

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use nix::errno::Errno;

pub use rtnl::RtnlKernel;

/// A failed request: what we tried, and the kernel's errno when it sent one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{op}: {cause}")]
pub struct Error {
    pub op: String,
    pub errno: Option<Errno>,
    cause: String,
}

impl Error {
    pub fn new(op: impl Into<String>, errno: Option<Errno>, cause: impl Into<String>) -> Self {
        Error { op: op.into(), errno, cause: cause.into() }
    }

    /// The kernel answered `errno`.
    pub fn kernel(op: impl Into<String>, errno: Errno) -> Self {
        Error::new(op, Some(errno), std::io::Error::from_raw_os_error(errno as i32).to_string())
    }

    pub fn is(&self, errno: Errno) -> bool {
        self.errno == Some(errno)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone, PartialEq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub mtu: Option<u32>,
    pub up: bool,
    /// The kernel's operational state is "up": carrier, and the link watcher has attached the device's real
    /// queueing discipline (until then packets go to a noop qdisc and are dropped).
    pub running: bool,
    /// "bridge", "veth"...; None for links without a kind (loopback, physical).
    pub kind: Option<String>,
    /// The bridge (or bond) this link is a port of.
    pub controller: Option<u32>,
    pub promisc: bool,
    /// IFLA_IFALIAS: wasmcni writes the attachment into its node-side veths, so GC can find leaked ones.
    pub alias: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteInfo {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
    /// A local route: the destination is an address of this namespace.
    pub local: bool,
}

/// Both ends of a pod's veth pair. The peer is created straight inside the pod's namespace.
pub struct VethSpec<'a> {
    pub host: &'a str,
    pub peer: &'a str,
    pub mtu: Option<u32>,
    pub host_mac: [u8; 6],
    pub peer_mac: [u8; 6],
    /// Bring the node end up in the same request.
    pub up: bool,
    /// The bridge to attach the node end to (bridge mode).
    pub controller: Option<u32>,
    /// Written into the node end (the kernel ignores an alias at creation, so it is set right after).
    pub alias: &'a str,
}

/// One namespace's kernel networking. Errors keep the errno, so callers can tell "already exists" or "no
/// such device" apart and say what it means for the user.
pub trait Netlink {
    /// "the node" or "netns /var/run/netns/x", for messages.
    fn place(&self) -> String;
    fn links(&self) -> Result<Vec<LinkInfo>>;
    fn link(&self, name: &str) -> Result<Option<LinkInfo>>;
    /// Creates the pair with the peer born inside `pod`'s namespace (no move, no rename race) and sets the
    /// node end's alias; returns the node end.
    fn create_veth(&self, spec: &VethSpec, pod: &dyn Netlink) -> Result<LinkInfo>;
    /// A bridge, created down (so DAD can be turned off before it comes up) with a fixed MAC.
    fn create_bridge(&self, name: &str, mtu: Option<u32>, mac: [u8; 6], promisc: bool) -> Result<()>;
    fn set_up(&self, index: u32) -> Result<()>;
    fn set_promisc(&self, index: u32) -> Result<()>;
    /// Hairpin mode on a bridge port.
    fn set_hairpin(&self, port_index: u32) -> Result<()>;
    fn delete_link(&self, name: &str) -> Result<()>;
    /// `no_prefix_route`: no subnet route for it (a routed pod reaches only its gateway). IPv6 addresses skip
    /// duplicate address detection.
    fn add_address(&self, index: u32, addr: IpNet, no_prefix_route: bool) -> Result<()>;
    fn addresses(&self, index: u32) -> Result<Vec<IpNet>>;
    /// Addresses on `index` still in IPv6 duplicate address detection.
    fn tentative_addresses(&self, index: u32) -> Result<Vec<IpNet>>;
    fn delete_address(&self, index: u32, addr: IpNet) -> Result<()>;
    /// The main table's routes of one family.
    fn routes(&self, v6: bool) -> Result<Vec<RouteInfo>>;
    /// The route the kernel would use for `addr` (`ip route get fibmatch ADDR`): its table entry, with the
    /// prefix it matched; None when nothing routes there.
    fn route_to(&self, addr: IpAddr) -> Result<Option<RouteInfo>>;
    /// Every address of every link, by link index (`ip addr`).
    fn all_addresses(&self) -> Result<Vec<(u32, IpNet)>>;
    /// `ip route add DST [via GW] dev INDEX [scope link]`.
    fn add_route(&self, dst: IpNet, gw: Option<IpAddr>, index: u32, scope_link: bool) -> Result<()>;
    /// Turns off IPv6 DAD on `ifname` (no IPv6 on the link or namespace: nothing to do).
    fn disable_dad(&self, ifname: &str) -> Result<()>;
    /// Keeps the kernel from generating a link-local address on link `index` (`addrgenmode none`; no IPv6
    /// in the namespace: nothing to do).
    fn no_auto_link_local(&self, index: u32) -> Result<()>;
    /// Turns IPv6 off on `ifname` (no IPv6 in the namespace: nothing to do).
    fn disable_ipv6(&self, ifname: &str) -> Result<()>;
    /// Turns on forwarding for one family (read first: written only on the first ADD).
    fn enable_forwarding(&self, v6: bool) -> Result<()>;
    /// For implementations that need to see each other (the node's create_veth, given a pod).
    fn as_any(&self) -> &dyn std::any::Any;
}

/// The node's namespace, and a way to reach a pod's.
pub trait Kernel {
    fn node(&self) -> &dyn Netlink;
    /// A cheap look: Ok when `netns` is there, the error `pod` would give otherwise.
    fn netns_exists(&self, netns: &Path) -> std::result::Result<(), crate::error::Error>;
    /// The pod's namespace at `netns`: an error when it does not exist or is not a network namespace.
    fn pod(&self, netns: &Path) -> std::result::Result<Box<dyn Netlink + '_>, crate::error::Error>;
}

/// Brings `link` up with IPv6 DAD off on it, so no address on it is ever tentative (a tentative link-local
/// address keeps neighbour resolution through the link waiting for ~2 s).
pub fn up_without_dad(nl: &dyn Netlink, index: u32, name: &str) -> Result<()> {
    nl.disable_dad(name)?;
    nl.set_up(index)
}

/// Gives link `index` (down) the link-local address the kernel would derive from `mac`, added by us
/// without DAD, so it is never tentative (see `up_without_dad`). Per pod this replaces turning DAD off:
/// that is a /proc/sys write, and its path lookup grows with every namespace on the machine that has
/// opened a `net/ipv6` sysctl (each dual-stack pod's has: 1 ms per lookup at 1,000 pods, measured).
pub fn own_link_local(nl: &dyn Netlink, index: u32, mac: [u8; 6]) -> Result<()> {
    nl.no_auto_link_local(index)?;
    nl.add_address(index, link_local(mac), false)
}

/// The modified EUI-64 link-local address of `mac` (RFC 4291, appendix A), with its /64.
pub fn link_local(mac: [u8; 6]) -> IpNet {
    let [a, b, c, d, e, f] = mac;
    let addr = std::net::Ipv6Addr::from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, a ^ 0x02, b, c, 0xff, 0xfe, d, e, f]);
    IpNet::new(IpAddr::V6(addr), 64).expect("64 is a valid IPv6 prefix length")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_link_local_address_is_the_one_the_kernel_derives_from_the_mac() {
        // As `ip -6 addr` shows it for a link with this MAC and the default addrgenmode (eui64).
        assert_eq!(super::link_local([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]).to_string(), "fe80::5054:ff:fe12:3456/64");
        assert_eq!(super::link_local([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]).to_string(), "fe80::aa:bbff:fecc:ddee/64");
    }
}
