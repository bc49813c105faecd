//! A recording fake of the kernel for unit tests: namespaces with links, addresses, routes and sysctls in
//! memory, every call written down in order, and failures injected by call prefix. Passed in through
//! `ops::Deps` like the real one; nothing chooses it with `cfg(test)`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;
use nix::errno::Errno;

use super::{Error, Kernel, LinkInfo, Netlink, Result, RouteInfo, VethSpec};

pub const NODE: &str = "node";

/// Somewhere to write call lines.
#[derive(Clone)]
pub struct Journal(pub Arc<dyn Fn(String) + Send + Sync>);

#[derive(Debug, Clone, Default)]
pub struct Space {
    pub links: Vec<(LinkInfo, Vec<IpNet>)>,
    pub routes: Vec<RouteInfo>,
    pub sysctls: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
pub struct World {
    /// "node" and one entry per pod netns path that exists.
    pub spaces: BTreeMap<String, Space>,
    /// "<space>: <call>", in order.
    pub calls: Vec<String>,
    /// Calls starting with the prefix fail with the errno (each injection fires once unless `sticky`).
    failures: Vec<(String, Errno, bool)>,
    next_index: u32,
    /// Veth pairs: (space, name) of each end.
    pairs: Vec<((String, String), (String, String))>,
}

/// The fake kernel: clone it to keep a handle on the world while ops own the other.
#[derive(Clone, Default)]
pub struct FakeKernel {
    world: Arc<Mutex<World>>,
}

impl FakeKernel {
    /// A node with `lo` and an uplink.
    pub fn new() -> Self {
        let k = FakeKernel::default();
        {
            let mut w = k.world();
            w.next_index = 1;
            let lo = w.new_link("lo", None);
            let up = w.new_link("uplink", None);
            w.spaces.insert(NODE.into(), Space { links: vec![(lo, vec![]), (up, vec![])], ..Space::default() });
        }
        k
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A pod namespace at `path`, holding only `lo` (index 1, as in the kernel).
    pub fn add_netns(&self, path: &str) {
        let mut w = self.world();
        let lo = LinkInfo { index: 1, ..w.new_link("lo", None) };
        w.spaces.insert(path.into(), Space { links: vec![(lo, vec![])], ..Space::default() });
    }

    /// As the kernel does when a namespace goes: its veth ends die, and with them their peers.
    pub fn remove_netns(&self, path: &str) {
        let mut w = self.world();
        w.spaces.remove(path);
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut w.pairs).into_iter().partition(|(a, b)| a.0 == path || b.0 == path);
        w.pairs = kept;
        for (a, b) in gone {
            let other = if a.0 == path { b } else { a };
            w.remove_link(&other.0, &other.1);
        }
    }

    /// The next call starting with `prefix` (e.g. "node: add route") fails with `errno`.
    pub fn fail_once(&self, prefix: &str, errno: Errno) {
        self.world().failures.push((prefix.into(), errno, false));
    }

    /// Every call starting with `prefix` fails with `errno`.
    pub fn fail_always(&self, prefix: &str, errno: Errno) {
        self.world().failures.push((prefix.into(), errno, true));
    }

    /// Writes a line into this kernel's call log (fakes of other seams share it, so tests see one order).
    pub fn journal(&self) -> Journal {
        let world = self.world.clone();
        Journal(Arc::new(move |line: String| world.lock().unwrap_or_else(|p| p.into_inner()).calls.push(line)))
    }

    pub fn calls(&self) -> Vec<String> {
        self.world().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.world().calls.clear();
    }

    pub fn space(&self, name: &str) -> Option<Space> {
        self.world().spaces.get(name).cloned()
    }

    pub fn link_names(&self, space: &str) -> Vec<String> {
        self.space(space).map(|s| s.links.iter().map(|(l, _)| l.name.clone()).collect()).unwrap_or_default()
    }

    fn ns(&self, key: &str) -> FakeNs {
        FakeNs { world: self.world.clone(), key: key.into() }
    }
}

impl World {
    fn new_link(&mut self, name: &str, kind: Option<&str>) -> LinkInfo {
        self.next_index += 1;
        LinkInfo {
            index: self.next_index,
            name: name.into(),
            mac: String::new(),
            mtu: None,
            up: name == "lo",
            running: name == "lo",
            kind: kind.map(String::from),
            controller: None,
            promisc: false,
            alias: None,
        }
    }

