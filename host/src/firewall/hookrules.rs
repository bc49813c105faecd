//! Hook rules rendered into filter-table chains the host owns: one chain per attachment and hook, reached
//! from the shared WASMCNI-FORWARD chain (hooked into FORWARD) by rules matching the pod's host veth.
//! Hooks return data; only this module writes iptables text, so DEL and GC can remove it without the hook.

use ipnet::IpNet;

use super::masq::quote;
use crate::naming;
use super::Family;

pub const SHARED_CHAIN: &str = "WASMCNI-FORWARD";
/// Where node-wide locks live (tmpfs: a lock never outlives a boot).
pub const LOCK_DIR: &str = "/run/wasmcni";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Any,
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Accept,
    Drop,
    Reject,
}

/// A validated rule (see hooks::validate for the checks).
#[derive(Debug, Clone, PartialEq)]
pub struct HookRule {
    pub direction: Direction,
    pub protocol: Protocol,
    pub ports: Option<(u16, u16)>,
    pub peer: Option<IpNet>,
    pub action: Action,
    pub log_prefix: Option<String>,
}

/// One hook's rules for one attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct HookChain {
    pub chain: String,
    pub comment: String,
    pub rules: Vec<HookRule>,
}

impl HookChain {
    pub fn new(network: &str, container_id: &str, ifname: &str, hook: &str, rules: Vec<HookRule>) -> Self {
        HookChain {
            chain: naming::hook_chain(network, container_id, ifname, hook),
            comment: naming::hook_comment(network, container_id, ifname, hook),
            rules,
        }
    }
}

/// How FORWARD tells a pod's traffic apart: by its node-side veth (routed pods), or by its address
/// (bridged pods, whose routed traffic enters FORWARD from the bridge).
pub enum PodMatch<'a> {
    Veth(&'a str),
    Address(std::net::IpAddr),
}

impl PodMatch<'_> {
    /// (from the pod, to the pod)
    fn matches(&self) -> (String, String) {
        match self {
            PodMatch::Veth(v) => (format!("-i {v}"), format!("-o {v}")),
            PodMatch::Address(ip) => {
                let ip = crate::netaddr::host_net(*ip);
                (format!("-s {ip}"), format!("-d {ip}"))
            }
        }
    }
}

/// The filter-table input creating `chains` for the attachment `pod`.
/// Rules whose peer is of the other family are left out; rules without a peer apply to every family.
pub fn render(chains: &[HookChain], pod: &PodMatch, family: Family) -> String {
    let (from_pod, to_pod) = pod.matches();
    let mut out = String::from("*filter\n");
    for c in chains {
        out += &format!(":{} - [0:0]\n", c.chain);
    }
    for c in chains {
        let comment = format!("-m comment --comment {}", quote(&c.comment));
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
                out += &format!("-A {} {m} {comment} -j LOG --log-prefix {}\n", c.chain, quote(&format!("{prefix} ")));
            }
            // accept = RETURN: it ends this hook's chain, but an ACCEPT would end FORWARD and skip every other
            // chain, including the peer pod's ingress rules.
            let target = match r.action {
                Action::Accept => "RETURN",
                Action::Drop => "DROP",
                Action::Reject => "REJECT",
            };
            out += &format!("-A {} {m} {comment} -j {target}\n", c.chain);
        }
    }
    for c in chains {
        let comment = format!("-m comment --comment {}", quote(&c.comment));
        out += &format!("-A {SHARED_CHAIN} {from_pod} {comment} -j {}\n", c.chain);
        out += &format!("-A {SHARED_CHAIN} {to_pod} {comment} -j {}\n", c.chain);
    }
    out + "COMMIT\n"
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

impl super::Iptables {
    /// Creates the shared chain if it is missing, under a lock so concurrent ADDs cannot both create it (a
    /// second declaration would flush the first one's jumps). The chain is per node, not per network, so the
    /// lock is too: `lock_dir` is a fixed node-wide directory (LOCK_DIR), whatever the netconf's stateDir.
    pub fn ensure_shared_chain(&self, family: Family, lock_dir: &std::path::Path) -> Result<(), super::Error> {
        let path = lock_dir.join("firewall.lock");
        let _lock = crate::fsutil::lock(&path, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|source| super::Error::Lock { path: path.clone(), source })?;
        let saved = self.save(family, Some("filter"))?;
        if !super::declares_chain(&saved, SHARED_CHAIN) {
            self.restore(family, &render_shared_setup())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(direction: Direction, protocol: Protocol, ports: Option<(u16, u16)>, peer: Option<&str>, action: Action) -> HookRule {
        HookRule { direction, protocol, ports, peer: peer.map(|p| p.parse().unwrap()), action, log_prefix: None }
    }

    #[test]
    fn chain_names_fit_and_differ_per_hook() {
        let a = HookChain::new("net", "ctr", "eth0", "guard", vec![]);
        let b = HookChain::new("net", "ctr", "eth0", "other", vec![]);
        assert_eq!(a.chain.len(), 28);
        assert_ne!(a.chain, b.chain);
    }

    #[test]
    fn renders_direction_peer_ports_and_log() {
        let mut drop = rule(Direction::Egress, Protocol::Tcp, Some((8080, 8080)), Some("203.0.113.0/24"), Action::Drop);
        drop.log_prefix = Some("guard".into());
        let c = HookChain::new(
            "net",
            "ctr",
            "eth0",
            "guard",
            vec![
                drop,
                rule(Direction::Ingress, Protocol::Udp, Some((53, 60)), None, Action::Accept),
                rule(Direction::Ingress, Protocol::Any, None, Some("fd00::/8"), Action::Reject),
            ],
        );
        let text = render(std::slice::from_ref(&c), &PodMatch::Veth("wcniabc"), Family::V4);
        let ch = &c.chain;
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
        assert!(render(&[c], &PodMatch::Veth("wcniabc"), Family::V6).contains("-s fd00::/8"));
    }
}
