//! ADD, top to bottom as named phases: plan, reserve, decide the result, decide the rules, record the
//! intent, start the firewall, wire the pod, wait for the firewall, bring the pod up, record the result.
//! Each phase pushes the undo of what it is about to change before changing it (undo steps treat "not
//! there" as done), and the record on disk lists them before the kernel is touched, so an ADD killed at
//! any moment leaves nothing that DEL or GC cannot find. A failure unwinds them all in reverse.

mod reserve;
pub(super) mod topology;
mod wiring;

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::record::{self, Record};
use super::undo::{self, Undo};
use super::{crash, locks, Deps};
use crate::cni::request::Request;
use crate::cni::result::{CniResult, Interface, IpConfig, Route};
use crate::error::{Error, Result};
use crate::firewall::{AttachmentRules, Backend, Masquerade};
use crate::hooks::Hooks;
use crate::ipam::{IpamMode, Reserved};
use crate::netlink::LinkInfo;
use crate::plan::Plan;
use topology::Topology;

/// A veth without an explicit MTU gets the kernel's default for Ethernet devices (ETH_DATA_LEN); the result
/// says so rather than leaving the MTU out.
const DEFAULT_MTU: u32 = 1500;

/// `hooks` yields the loaded hooks; it is called when pre-ADD needs them, so loading (engine start, cache
/// maps) can run on another thread meanwhile. ADD only borrows them: what becomes of them is the caller's.
pub fn run<'h>(req: &Request, deps: &Deps, hooks: impl FnOnce() -> Result<&'h dyn Hooks>) -> Result<CniResult> {
    let ipam = IpamMode::from_request(req)?;
    let state_dir = req.conf.state_dir();
    let _no_gc = locks::network(&state_dir, &req.conf.name, false)?;
    let _attachment = locks::attachment(&req.conf.run_dir(), &req.conf.name, &req.container_id, &req.ifname)?;
    crash::after("locked");
    let netns = req.netns.clone().expect("ADD requires CNI_NETNS (checked when parsing)");
    // Only a cheap look now: the namespace is opened once the firewall is started.
    deps.kernel.netns_exists(&netns)?;
    let host_veth = crate::naming::host_veth_name(&req.container_id, &req.ifname);
    let record = Record::new(&req.conf.name, &req.container_id, &req.ifname, Some(netns.clone()), host_veth);
    let mut add = Adding { req, deps, ipam: &ipam, state_dir, netns, record, recorded: false };
    add.finish_what_a_killed_add_left()?;
    // A panic must not skip the unwinding: it becomes an error like any other.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| add.phases(hooks)))
        .unwrap_or_else(|p| Err(Error::Internal(crate::error::panic_message(&p))));
    outcome.map_err(|cause| add.unwind(cause))
}

struct Adding<'a> {
    req: &'a Request,
    deps: &'a Deps<'a>,
    ipam: &'a IpamMode,
    state_dir: PathBuf,
    netns: PathBuf,
    /// Its `undo` is the rollback list.
    record: Record,
    /// The record is on disk (and so ours to remove when the unwinding succeeds).
    recorded: bool,
}