    /// Removes a link and its routes; false when there was none.
    fn remove_link(&mut self, key: &str, name: &str) -> bool {
        let Some(space) = self.spaces.get_mut(key) else { return false };
        let Some(i) = space.links.iter().position(|(l, _)| l.name == name) else { return false };
        let (link, _) = space.links.remove(i);
        space.routes.retain(|r| r.oif != Some(link.index));
        true
    }

    /// Records the call and answers an injected failure, if any.
    fn call(&mut self, key: &str, what: String) -> Result<()> {
        let line = format!("{key}: {what}");
        self.calls.push(line.clone());
        if let Some(i) = self.failures.iter().position(|(p, ..)| line.starts_with(p.as_str())) {
            let (_, errno, sticky) = self.failures[i].clone();
            if !sticky {
                self.failures.remove(i);
            }
            return Err(Error::kernel(what, errno));
        }
        Ok(())
    }
}

pub struct FakeNs {
    world: Arc<Mutex<World>>,
    key: String,
}

impl FakeNs {
    /// Records `what` and runs `f` on this namespace's space (ENOENT-like ENODEV when it is gone).
    fn with<T>(&self, what: String, f: impl FnOnce(&mut Space, &mut u32) -> Result<T>) -> Result<T> {
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        w.call(&self.key, what.clone())?;
        let mut next = w.next_index;
        let out = match w.spaces.get_mut(&self.key) {
            Some(space) => f(space, &mut next),
            None => Err(Error::kernel(what, Errno::ENOENT)),
        };
        w.next_index = next;
        out
    }
}

fn find<'a>(space: &'a mut Space, index: u32, op: &str) -> Result<&'a mut (LinkInfo, Vec<IpNet>)> {
    space.links.iter_mut().find(|(l, _)| l.index == index).ok_or_else(|| Error::kernel(op.to_string(), Errno::ENODEV))
}

fn new_link(next: &mut u32, name: &str, kind: &str) -> LinkInfo {
    *next += 1;
    LinkInfo {
        index: *next,
        name: name.into(),
        mac: String::new(),
        mtu: None,
        up: false,
        running: false,
        kind: Some(kind.into()),
        controller: None,
        promisc: false,
        alias: None,
    }
}

impl Netlink for FakeNs {
    fn place(&self) -> String {
        if self.key == NODE { "the node".into() } else { format!("netns {}", self.key) }
    }

    fn links(&self) -> Result<Vec<LinkInfo>> {
        self.with("list links".into(), |s, _| Ok(s.links.iter().map(|(l, _)| l.clone()).collect()))
    }

    fn link(&self, name: &str) -> Result<Option<LinkInfo>> {
        self.with(format!("look up {name}"), |s, _| Ok(s.links.iter().find(|(l, _)| l.name == name).map(|(l, _)| l.clone())))
    }

    fn create_veth(&self, spec: &VethSpec, pod: &dyn Netlink) -> Result<LinkInfo> {
        let pod = pod.as_any().downcast_ref::<FakeNs>().expect("a pod of the same fake kernel");
        let what = format!("create veth {} peer {} in {}", spec.host, spec.peer, pod.key);
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        w.call(&self.key, what.clone())?;
        let exists = |w: &World, key: &str, name: &str| w.spaces.get(key).is_some_and(|s| s.links.iter().any(|(l, _)| l.name == name));
        if exists(&w, &self.key, spec.host) || exists(&w, &pod.key, spec.peer) {
            return Err(Error::kernel(what, Errno::EEXIST));
        }
        if !w.spaces.contains_key(&pod.key) {
            return Err(Error::kernel(what, Errno::ENOENT));
        }
        let mut next = w.next_index;
        let mut host = new_link(&mut next, spec.host, "veth");
        host.up = spec.up;
        host.running = spec.up;
        host.controller = spec.controller;
        host.mtu = spec.mtu;
        host.mac = crate::netaddr::hex(&spec.host_mac, ":");
        host.alias = Some(spec.alias.to_string());
        let mut peer = new_link(&mut next, spec.peer, "veth");
        peer.mtu = spec.mtu;
        peer.mac = crate::netaddr::hex(&spec.peer_mac, ":");
        w.next_index = next;
        w.spaces.get_mut(&self.key).expect("node").links.push((host.clone(), vec![]));
        w.spaces.get_mut(&pod.key).expect("checked").links.push((peer, vec![]));
        w.pairs.push(((self.key.clone(), spec.host.to_string()), (pod.key.clone(), spec.peer.to_string())));
        Ok(host)
    }

