//! Calling a component built against contract 0.1.0: the host's (current) values converted to 0.1.0's
//! types and back. The records are the same but for the attachment, which 0.2.0 extended.

use super::engine::v0_1::wasmcni::hook::types as old;
use super::engine::wit;

pub fn level(l: old::Level) -> wit::Level {
    match l {
        old::Level::Error => wit::Level::Error,
        old::Level::Warn => wit::Level::Warn,
        old::Level::Info => wit::Level::Info,
        old::Level::Debug => wit::Level::Debug,
    }
}

/// 0.2.0's pod labels, annotations and service account do not exist for a 0.1.0 component.
pub fn attachment(a: &wit::Attachment) -> old::Attachment {
    old::Attachment {
        container_id: a.container_id.clone(),
        ifname: a.ifname.clone(),
        netns: a.netns.clone(),
        network: a.network.clone(),
        pod_namespace: a.pod_namespace.clone(),
        pod_name: a.pod_name.clone(),
        pod_uid: a.pod_uid.clone(),
        args: a.args.clone(),
        runtime_config: a.runtime_config.clone(),
        config: a.config.clone(),
    }
}

fn dns_down(d: &wit::Dns) -> old::Dns {
    old::Dns { nameservers: d.nameservers.clone(), domain: d.domain.clone(), search: d.search.clone(), options: d.options.clone() }
}

fn route_down(r: &wit::Route) -> old::Route {
    old::Route { dst: r.dst.clone(), gw: r.gw.clone() }
}

pub fn plan_down(p: &wit::Plan) -> old::Plan {
    old::Plan { ips: p.ips.clone(), routes: p.routes.iter().map(route_down).collect(), mtu: p.mtu, mac: p.mac.clone(), dns: dns_down(&p.dns) }
}

pub fn plan_up(p: old::Plan) -> wit::Plan {
    wit::Plan {
        ips: p.ips,
        routes: p.routes.into_iter().map(|r| wit::Route { dst: r.dst, gw: r.gw }).collect(),
        mtu: p.mtu,
        mac: p.mac,
        dns: wit::Dns { nameservers: p.dns.nameservers, domain: p.dns.domain, search: p.dns.search, options: p.dns.options },
    }
}

pub fn result_down(r: &wit::AddResult) -> old::AddResult {
    old::AddResult {
        interfaces: r.interfaces.iter().map(|i| old::Iface { name: i.name.clone(), mac: i.mac.clone(), sandbox: i.sandbox.clone() }).collect(),
        ips: r.ips.iter().map(|i| old::IpConfig { address: i.address.clone(), gateway: i.gateway.clone(), iface: i.iface }).collect(),
        routes: r.routes.iter().map(route_down).collect(),
        dns: dns_down(&r.dns),
    }
}

pub fn rule_up(r: old::Rule) -> wit::Rule {
    wit::Rule {
        direction: match r.direction {
            old::Direction::Ingress => wit::Direction::Ingress,
            old::Direction::Egress => wit::Direction::Egress,
        },
        protocol: match r.protocol {
            old::Protocol::Any => wit::Protocol::Any,
            old::Protocol::Tcp => wit::Protocol::Tcp,
            old::Protocol::Udp => wit::Protocol::Udp,
            old::Protocol::Icmp => wit::Protocol::Icmp,
        },
        ports: r.ports.map(|p| wit::PortRange { start: p.start, end: p.end }),
        peer: r.peer,
        action: match r.action {
            old::Action::Accept => wit::Action::Accept,
            old::Action::Drop => wit::Action::Drop,
            old::Action::Reject => wit::Action::Reject,
        },
        log_prefix: r.log_prefix,
    }
}

pub fn error_up(e: old::HookError) -> wit::HookError {
    wit::HookError { message: e.message }
}
