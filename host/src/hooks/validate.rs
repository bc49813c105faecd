//! What a hook returns is untrusted input: every field is parsed and checked before the host acts on it.
//! Errors name the field, so "hook X: field ips[0]: ..." tells the hook author exactly what to fix.

use std::net::IpAddr;

use ipnet::IpNet;

use super::engine::wit;
use crate::cni::conf::Dns;
use crate::cni::result::Route;
use crate::firewall::{Action, Direction, HookRule, Protocol};
use crate::ipam::IpamConfig;
use crate::netaddr::parse_mac;
use crate::plan::Plan;

/// More rules than this from one hook is a bug, not a policy.
pub const MAX_RULES: usize = 256;
/// Routes a pre-ADD hook may give the pod (each is a netlink request on the per-pod path).
pub const MAX_ROUTES: usize = 32;
/// DNS entries a hook may put into the result (resolv.conf uses 3 nameservers and 6 search domains).
pub const MAX_NAMESERVERS: usize = 8;
pub const MAX_SEARCH: usize = 16;
pub const MAX_OPTIONS: usize = 16;
/// A DNS name or resolver option (a name is at most 253 characters).
pub const MAX_DNS_TEXT: usize = 253;

fn limit(field: &str, n: usize, max: usize) -> Result<(), String> {
    if n > max {
        return Err(format!("field {field}: {n} entries is more than the limit of {max}"));
    }
    Ok(())
}

fn dns_text(field: &str, s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_DNS_TEXT || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("field {field}: must be 1-{MAX_DNS_TEXT} printable characters without spaces"));
    }
    Ok(())
}

/// A hook's text quoted in an error, bounded.
fn shown(s: &str) -> String {
    format!("{:?}", super::sanitize::bounded(s, 64))
}

fn ip(field: &str, s: &str) -> Result<IpAddr, String> {
    s.trim().parse().map_err(|_| format!("field {field}: {} is not an IP address", shown(s)))
}

/// A CIDR, normalized to its network, or a bare address as its host prefix: what the SDK's parse_cidr
/// accepts, so a rule that passes a hook's native tests passes here too.
fn cidr(field: &str, s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("field {field}: {} is not a CIDR or an address", shown(s)))
}

pub fn plan(p: wit::Plan, ipam: Option<&IpamConfig>) -> Result<Plan, String> {
    if ipam.is_none() && !p.ips.is_empty() {
        return Err("field ips: requesting addresses needs an IPAM config with subnet/ranges the host can read".into());
    }
    let no_ranges = IpamConfig { ranges: vec![], routes: vec![], data_dir: Default::default() };
    let ipam = ipam.unwrap_or(&no_ranges);
    let ranges_known = !ipam.ranges.is_empty();
    let mut requested_ips = Vec::new();
    for (i, s) in p.ips.iter().enumerate() {
        let field = format!("ips[{i}]");
        let addr = ip(&field, s)?;
        let Some((set, range)) =
            ipam.ranges.iter().enumerate().find_map(|(n, set)| set.iter().find(|r| r.contains(addr)).map(|r| (n, r)))
        else {
            return Err(format!("field {field}: {addr} is outside the network's ranges"));
        };
        if addr == range.gateway {
            return Err(format!("field {field}: {addr} is the gateway"));
        }
        let same_set = |a: &IpAddr| ipam.ranges[set].iter().any(|r| r.contains(*a));
        if requested_ips.iter().any(same_set) {
            return Err(format!("field {field}: only one address per range set ({addr} shares one with another)"));
        }
        requested_ips.push(addr);
    }
    limit("routes", p.routes.len(), MAX_ROUTES)?;
    limit("dns.nameservers", p.dns.nameservers.len(), MAX_NAMESERVERS)?;
    limit("dns.search", p.dns.search.len(), MAX_SEARCH)?;
    limit("dns.options", p.dns.options.len(), MAX_OPTIONS)?;
    let mut routes = Vec::new();
    for (i, r) in p.routes.iter().enumerate() {
        let dst = cidr(&format!("routes[{i}].dst"), &r.dst)?;
        let gw = match &r.gw {
            Some(g) => {
                let field = format!("routes[{i}].gw");
                let gw = ip(&field, g)?;
                if gw.is_ipv4() != dst.addr().is_ipv4() {
                    return Err(format!("field {field}: {gw} is not of the same family as {dst}"));
                }
                // The pod's address has no prefix route: only the gateway is on-link.
                if ranges_known && !ipam.ranges.iter().flatten().any(|r| r.gateway == gw) {
                    return Err(format!("field {field}: {gw} is not the pod's gateway (a routed pod reaches only its gateway)"));
                }
                Some(gw)
            }
            None => None,
        };
        routes.push(Route::new(dst, gw));
    }
    if let Some(mtu) = p.mtu {
        if !crate::cni::conf::MTU_RANGE.contains(&mtu) {
            return Err(format!("field mtu: {mtu} is outside {}", crate::cni::conf::mtu_range_text()));
        }
    }
    let mac = p.mac.map(|m| parse_mac(&super::sanitize::bounded(&m, 64)).map_err(|e| format!("field mac: {e}"))).transpose()?;
    for (i, ns) in p.dns.nameservers.iter().enumerate() {
        ip(&format!("dns.nameservers[{i}]"), ns)?;
    }
    if let Some(d) = &p.dns.domain {
        dns_text("dns.domain", d)?;
    }
    for (i, d) in p.dns.search.iter().enumerate() {
        dns_text(&format!("dns.search[{i}]"), d)?;
    }
    for (i, o) in p.dns.options.iter().enumerate() {
        dns_text(&format!("dns.options[{i}]"), o)?;
    }
    let dns = Dns { nameservers: p.dns.nameservers, domain: p.dns.domain, search: p.dns.search, options: p.dns.options };
    Ok(Plan { requested_ips, routes, mtu: p.mtu, mac, dns })
}

