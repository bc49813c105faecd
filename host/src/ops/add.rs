//! ADD: plan, reserve, wire the veth, firewall, hooks, record, result. Every change pushes its undo first
//! thing after it succeeds; any error unwinds them all in reverse and returns one CNI error.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::bridge;
use super::plan::Plan;
use super::record::Record;
use super::rollback::{Undo, Undoer};
use crate::cni::request::{Command, Request};
use crate::cni::result::{CniResult, Interface, IpConfig, Route};
use crate::error::{Error, Result};
use crate::cni::conf::Mode;
use crate::firewall::hookrules::{self, PodMatch};
use crate::firewall::{Family, Iptables, Masquerade};
use crate::hooks::Hooks;
use crate::ipam::delegate::Invocation;
use crate::ipam::{self, IpamConfig, Reserved};
use crate::netaddr::host_net;
use crate::netlink::{self, Netlink, VethSpec};
use crate::netns::NetNs;

/// `hooks` yields the loaded hooks; it is called when pre-ADD needs them, so loading (engine start, cache
/// maps) can run on another thread meanwhile.
pub fn run(req: &Request, hooks: impl FnOnce() -> Result<Box<dyn Hooks>>) -> Result<CniResult> {
    let ipam_cfg = ipam_mode(req)?;
    let _gc_waits = super::gc::lock(&req.conf.state_dir(), &req.conf.name, false)?;
    let netns_path = req.netns.as_deref().expect("ADD requires CNI_NETNS (checked when parsing)");
    // Only a cheap look now: the namespace is opened later, while iptables-restore runs.
    if !netns_path.exists() {
        NetNs::open(netns_path)?;
    }
    let rt = super::runtime()?;
    let node = Netlink::connect(&rt)?;
    let iptables = Iptables;
    let mut record = Record::new(
        &req.conf.name,
        &req.container_id,
        &req.ifname,
        Some(netns_path.to_path_buf()),
        crate::naming::host_veth_name(&req.container_id, &req.ifname),
    );
    let hooks = hooks()?;
    let hooks = hooks.as_ref();
    let wiring = Wiring { req, hooks, ipam: &ipam_cfg, netns: netns_path, rt: &rt, node: &node, iptables: &iptables };
    // A panic must not skip the unwinding: it becomes an error like any other.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wiring.add(&mut record)))
        .unwrap_or_else(|p| Err(Error::Internal(super::panic_message(&p))));
    match outcome {
        Ok(result) => Ok(result),
        Err(cause) => {
            log::warn!("ADD {} failed, unwinding {} steps: {cause}", req.container_id, record.undo.len());
            let mut undo_errors = rt.block_on(Undoer { node: &node, iptables: &iptables }.unwind(&record.undo));
            // The record is written before the last wait; a failed ADD must not leave its own behind (and must
            // not touch one a previous, successful ADD wrote: a failed duplicate ADD gets here too).
            // With undo errors the record stays, so the runtime's DEL retries exactly what is left.
            if record.written && undo_errors.is_empty() {
                let path = super::record::path(&req.conf.state_dir(), &req.conf.name, &req.container_id, &req.ifname);
                if let Err(e) = Record::remove(&path) {
                    undo_errors.push(e.to_string());
                }
            }
            if undo_errors.is_empty() {
                Err(cause)
            } else {
                Err(Error::Rollback { cause: Box::new(cause), undo_errors })
            }
        }
    }
}

/// Where addresses come from: the built-in IPAM, or an IPAM plugin in CNI_PATH.
pub enum IpamMode {
    Builtin(IpamConfig),
    /// `ranges` when the plugin's config has host-local's shape (subnet/ranges), for validating hook plans.
    Plugin { invocation: Invocation, ranges: Option<IpamConfig> },
}

impl IpamMode {
    pub fn ranges(&self) -> Option<&IpamConfig> {
        match self {
            IpamMode::Builtin(c) => Some(c),
            IpamMode::Plugin { ranges, .. } => ranges.as_ref(),
        }
    }
}