impl Adding<'_> {
    fn phases<'h>(&mut self, hooks: impl FnOnce() -> Result<&'h dyn Hooks>) -> Result<CniResult> {
        let hooks = hooks()?;
        let plan = self.plan(hooks)?;
        crash::after("planned");
        let (plan, reserved) = self.reserve(plan)?;
        crash::after("reserved");
        let topology = topology::of(&self.req.conf);
        let bridge = topology.prepare(self.deps.kernel.node(), &self.req.conf, &reserved)?;
        crash::after("bridge-ready");
        let ips: Vec<IpAddr> = reserved.iter().map(|r| r.ip).collect();
        super::overlap::check_addresses(self.deps.kernel.node(), &ips, bridge.as_ref())?;
        let macs = Macs::for_attachment(&self.req.container_id, &self.req.ifname, &plan);
        let result = self.decide_result(&plan, &reserved, bridge.as_ref(), &macs, topology.as_ref());
        let rules = self.decide_rules(hooks, &result, &reserved, topology.as_ref())?;
        crash::after("rules-decided");
        self.record_intent(&rules)?;
        crash::after("recorded-intent");
        let applying = self.start_firewall(&rules)?;
        crash::after("firewall-started");
        let pod = self.deps.kernel.pod(&self.netns)?;
        let wiring = wiring::Wiring { req: self.req, node: self.deps.kernel.node(), pod: pod.as_ref(), topology: topology.as_ref() };
        let (host, pod_index) = wiring.create_veth(&self.record.host_veth, &plan, &macs, bridge.as_ref(), &reserved)?;
        crash::after("veth-created");
        wiring.address_pod(pod_index, macs.pod, &reserved)?;
        crash::after("pod-addressed");
        wiring.configure_host(&host, &reserved)?;
        crash::after("host-configured");
        // The pod's interface comes up only once its rules are in place: no packet passes unfiltered.
        applying.wait()?;
        crash::after("firewall-applied");
        wiring.bring_up_pod(&host, pod_index, &reserved, &result.routes)?;
        crash::after("pod-up");
        self.record_complete(&result)?;
        crash::after("recorded");
        Ok(result)
    }

    /// A record this attachment already has: a complete one means a duplicate ADD (refused, the record and
    /// everything it names are left alone); an incomplete one is what a killed ADD left, undone first.
    fn finish_what_a_killed_add_left(&mut self) -> Result<()> {
        let path = record::path(&self.state_dir, &self.req.conf.name, &self.req.container_id, &self.req.ifname);
        record::recover(&path);
        match Record::load(&path) {
            Ok(Some(old)) if old.complete => Err(Error::Duplicate(format!(
                "container {} ifname {} is already attached to network {}: duplicate ADD (a previous DEL did not run; DEL it first)",
                self.req.container_id, self.req.ifname, self.req.conf.name
            ))),
            Ok(Some(old)) => {
                log::warn!("{}/{}: a previous ADD did not finish; undoing what it did first", old.container_id, old.ifname);
                let errors = undo::unwind(self.deps, &old.undo);
                if let Some(e) = errors.into_iter().next() {
                    return Err(Error::TryAgain(format!("cannot undo what a previous, unfinished ADD of this attachment did: {e}")));
                }
                Record::remove(&path)
            }
            Ok(None) => Ok(()),
            // Unreadable (a power loss mid-write): DEL by name would handle it; ADD starts afresh.
            Err(e) => {
                log::warn!("{e}: ignoring the unreadable record");
                Record::remove(&path)
            }
        }
    }

    /// pre-ADD hooks see and may change the plan before anything is reserved.
    fn plan(&self, hooks: &dyn Hooks) -> Result<Plan> {
        let routes = self.ipam.ranges().map(|c| c.routes.clone()).unwrap_or_default();
        let plan = Plan::from_request(self.req, &routes)?;
        let plan = hooks.pre_add(self.req, plan, self.ipam.ranges())?;
        log::debug!("step: pre-add hooks done");
        Ok(plan)
    }

    /// A plugin's reservation is recorded before the plugin is called: only its DEL can undo what it did,
    /// and a killed ADD leaves a record that DEL and GC replay. The built-in IPAM's needs no record yet: its
    /// reservation files name their owner, which DEL by name and GC's sweep go by (one file fewer per ADD,
    /// and files cost, up to 0.6 ms each, in a directory of 1,000 pods on this machine's disk).
    fn reserve(&mut self, plan: Plan) -> Result<(Plan, Vec<Reserved>)> {
        let (how, undo) = reserve::prepare(self.req, self.ipam, &plan)?;
        self.record.undo.push(undo);
        if matches!(how, reserve::Reservation::Plugin(_)) {
            self.write_record()?;
        }
        let (plan, reserved) = match reserve::reserve(self.req, &how, plan) {
            Ok(r) => r,
            Err(e) => {
                // A plugin's failed ADD reserved nothing: no DEL of it to run, and none to fail.
                if matches!(&e, Error::Ipam(crate::ipam::Error::Delegated { .. })) {
                    self.record.undo.pop();
                }
                return Err(e);
            }
        };
        reserve::fill_in(self.record.undo.last_mut().expect("pushed above"), &reserved);
        let ips: Vec<String> = reserved.iter().map(|r| r.ip.to_string()).collect();
        log::info!("{}/{}: reserved {}", self.req.container_id, self.req.ifname, ips.join(", "));
        Ok((plan, reserved))
    }

    /// Every field of the result is decided before the kernel is touched (we choose the MACs), so post-ADD
    /// hooks can judge it and their rules go into the same firewall change as masquerade.
    fn decide_result(&self, plan: &Plan, reserved: &[Reserved], bridge: Option<&LinkInfo>, macs: &Macs, topology: &dyn Topology) -> CniResult {
        let mtu = Some(plan.mtu.unwrap_or(DEFAULT_MTU));
        let veth_end = |name: &str, mac: &[u8; 6], sandbox: Option<String>| Interface { name: name.into(), mac: mac_text(mac), mtu, sandbox };
        let (interfaces, pod_index) = wasmcni_hooks_sdk::layout::interfaces(
            bridge.map(|b| Interface { name: b.name.clone(), mac: b.mac.clone(), mtu: b.mtu, sandbox: None }),
            veth_end(&self.record.host_veth, &macs.host, None),
            veth_end(&self.req.ifname, &macs.pod, Some(self.netns.display().to_string())),
        );
        let ips = reserved
            .iter()
            .map(|r| IpConfig { address: pod_address(r), gateway: Some(r.range.gateway), interface: Some(pod_index as usize) })
            .collect();
        let mut routes: Vec<Route> = reserved
            .iter()
            .filter(|_| topology.default_routes(&self.req.conf))
            .map(|r| Route::new(default_route(r.range.gateway), Some(r.range.gateway)))
            .collect();
        // Only what the pod gets: routes of a family it has an address in.
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

    /// The attachment's firewall state: masquerade (ipMasq) and the rules post-ADD hooks return.
    fn decide_rules(&self, hooks: &dyn Hooks, result: &CniResult, reserved: &[Reserved], topology: &dyn Topology) -> Result<(Backend, AttachmentRules)> {
        let conf = &self.req.conf;
        let mut rules = AttachmentRules::new(&conf.name, &self.req.container_id, &self.req.ifname, &self.record.host_veth);
        rules.match_by_address = topology.match_by_address();
        rules.addresses = reserved.iter().map(|r| r.ip).collect();
        if conf.ip_masq {
            let sources = reserved.iter().map(|r| (r.ip, r.range.subnet)).collect();
            rules.masquerade = Some(Masquerade { sources, except: conf.non_masquerade_cidrs() });
        }
        rules.hooks = hooks.post_add(self.req, result)?;
        log::debug!("step: post-add hooks done");
        Ok((self.deps.firewalls.choose(conf.firewall_backend()), rules))
    }

    /// Pushes the undo of every change still to come and writes the record: from here on, whatever happens
    /// to this process, DEL and GC find all of it.
    fn record_intent(&mut self, (backend, rules): &(Backend, AttachmentRules)) -> Result<()> {
        if !rules.is_empty() {
            self.record.undo.push(Undo::Firewall { backend: *backend, rules: rules.clone() });
        }
        self.record.undo.push(Undo::DeleteHostLink { name: self.record.host_veth.clone(), if_alias: None });
        self.write_record()?;
        Ok(())
    }

    fn write_record(&mut self) -> Result<()> {
        self.record.write(&self.state_dir)?;
        self.recorded = true;
        Ok(())
    }

    fn start_firewall(&self, (backend, rules): &(Backend, AttachmentRules)) -> Result<Box<dyn crate::firewall::Applying>> {
        if rules.is_empty() {
            return Ok(Box::new(crate::firewall::Done(Ok(()))));
        }
        Ok(self.deps.firewalls.get(*backend).apply(rules)?)
    }

    fn record_complete(&mut self, result: &CniResult) -> Result<()> {
        self.record.result = result.clone();
        self.record.complete = true;
        self.record.write(&self.state_dir)?;
        Ok(())
    }

    /// Undoes every recorded step last-first. The record goes too when that worked (never one a previous,
    /// successful ADD wrote: a duplicate ADD fails before recording anything); with undo errors it stays, so
    /// the runtime's DEL retries exactly what is left.
    fn unwind(&mut self, cause: Error) -> Error {
        // Nothing of ours may be deleted when the veth name was taken by something else: that step goes.
        if matches!(&cause, Error::Netlink(e) if wiring::is_taken(e)) {
            self.record.undo.retain(|s| !matches!(s, Undo::DeleteHostLink { .. }));
        }
        log::warn!("ADD {} failed, unwinding {} steps: {cause}", self.req.container_id, self.record.undo.len());
        let mut undo_errors: Vec<String> = undo::unwind(self.deps, &self.record.undo).iter().map(ToString::to_string).collect();
        if self.recorded && undo_errors.is_empty() {
            let path = record::path(&self.state_dir, &self.req.conf.name, &self.req.container_id, &self.req.ifname);
            if let Err(e) = Record::remove(&path) {
                undo_errors.push(e.to_string());
            }
        } else if !undo_errors.is_empty() && self.recorded {
            // What could not be undone is listed in the record: make sure the record says all of it.
            let _ = self.record.write(&self.state_dir);
        }
        if undo_errors.is_empty() {
            cause
        } else {
            Error::Rollback { cause: Box::new(cause), undo_errors }
        }
    }
}

fn pod_address(r: &Reserved) -> IpNet {
    IpNet::new(r.ip, r.range.subnet.prefix_len()).expect("prefix from a valid subnet")
}

fn default_route(gw: IpAddr) -> IpNet {
    match gw {
        IpAddr::V4(_) => "0.0.0.0/0".parse().expect("valid"),
        IpAddr::V6(_) => "::/0".parse().expect("valid"),
    }
}

/// The MACs of both veth ends. Chosen by us rather than the kernel so the result is known before the
/// kernel work: derived from the attachment (stable across re-ADDs), or the plan's for the pod side.
pub(super) struct Macs {
    pub host: [u8; 6],
    pub pod: [u8; 6],
}

impl Macs {
    fn for_attachment(id: &str, ifname: &str, plan: &Plan) -> Self {
        let derive = |side: &str| crate::naming::derived_mac(&format!("{id}/{ifname}/{side}"));
        Macs { host: derive("host"), pod: plan.mac.unwrap_or_else(|| derive("pod")) }
    }
}

fn mac_text(m: &[u8; 6]) -> String {
    crate::netaddr::hex(m, ":")
}