    fn create_bridge(&self, name: &str, mtu: Option<u32>, mac: [u8; 6], promisc: bool) -> Result<()> {
        self.with(format!("create bridge {name}"), |s, next| {
            if s.links.iter().any(|(l, _)| l.name == name) {
                return Err(Error::kernel(format!("create bridge {name}"), Errno::EEXIST));
            }
            let mut b = new_link(next, name, "bridge");
            b.mtu = mtu;
            b.mac = crate::netaddr::hex(&mac, ":");
            b.promisc = promisc;
            s.links.push((b, vec![]));
            Ok(())
        })
    }

    fn set_up(&self, index: u32) -> Result<()> {
        let name = self.name_of(index);
        self.with(format!("set {name} up"), |s, _| {
            let l = &mut find(s, index, "set up")?.0;
            l.up = true;
            l.running = true;
            Ok(())
        })
    }

    fn set_promisc(&self, index: u32) -> Result<()> {
        let name = self.name_of(index);
        self.with(format!("set {name} promiscuous"), |s, _| Ok(find(s, index, "set promisc")?.0.promisc = true))
    }

    fn set_hairpin(&self, port_index: u32) -> Result<()> {
        let name = self.name_of(port_index);
        self.with(format!("set hairpin on {name}"), |s, _| find(s, port_index, "set hairpin").map(|_| ()))
    }

    fn delete_link(&self, name: &str) -> Result<()> {
        let what = format!("delete link {name}");
        let mut w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        w.call(&self.key, what.clone())?;
        if !w.remove_link(&self.key, name) {
            return Err(Error::kernel(what, Errno::ENODEV));
        }
        // Deleting one end of a veth pair deletes the other.
        let me = (self.key.clone(), name.to_string());
        if let Some(i) = w.pairs.iter().position(|(a, b)| *a == me || *b == me) {
            let (a, b) = w.pairs.remove(i);
            let other = if a == me { b } else { a };
            w.remove_link(&other.0, &other.1);
        }
        Ok(())
    }

    fn add_address(&self, index: u32, addr: IpNet, no_prefix_route: bool) -> Result<()> {
        let name = self.name_of(index);
        let flag = if no_prefix_route { " noprefixroute" } else { "" };
        self.with(format!("add address {addr} to {name}{flag}"), |s, _| {
            let link = find(s, index, "add address")?;
            if link.1.contains(&addr) {
                return Err(Error::kernel("add address", Errno::EEXIST));
            }
            link.1.push(addr);
            Ok(())
        })
    }