pub fn ipam_mode(req: &Request) -> Result<IpamMode> {
    let raw = req.conf.ipam.as_ref().ok_or_else(|| Error::InvalidConfig("missing \"ipam\" section".into()))?;
    let ip_ranges = req.conf.runtime_config.as_ref().and_then(|r| r.get("ipRanges"));
    let adding = req.command == Command::Add;
    match req.conf.ipam_type() {
        Some("builtin") => Ok(IpamMode::Builtin(IpamConfig::load(raw, ip_ranges, adding)?)),
        Some(plugin) => Ok(IpamMode::Plugin {
            invocation: Invocation {
                plugin: plugin.to_string(),
                cni_path: req.cni_path.clone(),
                container_id: req.container_id.clone(),
                ifname: req.ifname.clone(),
                netns: req.netns.clone(),
                args: req.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";"),
                conf: req.raw_conf.clone(),
            },
            // Only ADD validates hook plans against them.
            ranges: adding.then(|| IpamConfig::load(raw, ip_ranges, true).ok()).flatten(),
        }),
        None => Err(Error::InvalidConfig("ipam.type is missing (\"builtin\", or an IPAM plugin such as \"host-local\")".into())),
    }
}

/// Turns an IPAM plugin's result into reservations: one address per entry, each needing a gateway.
fn delegated_reservations(plugin: &str, result: &CniResult) -> Result<Vec<Reserved>> {
    if result.ips.is_empty() {
        return Err(Error::Ipam(ipam::Error::Unavailable(format!("IPAM plugin {plugin} returned no address"))));
    }
    result
        .ips
        .iter()
        .map(|ip| {
            let gateway = ip.gateway.ok_or_else(|| {
                Error::Ipam(ipam::Error::Unavailable(format!(
                    "IPAM plugin {plugin} returned {} without a gateway; a routed pod needs one (set ipam.gateway)",
                    ip.address
                )))
            })?;
            let addr = ip.address.addr();
            Ok(Reserved { ip: addr, range: ipam::Range { subnet: ip.address.trunc(), start: addr, end: addr, gateway } })
        })
        .collect()
}

const LOOPBACK_INDEX: u32 = 1;

struct Wiring<'a> {
    req: &'a Request,
    hooks: &'a dyn Hooks,
    ipam: &'a IpamMode,
    netns: &'a std::path::Path,
    /// Drives the netlink sockets. Hooks run outside it: WASI's sync bindings bring their own runtime.
    rt: &'a tokio::runtime::Runtime,
    node: &'a Netlink,
    iptables: &'a Iptables,
}

/// Waits until no address on `index` is tentative (IPv6 DAD), so the pod can use them when ADD returns.
/// With DAD off this is one dump; the bound is the reference plugins' 10 s.
async fn settle(nl: &Netlink, index: u32, what: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let tentative = nl.tentative_addresses(index).await.map_err(|e| netlink::err(format!("list addresses of {what}"), e))?;
        if tentative.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(Error::Netlink(format!("addresses {tentative:?} of {what} stayed tentative (DAD) for 10 s")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}


fn default_route(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("valid"),
        IpAddr::V6(_) => IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).expect("valid"),
    }
}

