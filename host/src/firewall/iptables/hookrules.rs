//! Hook rules rendered into filter-table chains the host owns: one chain per attachment and hook, reached
//! from the shared WASMCNI-FORWARD chain (hooked into FORWARD) by rules matching the pod.

use sha2::{Digest, Sha512};

use super::masq::quote;
use crate::firewall::{Action, AttachmentRules, Direction, Family, Protocol};
use crate::naming::attachment_key;

pub const SHARED_CHAIN: &str = "WASMCNI-FORWARD";
pub const HOOK_COMMENT_PREFIX: &str = "wasmcni hook ";

/// One hook's rule chain for one attachment (iptables chain names are at most 28 characters).
pub fn chain_name(network: &str, container_id: &str, ifname: &str, hook: &str) -> String {
    let digest = Sha512::digest(format!("{}/{hook}", attachment_key(network, container_id, ifname)).as_bytes());
    format!("WCNI-{}", &crate::netaddr::hex(&digest, "")[..23])
}

/// The comment on every rule of that chain: "wasmcni hook <hook>: <attachment key>".
pub fn comment(network: &str, container_id: &str, ifname: &str, hook: &str) -> String {
    format!("{HOOK_COMMENT_PREFIX}{hook}: {}", attachment_key(network, container_id, ifname))
}

/// (from the pod, to the pod): by the node-side veth for routed pods, by address for bridged ones.
fn pod_matches(rules: &AttachmentRules, family: Family) -> Option<(String, String)> {
    if !rules.match_by_address {
        let v = &rules.host_veth;
        return Some((format!("-i {v}"), format!("-o {v}")));
    }
    let ip = rules.addresses.iter().find(|a| Family::of(**a) == family)?;
    let ip = crate::netaddr::host_net(*ip);
    Some((format!("-s {ip}"), format!("-d {ip}")))
}

/// The filter-table input creating the attachment's hook chains for `family`, or None without any. Rules
/// whose peer is of the other family are left out; rules without a peer apply to every family.
pub fn render(rules: &AttachmentRules, family: Family) -> Option<String> {
    let chains: Vec<_> = rules.hooks.iter().filter(|h| !h.rules.is_empty()).collect();
    if chains.is_empty() {
        return None;
    }
    let (from_pod, to_pod) = pod_matches(rules, family)?;
    let (net, id, ifname) = (&rules.network, &rules.container_id, &rules.ifname);
    let mut out = String::from("*filter\n");
    for c in &chains {
        out += &format!(":{} - [0:0]\n", chain_name(net, id, ifname, &c.hook));
    }
    for c in &chains {
        let chain = chain_name(net, id, ifname, &c.hook);
        let comment = format!("-m comment --comment {}", quote(&comment(net, id, ifname, &c.hook)));
        for r in c.rules.iter().filter(|r| r.peer.is_none_or(|p| Family::of(p.addr()) == family)) {
            let mut m = match r.direction {
                Direction::Ingress => to_pod.clone(),
                Direction::Egress => from_pod.clone(),
            };
            if let Some(peer) = r.peer {
                m += &match r.direction {
                    Direction::Ingress => format!(" -s {peer}"),
                    Direction::Egress => format!(" -d {peer}"),
                };
            }
            m += match (r.protocol, family) {
                (Protocol::Any, _) => "",
                (Protocol::Tcp, _) => " -p tcp",
                (Protocol::Udp, _) => " -p udp",
                (Protocol::Icmp, Family::V4) => " -p icmp",
                (Protocol::Icmp, Family::V6) => " -p ipv6-icmp",
            };
            if let Some((a, b)) = r.ports {
                m += &if a == b { format!(" --dport {a}") } else { format!(" --dport {a}:{b}") };
            }
            if let Some(prefix) = &r.log_prefix {
                out += &format!("-A {chain} {m} {comment} -j LOG --log-prefix {}\n", quote(&format!("{prefix} ")));
            }
            // accept = RETURN: it ends this hook's chain, but an ACCEPT would end FORWARD and skip every other
            // chain, including the peer pod's ingress rules.
            let target = match r.action {
                Action::Accept => "RETURN",
                Action::Drop => "DROP",
                Action::Reject => "REJECT",
            };
            out += &format!("-A {chain} {m} {comment} -j {target}\n");
        }
    }
    for c in &chains {
        let chain = chain_name(net, id, ifname, &c.hook);
        let comment = format!("-m comment --comment {}", quote(&comment(net, id, ifname, &c.hook)));
        out += &format!("-A {SHARED_CHAIN} {from_pod} {comment} -j {chain}\n");
        out += &format!("-A {SHARED_CHAIN} {to_pod} {comment} -j {chain}\n");
    }
    Some(out + "COMMIT\n")
}