    fn addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let name = self.name_of(index);
        self.with(format!("list addresses of {name}"), |s, _| Ok(find(s, index, "list addresses")?.1.clone()))
    }

    fn tentative_addresses(&self, index: u32) -> Result<Vec<IpNet>> {
        let name = self.name_of(index);
        self.with(format!("list tentative addresses of {name}"), |s, _| find(s, index, "list addresses").map(|_| Vec::new()))
    }

    fn delete_address(&self, index: u32, addr: IpNet) -> Result<()> {
        let name = self.name_of(index);
        self.with(format!("remove address {addr} from {name}"), |s, _| {
            find(s, index, "remove address")?.1.retain(|a| *a != addr);
            Ok(())
        })
    }

    fn routes(&self, v6: bool) -> Result<Vec<RouteInfo>> {
        self.with(format!("list {} routes", if v6 { "v6" } else { "v4" }), |s, _| {
            Ok(s.routes.iter().filter(|r| r.dst.addr().is_ipv6() == v6).cloned().collect())
        })
    }

    fn add_route(&self, dst: IpNet, gw: Option<IpAddr>, index: u32, scope_link: bool) -> Result<()> {
        let name = self.name_of(index);
        let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
        let scope = if scope_link { " scope link" } else { "" };
        self.with(format!("add route {dst}{via} dev {name}{scope}"), |s, _| {
            let link = find(s, index, "add route")?;
            if !link.0.up {
                // As the kernel: a route's device must be up.
                return Err(Error::kernel("add route", Errno::ENETDOWN));
            }
            if s.routes.iter().any(|r| r.dst == dst) {
                return Err(Error::kernel("add route", Errno::EEXIST));
            }
            s.routes.push(RouteInfo { dst, gw, oif: Some(index), local: false });
            Ok(())
        })
    }

    fn route_to(&self, addr: IpAddr) -> Result<Option<RouteInfo>> {
        self.with(format!("route to {addr}"), |s, _| {
            let local = s.links.iter().flat_map(|(l, a)| a.iter().map(move |a| (l.index, a))).find(|(_, a)| a.addr() == addr);
            if let Some((index, a)) = local {
                return Ok(Some(RouteInfo { dst: crate::netaddr::host_net(a.addr()), gw: None, oif: Some(index), local: true }));
            }
            // Connected subnets of addresses with their prefix, then the routes: the most specific wins.
            let connected = s.links.iter().flat_map(|(l, a)| a.iter().map(move |a| RouteInfo { dst: a.trunc(), gw: None, oif: Some(l.index), local: false }));
            Ok(connected.chain(s.routes.iter().cloned()).filter(|r| r.dst.contains(&addr)).max_by_key(|r| r.dst.prefix_len()))
        })
    }

    fn all_addresses(&self) -> Result<Vec<(u32, IpNet)>> {
        self.with("list all addresses".into(), |s, _| Ok(s.links.iter().flat_map(|(l, a)| a.iter().map(move |a| (l.index, *a))).collect()))
    }

    fn disable_dad(&self, ifname: &str) -> Result<()> {
        self.with(format!("disable dad on {ifname}"), |s, _| {
            s.sysctls.insert(format!("ipv6/conf/{ifname}/accept_dad"), "0".into());
            Ok(())
        })
    }

    fn no_auto_link_local(&self, index: u32) -> Result<()> {
        let name = self.name_of(index);
        self.with(format!("no auto link-local on {name}"), |s, _| {
            s.sysctls.insert(format!("ipv6/conf/{name}/addr_gen_mode"), "1".into());
            Ok(())
        })
    }

    fn disable_ipv6(&self, ifname: &str) -> Result<()> {
        self.with(format!("disable ipv6 on {ifname}"), |s, _| {
            s.sysctls.insert(format!("ipv6/conf/{ifname}/disable_ipv6"), "1".into());
            Ok(())
        })
    }

    fn enable_forwarding(&self, v6: bool) -> Result<()> {
        self.with(format!("enable {} forwarding", if v6 { "v6" } else { "v4" }), |s, _| {
            s.sysctls.insert(if v6 { "ipv6/conf/all/forwarding" } else { "ipv4/ip_forward" }.into(), "1".into());
            Ok(())
        })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

impl FakeNs {
    /// The link's name for the call log ("#7" when there is none).
    fn name_of(&self, index: u32) -> String {
        let w = self.world.lock().unwrap_or_else(|p| p.into_inner());
        w.spaces
            .get(&self.key)
            .and_then(|s| s.links.iter().find(|(l, _)| l.index == index))
            .map(|(l, _)| l.name.clone())
            .unwrap_or_else(|| format!("#{index}"))
    }
}

/// Owns the node's fake namespace, so `Kernel::node` can hand out a reference.
pub struct FakeKernelDeps {
    pub kernel: FakeKernel,
    node: FakeNs,
}

impl FakeKernelDeps {
    pub fn new(kernel: FakeKernel) -> Self {
        let node = kernel.ns(NODE);
        FakeKernelDeps { kernel, node }
    }
}

impl Kernel for FakeKernelDeps {
    fn node(&self) -> &dyn Netlink {
        &self.node
    }

    fn netns_exists(&self, netns: &Path) -> std::result::Result<(), crate::error::Error> {
        let key = netns.display().to_string();
        self.kernel.world().calls.push(format!("{NODE}: look for netns {key}"));
        if self.kernel.world().spaces.contains_key(&key) {
            Ok(())
        } else {
            Err(crate::error::Error::UnknownContainer(format!("netns {key} does not exist (was the pod already deleted?)")))
        }
    }

    fn pod(&self, netns: &Path) -> std::result::Result<Box<dyn Netlink + '_>, crate::error::Error> {
        self.netns_exists(netns)?;
        Ok(Box::new(self.kernel.ns(&netns.display().to_string())))
    }
}