impl Wiring<'_> {
    fn add(&self, record: &mut Record) -> Result<CniResult> {
        let req = self.req;
        let (id, ifname, network) = (&req.container_id, &req.ifname, &req.conf.name);

        // pre-ADD hooks see and may change the plan before anything is reserved.
        let routes = self.ipam.ranges().map(|c| c.routes.clone()).unwrap_or_default();
        let plan = Plan::from_request(req, &routes)?;
        let mut plan = self.hooks.pre_add(req, plan, self.ipam.ranges())?;
        log::debug!("step: pre-add hooks done");

        let reserved = match self.ipam {
            IpamMode::Builtin(cfg) => {
                let reserved = ipam::reserve(cfg, network, id, ifname, &plan.requested_ips)?;
                record.undo.push(Undo::ReleaseIps {
                    data_dir: cfg.data_dir.clone(),
                    network: network.clone(),
                    container_id: id.clone(),
                    ifname: ifname.clone(),
                    ips: reserved.iter().map(|r| r.ip).collect(),
                });
                reserved
            }
            IpamMode::Plugin { invocation, ranges } => {
                let mut inv = invocation.clone();
                if !plan.requested_ips.is_empty() {
                    // The "ips" capability, as host-local reads it: addresses with their prefix length.
                    let cfg = ranges.as_ref().expect("validated: requested ips need readable ranges");
                    let ips: Vec<String> = plan
                        .requested_ips
                        .iter()
                        .filter_map(|ip| cfg.ranges.iter().flatten().find(|r| r.contains(*ip)).map(|r| format!("{ip}/{}", r.subnet.prefix_len())))
                        .collect();
                    inv.conf["runtimeConfig"]["ips"] = serde_json::json!(ips);
                }
                // Pushed first: the plugin's DEL is idempotent, and an ADD that fails half-way must be undone.
                record.undo.push(Undo::DelegatedIpam { invocation: inv.clone() });
                let out = inv.exec("ADD")?.ok_or_else(|| {
                    Error::Ipam(ipam::Error::Unavailable(format!("IPAM plugin {} printed no result", inv.plugin)))
                })?;
                let result = CniResult::from_json(&out)?;
                let extra: Vec<_> = result.routes.iter().filter(|r| !plan.routes.iter().any(|p| p.dst == r.dst)).cloned().collect();
                plan.routes.extend(extra);
                if plan.dns.is_empty() {
                    plan.dns = result.dns.clone();
                }
                delegated_reservations(&inv.plugin, &result)?
            }
        };
        log::info!("{id}/{ifname}: reserved {:?}", reserved.iter().map(|r| r.ip).collect::<Vec<_>>());

        // Every field of the result is decided here (we choose the MACs), so post-ADD hooks run now and their
        // rules go into the same iptables-restore as masquerade, which runs while netlink wires the pod.
        // The rules are in place before the pod's interface comes up: no packet passes unfiltered.
        let macs = Macs::for_attachment(id, ifname, &plan);
        // Bridge mode: the shared bridge (and gateway) first; the result names it.
        let bridge = match req.conf.mode {
            Mode::Bridge => Some(self.rt.block_on(bridge::ensure(self.node, &req.conf, &reserved))?),
            Mode::Ptp => None,
        };
        let result = self.result(record, &macs, &reserved, &plan, bridge.as_ref());
        let chains = self.hooks.post_add(req, &result)?;
        log::debug!("step: post-add hooks done");
        let mut families: Vec<Family> = reserved.iter().map(|r| Family::of(r.ip)).collect();
        families.sort_by_key(|f| *f == Family::V6);
        families.dedup();
        let masq = req
            .conf
            .ip_masq
            .then(|| Masquerade::new(network, id, reserved.iter().map(|r| (r.ip, r.range.subnet)).collect()));
        let mut pending = Vec::new();
        for family in families {
            // Undo steps are pushed before applying: tearing down rules that are not there is a no-op.
            let mut input = String::new();
            if !chains.is_empty() {
                let names = chains.iter().map(|c| c.chain.clone()).collect();
                record.undo.push(Undo::RemoveChains { family, table: "filter".into(), chains: names });
                // filter first: if the shared chain is missing, the batch fails before any nat change.
                // Bridged pods are matched by address: routed traffic enters FORWARD from the bridge, not the veth.
                let pod = match (&bridge, reserved.iter().find(|r| Family::of(r.ip) == family)) {
                    (Some(_), Some(r)) => PodMatch::Address(r.ip),
                    _ => PodMatch::Veth(&record.host_veth),
                };
                input += &hookrules::render(&chains, &pod, family);
            }
            if let Some(masq) = &masq {
                record.undo.push(Undo::RemoveMasquerade { masq: masq.clone(), families: vec![family] });
                input += &masq.render_setup(family);
            }
            if !input.is_empty() {
                pending.push((family, self.iptables.restore_start(family, &input)?, input));
            }
        }

        // The restore is running: open the pod's namespace and socket meanwhile.
        let pod_ns = NetNs::open(self.netns)?;
        let pod = Netlink::connect_in(self.rt, &pod_ns)?;
        log::debug!("step: pod netns opened, netlink socket ready");
        let wired = self.rt.block_on(async {
            let host_veth = record.host_veth.clone();
            let spec = VethSpec {
                host: &host_veth,
                peer: &req.ifname,
                peer_ns: &pod_ns,
                mtu: plan.mtu,
                host_mac: macs.host,
                peer_mac: macs.pod,
                // With IPv6 a routed node end comes up only after DAD is off on it (configure_host): while its
                // link-local address is tentative, the node cannot resolve pods for forwarded packets (~2 s).
                // A bridge port holds no address: nothing waits on its DAD.
                up: bridge.is_some() || !self.v6(&reserved),
                controller: bridge.as_ref().map(|b| b.index),
            };
            let (host, pod_if) = self.create_veth(record, &spec, &pod).await?;
            self.configure_pod(&pod_ns, &pod, pod_if.index, &reserved, &result.routes, bridge.is_none()).await?;
            match &bridge {
                None => self.configure_host(&host, &reserved).await?,
                Some(_) if req.conf.hairpin_mode => self
                    .node
                    .set_hairpin(host.index)
                    .await
                    .map_err(|e| netlink::err(format!("set hairpin mode on {}", host.name), e))?,
                Some(_) => {}
            }
            Ok::<_, Error>(())
        });
        log::debug!("step: veth created, pod and node side configured");
        // Every undo step is known now: write the record while the restore finishes. A crash from here on
        // leaves a record that lets DEL clean up exactly.
        let recorded = wired.and_then(|_| {
            // A bridge that is not the gateway forwards nothing at L3 on this node.
            if bridge.is_none() || req.conf.bridge_is_gateway() {
                for r in &reserved {
                    crate::sysctl::enable_forwarding(r.ip)?;
                }
            }
            record.result = result.clone();
            record.write(&req.conf.state_dir())?;
            record.written = true;
            log::debug!("step: record written");
            Ok(())
        });
        // Always reap the restores, also when wiring failed, so the unwinding sees their final state.
        let mut firewall = Ok(());
        for (family, run, input) in pending {
            let outcome = match run.wait() {
                Err(_) if !chains.is_empty() => self
                    .iptables
                    .ensure_shared_chain(family, std::path::Path::new(hookrules::LOCK_DIR))
                    .and_then(|_| self.iptables.restore(family, &input)),
                other => other,
            };
            firewall = firewall.and(outcome.map_err(Error::from));
        }
        recorded?;
        firewall?;
        log::debug!("step: firewall applied");
        Ok(result)
    }

    async fn create_veth(
        &self,
        record: &mut Record,
        spec: &VethSpec<'_>,
        pod: &Netlink,
    ) -> Result<(netlink::LinkInfo, netlink::LinkInfo)> {
        let (ifname, host) = (&self.req.ifname, record.host_veth.clone());
        let ns = spec.peer_ns.path().display();
        match self.node.create_veth(spec).await {
            Ok(()) => {}
            // Either end may be the one that exists; look only now, off the success path.
            Err(e) if netlink::is_errno(&e, nix::errno::Errno::EEXIST) => {
                if matches!(pod.link(ifname).await, Ok(Some(_))) {
                    return Err(Error::Netlink(format!(
                        "interface {ifname} already exists in netns {ns}: another plugin or a previous ADD created it"
                    )));
                }
                return Err(Error::Netlink(format!(
                    "link {host} already exists on the node: a previous DEL for container {} did not clean up \
                     (run DEL for it, or delete the link)",
                    self.req.container_id
                )));
            }
            Err(e) => return Err(netlink::err(format!("create veth {host} with peer {ifname} in netns {ns}"), e)),
        }
        record.undo.push(Undo::DeleteHostLink { name: host.clone() });
        // The attachment, written into the node end, lets GC find it should the record be lost. The kernel
        // ignores an alias at creation; it is set (by name) alongside the two index lookups, in one round trip.
        let r = self.req;
        let alias = crate::naming::veth_alias(&r.conf.name, &r.container_id, &r.ifname);
        let (host_link, pod_link, aliased) = futures::join!(self.node.link(&host), pod.link(ifname), self.node.set_alias(&host, &alias));
        aliased.map_err(|e| netlink::err(format!("set alias of {host}"), e))?;
        let host_link = host_link.map_err(|e| netlink::err(format!("look up {host}"), e))?;
        let pod_link = pod_link.map_err(|e| netlink::err(format!("look up {ifname} in netns {ns}"), e))?;
        host_link.zip(pod_link).ok_or_else(|| Error::Netlink(format!("veth {host}/{ifname} vanished right after it was created")))
    }

    /// Pod side: lo up, the addresses and the result's routes (each via its family's gateway unless it names
    /// one). Routed (ptp): addresses without a subnet route, and a link-scope route to the gateway first.
    /// Bridged: with the subnet route, since pods share the segment.
    async fn configure_pod(
        &self,
        pod_ns: &NetNs,
        pod: &Netlink,
        index: u32,
        reserved: &[Reserved],
        routes: &[Route],
        routed: bool,
    ) -> Result<()> {
        let ns = pod_ns.path().display();
        let ifname = &self.req.ifname;
        let v6 = self.v6(reserved);
        if v6 {
            super::up_without_dad(pod, Some(pod_ns), index, ifname).await?;
        } else {
            pod.set_up(index).await.map_err(|e| netlink::err(format!("set {ifname} up in netns {ns}"), e))?;
        }
        // lo is ifindex 1 in every network namespace.
        pod.set_up(LOOPBACK_INDEX).await.map_err(|e| netlink::err(format!("set lo up in netns {ns}"), e))?;
        for r in reserved {
            let addr = IpNet::new(r.ip, r.range.subnet.prefix_len()).expect("prefix from a valid subnet");
            let gw = r.range.gateway;
            pod
                .add_address(index, addr, routed)
                .await
                .map_err(|e| netlink::err(format!("add {addr} to {} in netns {ns}", self.req.ifname), e))?;
            if routed {
                pod.add_route(host_net(gw), None, index, true)
                    .await
                    .map_err(|e| netlink::err(format!("add route to gateway {gw} in netns {ns}"), e))?;
            }
            for route in routes.iter().filter(|rt| rt.dst.addr().is_ipv4() == gw.is_ipv4()) {
                let via = route.gw.unwrap_or(gw);
                pod
                    .add_route(route.dst, Some(via), index, false)
                    .await
                    .map_err(|e| netlink::err(format!("add route {} via {via} in netns {ns}", route.dst), e))?;
            }
        }
        if v6 {
            settle(pod, index, &format!("{ifname} in netns {ns}")).await?;
        }
        Ok(())
    }

    /// Node side: the gateway address as a host prefix on the veth and a host route to each pod address.
    async fn configure_host(&self, host: &netlink::LinkInfo, reserved: &[Reserved]) -> Result<()> {
        if self.v6(reserved) {
            super::up_without_dad(self.node, None, host.index, &host.name).await?;
        }
        for r in reserved {
            let gw = host_net(r.range.gateway);
            self.node
                .add_address(host.index, gw, false)
                .await
                .map_err(|e| netlink::err(format!("add gateway {gw} to {}", host.name), e))?;
            let pod = host_net(r.ip);
            match self.node.add_route(pod, None, host.index, true).await {
                Ok(()) => {}
                Err(e) if netlink::is_errno(&e, nix::errno::Errno::EEXIST) => {
                    return Err(Error::Netlink(format!(
                        "a route to {pod} already exists on the node: the address is in use elsewhere \
                         (a leaked attachment, or a range overlapping another network)"
                    )))
                }
                Err(e) => return Err(netlink::err(format!("add route to {pod} via {}", host.name), e)),
            }
        }
        Ok(())
    }

    fn v6(&self, reserved: &[Reserved]) -> bool {
        reserved.iter().any(|r| r.ip.is_ipv6())
    }

    fn result(&self, record: &Record, macs: &Macs, reserved: &[Reserved], plan: &Plan, bridge: Option<&netlink::LinkInfo>) -> CniResult {
        let sandbox = Some(self.netns.display().to_string());
        // A veth without an explicit MTU gets the Ethernet default.
        let mtu = Some(plan.mtu.unwrap_or(1500));
        // As the reference bridge plugin: the bridge, the node end, the pod end.
        let mut interfaces: Vec<Interface> = bridge
            .map(|b| Interface { name: b.name.clone(), mac: b.mac.clone(), mtu: b.mtu, sandbox: None })
            .into_iter()
            .collect();
        interfaces.push(Interface { name: record.host_veth.clone(), mac: mac_text(&macs.host), mtu, sandbox: None });
        interfaces.push(Interface { name: self.req.ifname.clone(), mac: mac_text(&macs.pod), mtu, sandbox });
        let pod_index = interfaces.len() - 1;
        let ips = reserved
            .iter()
            .map(|r| IpConfig {
                address: IpNet::new(r.ip, r.range.subnet.prefix_len()).expect("valid prefix"),
                gateway: Some(r.range.gateway),
                interface: Some(pod_index),
            })
            .collect();
        let default_routes = bridge.is_none() || self.req.conf.is_default_gateway;
        let mut routes: Vec<Route> = reserved
            .iter()
            .filter(|_| default_routes)
            .map(|r| Route::new(default_route(r.range.gateway), Some(r.range.gateway)))
            .collect();
        // Only what configure_pod installs: routes of a family the pod has an address in.
        let extra: Vec<Route> = plan
            .routes
            .iter()
            .filter(|r| reserved.iter().any(|a| a.ip.is_ipv4() == r.dst.addr().is_ipv4()))
            .filter(|r| !routes.iter().any(|d| d.dst == r.dst))
            .cloned()
            .collect();
        routes.extend(extra);
        CniResult { interfaces, ips, routes, dns: plan.dns.clone() }
    }
}

/// The MACs of both veth ends. Chosen by us rather than the kernel so the result is known before the
/// kernel work: derived from the attachment (stable across re-ADDs), or the plan's for the pod side.
struct Macs {
    host: [u8; 6],
    pod: [u8; 6],
}

impl Macs {
    fn for_attachment(id: &str, ifname: &str, plan: &Plan) -> Self {
        let derive = |side: &str| super::derived_mac(&format!("{id}/{ifname}/{side}"));
        Macs { host: derive("host"), pod: plan.mac.unwrap_or_else(|| derive("pod")) }
    }
}

fn mac_text(m: &[u8; 6]) -> String {
    crate::netaddr::hex(m, ":")
}