pub fn rules(rules: Vec<wit::Rule>) -> Result<Vec<HookRule>, String> {
    if rules.len() > MAX_RULES {
        return Err(format!("{} rules is more than the limit of {MAX_RULES}", rules.len()));
    }
    rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let field = |f: &str| format!("rules[{i}].{f}");
            let protocol = match r.protocol {
                wit::Protocol::Any => Protocol::Any,
                wit::Protocol::Tcp => Protocol::Tcp,
                wit::Protocol::Udp => Protocol::Udp,
                wit::Protocol::Icmp => Protocol::Icmp,
            };
            let ports = match r.ports {
                None => None,
                Some(p) => {
                    if !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
                        return Err(format!("field {}: ports need protocol tcp or udp", field("ports")));
                    }
                    if p.start == 0 || p.start > p.end {
                        return Err(format!("field {}: {}-{} is not a valid port range", field("ports"), p.start, p.end));
                    }
                    Some((p.start, p.end))
                }
            };
            let peer = r.peer.as_deref().map(|p| cidr(&field("peer"), p)).transpose()?;
            if let Some(prefix) = &r.log_prefix {
                if prefix.is_empty() || prefix.len() > 28 || !prefix.chars().all(|c| c.is_ascii_graphic() || c == ' ') || prefix.contains(['"', '\\']) {
                    return Err(format!("field {}: must be 1-28 printable characters without quotes", field("log-prefix")));
                }
            }
            Ok(HookRule {
                direction: match r.direction {
                    wit::Direction::Ingress => Direction::Ingress,
                    wit::Direction::Egress => Direction::Egress,
                },
                protocol,
                ports,
                peer,
                action: match r.action {
                    wit::Action::Accept => Action::Accept,
                    wit::Action::Drop => Action::Drop,
                    wit::Action::Reject => Action::Reject,
                },
                log_prefix: r.log_prefix,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ipam() -> IpamConfig {
        IpamConfig::parse(&json!({"subnet": "10.5.0.0/24"})).unwrap()
    }

    fn wplan(ips: &[&str]) -> wit::Plan {
        wit::Plan {
            ips: ips.iter().map(|s| s.to_string()).collect(),
            routes: vec![],
            mtu: None,
            mac: None,
            dns: wit::Dns { nameservers: vec![], domain: None, search: vec![], options: vec![] },
        }
    }

    #[test]
    fn plans_past_the_limits_are_refused() {
        let mut p = wplan(&[]);
        p.routes = (0..10_000).map(|i| wit::Route { dst: format!("10.{}.{}.0/24", i / 256, i % 256), gw: None }).collect();
        assert!(plan(p, Some(&ipam())).unwrap_err().contains("field routes: 10000 entries is more than the limit of 32"));
        let mut p = wplan(&[]);
        p.dns.nameservers = vec!["10.0.0.53".into(); 9];
        assert!(plan(p, Some(&ipam())).unwrap_err().contains("dns.nameservers"));
        let mut p = wplan(&[]);
        p.dns.search = vec!["x".repeat(300)];
        assert!(plan(p, Some(&ipam())).unwrap_err().contains("dns.search[0]"));
        let mut p = wplan(&["1".repeat(1_000_000).as_str()]);
        p.ips.truncate(1);
        let err = plan(p, Some(&ipam())).unwrap_err();
        assert!(err.len() < 200, "a hook's huge value is not echoed whole: {} bytes", err.len());
    }

    #[test]
    fn plan_accepts_good_and_names_bad_fields() {
        let p = plan(wplan(&["10.5.0.9"]), Some(&ipam())).unwrap();
        assert_eq!(p.requested_ips, vec!["10.5.0.9".parse::<IpAddr>().unwrap()]);
        for (ips, needle) in [
            (vec!["10.6.0.9"], "ips[0]: 10.6.0.9 is outside"),
            (vec!["10.5.0.1"], "ips[0]: 10.5.0.1 is the gateway"),
            (vec!["nope"], "ips[0]"),
            (vec!["10.5.0.9", "10.5.0.10"], "ips[1]"),
        ] {
            let err = plan(wplan(&ips), Some(&ipam())).unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let mut p = wplan(&[]);
        p.mtu = Some(20);
        assert!(plan(p, Some(&ipam())).unwrap_err().contains("field mtu"));
        let mut p = wplan(&[]);
        p.routes = vec![wit::Route { dst: "192.168.0.0/16".into(), gw: Some("10.9.9.9".into()) }];
        assert!(plan(p, Some(&ipam())).unwrap_err().contains("routes[0].gw"));
        let mut p = wplan(&[]);
        p.mac = Some("01:00:00:00:00:01".into());
        assert!(plan(p, Some(&ipam())).unwrap_err().contains("multicast"));
    }

    fn wrule(protocol: wit::Protocol, ports: Option<(u16, u16)>, peer: Option<&str>) -> wit::Rule {
        wit::Rule {
            direction: wit::Direction::Egress,
            protocol,
            ports: ports.map(|(start, end)| wit::PortRange { start, end }),
            peer: peer.map(String::from),
            action: wit::Action::Drop,
            log_prefix: None,
        }
    }

    #[test]
    fn rules_are_checked_field_by_field() {
        let ok = rules(vec![wrule(wit::Protocol::Tcp, Some((80, 80)), Some("203.0.113.7/24"))]).unwrap();
        assert_eq!(ok[0].peer.unwrap().to_string(), "203.0.113.0/24");
        // A bare address, as the SDK's RuleBuilder::peer takes it, is its host prefix.
        let host = rules(vec![wrule(wit::Protocol::Tcp, None, Some("169.254.169.254"))]).unwrap();
        assert_eq!(host[0].peer.unwrap().to_string(), "169.254.169.254/32");
        assert!(rules(vec![wrule(wit::Protocol::Icmp, Some((1, 2)), None)]).unwrap_err().contains("rules[0].ports"));
        assert!(rules(vec![wrule(wit::Protocol::Udp, Some((9, 3)), None)]).unwrap_err().contains("rules[0].ports"));
        assert!(rules(vec![wrule(wit::Protocol::Any, None, Some("x"))]).unwrap_err().contains("rules[0].peer"));
        let mut r = wrule(wit::Protocol::Any, None, None);
        r.log_prefix = Some("bad\"quote".into());
        assert!(rules(vec![r]).unwrap_err().contains("log-prefix"));
        assert!(rules(vec![wrule(wit::Protocol::Any, None, None); MAX_RULES + 1]).unwrap_err().contains("limit"));
    }
}
