//! ADD's kernel work on the veth pair: create it with the peer born in the pod's namespace, address the pod
//! while its interface is still down, configure the node end, and, once the firewall is in place, bring the
//! pod up with its routes.

use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::topology::Topology;
use super::Macs;
use crate::cni::request::Request;
use crate::cni::result::Route;
use crate::error::{Error, Result};
use crate::ipam::Reserved;
use crate::netaddr::host_net;
use crate::netlink::{self, LinkInfo, Netlink, VethSpec};
use crate::plan::Plan;

/// lo is ifindex 1 in every network namespace.
const LOOPBACK_INDEX: u32 = 1;
/// How long ADD waits for IPv6 addresses to leave DAD: the reference plugins' bound. With DAD off (as we
/// set it) this is one dump.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often it looks meanwhile.
const SETTLE_POLL: Duration = Duration::from_millis(20);
/// How long ADD waits for the kernel's link watcher to mark the pod's interface running (it attaches the
/// real qdisc then; before, packets are dropped). Usually done by the time the routes are in.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(2);
const RUNNING_POLL: Duration = Duration::from_millis(1);

pub struct Wiring<'a> {
    pub req: &'a Request,
    pub node: &'a dyn Netlink,
    pub pod: &'a dyn Netlink,
    pub topology: &'a dyn Topology,
}

/// The veth name or the pod's ifname was taken by something that is not this ADD's: unwinding must not
/// delete it.
pub fn is_taken(e: &netlink::Error) -> bool {
    e.op.starts_with("create veth") && e.is(Errno::EEXIST)
}

impl Wiring<'_> {
    fn v6(reserved: &[Reserved]) -> bool {
        reserved.iter().any(|r| r.ip.is_ipv6())
    }

    /// The pair, with the node end named `host` (up unless IPv6 must settle first, a bridge port in bridge
    /// mode) and the pod end down. Returns the node end and the pod end's index.
    pub fn create_veth(&self, host: &str, plan: &Plan, macs: &Macs, bridge: Option<&LinkInfo>, reserved: &[Reserved]) -> Result<(LinkInfo, u32)> {
        let r = self.req;
        let alias = crate::naming::veth_alias(&r.conf.name, &r.container_id, &r.ifname);
        let spec = VethSpec {
            host,
            peer: &r.ifname,
            mtu: plan.mtu,
            host_mac: macs.host,
            peer_mac: macs.pod,
            up: self.topology.host_up_at_create(Self::v6(reserved)),
            controller: bridge.map(|b| b.index),
            alias: &alias,
        };
        let host_link = match self.node.create_veth(&spec, self.pod) {
            // Either end may be the one that exists; look only now, off the success path.
            Err(e) if e.is(Errno::EEXIST) => {
                if matches!(self.pod.link(&r.ifname), Ok(Some(_))) {
                    return Err(Error::Netlink(netlink::Error::new(
                        e.op,
                        e.errno,
                        format!("interface {} already exists in {}: another plugin or a previous ADD created it", r.ifname, self.pod.place()),
                    )));
                }
                return Err(Error::Netlink(netlink::Error::new(
                    e.op,
                    e.errno,
                    format!(
                        "link {host} already exists on the node: a previous DEL for container {} did not clean up \
                         (run DEL for it, or delete the link)",
                        r.container_id
                    ),
                )));
            }
            other => other?,
        };
        let pod_link = self
            .pod
            .link(&r.ifname)?
            .ok_or_else(|| Error::Conflict(format!("veth {host}/{} vanished right after it was created", r.ifname)))?;
        Ok((host_link, pod_link.index))
    }

    /// The pod's addresses, added while its interface (MAC `mac`) is down (routes wait for it to come up),
    /// and lo up.
    pub fn address_pod(&self, index: u32, mac: [u8; 6], reserved: &[Reserved]) -> Result<()> {
        if Self::v6(reserved) {
            // Before it comes up: the kernel's own link-local address would stay tentative for a second or two.
            netlink::own_link_local(self.pod, index, mac)?;
        }
        self.pod.set_up(LOOPBACK_INDEX)?;
        for r in reserved {
            self.pod.add_address(index, super::pod_address(r), self.topology.routed())?;
        }
        Ok(())
    }

    pub fn configure_host(&self, host: &LinkInfo, reserved: &[Reserved]) -> Result<()> {
        if !Self::v6(reserved) {
            // Before the pod end comes up and gives it carrier: an IPv4-only pod's node end gets no link-local
            // address and no fe80::/64 route. Each node end's route sits beside all the others' on one prefix,
            // which made creating a veth and bringing its pod up ~1 ms and ~2.5 ms slower at 1,000 pods.
            self.node.disable_ipv6(&host.name)?;
        }
        self.topology.configure_host(self.node, host, reserved, &self.req.conf)?;
        if self.topology.forwards(&self.req.conf) {
            for v6 in [false, true].into_iter().filter(|v6| reserved.iter().any(|r| r.ip.is_ipv6() == *v6)) {
                self.node.enable_forwarding(v6)?;
            }
        }
        Ok(())
    }

    /// Up, then the routes (a route's device must be up): routed pods first get a link-scope route to
    /// their gateway; each route goes via its family's gateway unless it names one.
    pub fn bring_up_pod(&self, host: &LinkInfo, index: u32, reserved: &[Reserved], routes: &[Route]) -> Result<()> {
        self.pod.set_up(index)?;
        for r in reserved {
            let gw = r.range.gateway;
            if self.topology.routed() {
                self.pod.add_route(host_net(gw), None, index, true)?;
            }
            for route in routes.iter().filter(|rt| rt.dst.addr().is_ipv4() == gw.is_ipv4()) {
                self.pod.add_route(route.dst, Some(route.gw.unwrap_or(gw)), index, false)?;
            }
        }
        if Self::v6(reserved) {
            self.settle(index)?;
        }
        self.wait_running(&host.name)
    }

    /// Returns once both ends are operationally up, so the pod's first packets are not dropped: carrier
    /// comes on for both when the pod end comes up, and the kernel's link watcher, which attaches each end's
    /// real qdisc, runs asynchronously after that (later on a busy node).
    fn wait_running(&self, host: &str) -> Result<()> {
        let deadline = Instant::now() + RUNNING_TIMEOUT;
        loop {
            let pod = self.pod.link(&self.req.ifname)?;
            let node = self.node.link(host)?;
            if pod.is_some_and(|l| l.running) && node.is_some_and(|l| l.running) {
                return Ok(());
            }
            if Instant::now() > deadline {
                log::warn!("veth {host}/{} is not running after {} s; going on", self.req.ifname, RUNNING_TIMEOUT.as_secs());
                return Ok(());
            }
            std::thread::sleep(RUNNING_POLL);
        }
    }

    /// Waits until no address on the pod's interface is tentative (IPv6 DAD), so the pod can use them when
    /// ADD returns.
    fn settle(&self, index: u32) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let tentative = self.pod.tentative_addresses(index)?;
            if tentative.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let list: Vec<String> = tentative.iter().map(ToString::to_string).collect();
                return Err(Error::Conflict(format!(
                    "addresses {} of {} in {} stayed tentative (IPv6 duplicate address detection) for {} s",
                    list.join(", "),
                    self.req.ifname,
                    self.pod.place(),
                    SETTLE_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(SETTLE_POLL);
        }
    }
}