/// How many rules `render` puts into each hook chain for `family` (CHECK compares the chains with it).
pub fn expected_rules(rules: &AttachmentRules, family: Family) -> Vec<(String, usize)> {
    rules
        .hooks
        .iter()
        .filter(|h| !h.rules.is_empty())
        .map(|c| {
            let n: usize = c
                .rules
                .iter()
                .filter(|r| r.peer.is_none_or(|p| Family::of(p.addr()) == family))
                .map(|r| if r.log_prefix.is_some() { 2 } else { 1 })
                .sum();
            (chain_name(&rules.network, &rules.container_id, &rules.ifname, &c.hook), n)
        })
        .collect()
}

/// Creates the shared chain and its FORWARD jump. Declaring an existing chain in --noflush mode flushes it,
/// so this must only run when the chain is absent (the caller checks under a lock). Established flows are
/// let through first: hook rules judge new connections, and replies to the pod's own traffic pass.
pub fn render_shared_setup() -> String {
    format!(
        "*filter\n:{SHARED_CHAIN} - [0:0]\n-I FORWARD -m comment --comment \"wasmcni hooks\" -j {SHARED_CHAIN}\n\
         -A {SHARED_CHAIN} -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"wasmcni hooks\" -j RETURN\nCOMMIT\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::{HookChain, HookRule};

    fn rule(direction: Direction, protocol: Protocol, ports: Option<(u16, u16)>, peer: Option<&str>, action: Action) -> HookRule {
        HookRule { direction, protocol, ports, peer: peer.map(|p| p.parse().unwrap()), action, log_prefix: None }
    }

    #[test]
    fn chain_names_fit_and_differ_per_hook() {
        assert_eq!(chain_name("net", "ctr", "eth0", "guard").len(), 28);
        assert_ne!(chain_name("net", "ctr", "eth0", "guard"), chain_name("net", "ctr", "eth0", "other"));
    }

    #[test]
    fn renders_direction_peer_ports_and_log() {
        let mut drop = rule(Direction::Egress, Protocol::Tcp, Some((8080, 8080)), Some("203.0.113.0/24"), Action::Drop);
        drop.log_prefix = Some("guard".into());
        let mut att = AttachmentRules::new("net", "ctr", "eth0", "wcniabc");
        att.hooks = vec![HookChain {
            hook: "guard".into(),
            rules: vec![
                drop,
                rule(Direction::Ingress, Protocol::Udp, Some((53, 60)), None, Action::Accept),
                rule(Direction::Ingress, Protocol::Any, None, Some("fd00::/8"), Action::Reject),
            ],
        }];
        let text = render(&att, Family::V4).unwrap();
        let ch = chain_name("net", "ctr", "eth0", "guard");
        let cm = "-m comment --comment \"wasmcni hook guard: net/ctr/eth0\"";
        assert_eq!(
            text,
            format!(
                "*filter\n:{ch} - [0:0]\n\
                 -A {ch} -i wcniabc -d 203.0.113.0/24 -p tcp --dport 8080 {cm} -j LOG --log-prefix \"guard \"\n\
                 -A {ch} -i wcniabc -d 203.0.113.0/24 -p tcp --dport 8080 {cm} -j DROP\n\
                 -A {ch} -o wcniabc -p udp --dport 53:60 {cm} -j RETURN\n\
                 -A WASMCNI-FORWARD -i wcniabc {cm} -j {ch}\n-A WASMCNI-FORWARD -o wcniabc {cm} -j {ch}\nCOMMIT\n"
            )
        );
        assert!(render(&att, Family::V6).unwrap().contains("-s fd00::/8"));
        assert_eq!(expected_rules(&att, Family::V4), vec![(ch.clone(), 3)]);
        assert_eq!(expected_rules(&att, Family::V6), vec![(ch, 2)]);
    }

    #[test]
    fn bridged_pods_are_matched_by_their_address_of_the_family() {
        let mut att = AttachmentRules::new("net", "ctr", "eth0", "wcniabc");
        att.match_by_address = true;
        att.addresses = vec!["10.0.0.5".parse().unwrap()];
        att.hooks = vec![HookChain { hook: "g".into(), rules: vec![rule(Direction::Egress, Protocol::Any, None, None, Action::Drop)] }];
        assert!(render(&att, Family::V4).unwrap().contains("-A WASMCNI-FORWARD -s 10.0.0.5/32"));
        assert_eq!(render(&att, Family::V6), None, "no v6 address: no v6 rules");
    }
}
