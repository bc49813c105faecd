//! Per-attachment masquerade, laid out exactly like the reference plugins' (`CNI-` + hash chain, the same
//! comment on every rule) so tools and operators that know those chains recognise ours.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use super::Family;

/// The reference `utils.FormatChainName`: "CNI-" and the first 24 hex digits of sha512(network + id).
pub fn chain_name(network: &str, container_id: &str) -> String {
    let digest = Sha512::digest(format!("{network}{container_id}").as_bytes());
    let hex = crate::netaddr::hex(&digest, "");
    format!("CNI-{}", &hex[..24])
}

/// The reference `utils.FormatComment`.
pub fn comment(network: &str, container_id: &str) -> String {
    format!("{}{container_id}\"", comment_prefix(network))
}

/// What every masquerade comment of `network` starts with, up to the container id.
pub fn comment_prefix(network: &str) -> String {
    format!("name: \"{network}\" id: \"")
}

/// What one attachment's masquerade consists of; stored in the attachment record for DEL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Masquerade {
    pub chain: String,
    pub comment: String,
    /// Pod address and its subnet, per family.
    pub sources: Vec<(IpAddr, IpNet)>,
}

/// Quotes an argument for iptables-restore's tokenizer (double quotes, backslash escapes).
pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Masquerade {
    pub fn new(network: &str, container_id: &str, sources: Vec<(IpAddr, IpNet)>) -> Self {
        Masquerade { chain: chain_name(network, container_id), comment: comment(network, container_id), sources }
    }

    /// The `*nat` table input for iptables-restore --noflush: traffic to the pod's own subnet is left alone,
    /// everything else but multicast is masqueraded, and POSTROUTING jumps here for the pod's address.
    pub fn render_setup(&self, family: Family) -> String {
        let c = quote(&self.comment);
        let chain = &self.chain;
        let mut out = format!("*nat\n:{chain} - [0:0]\n");
        for (ip, subnet) in self.sources.iter().filter(|(ip, _)| Family::of(*ip) == family) {
            out += &format!("-A {chain} -d {subnet} -m comment --comment {c} -j ACCEPT\n");
            out += &format!("-A {chain} ! -d {} -m comment --comment {c} -j MASQUERADE\n", family.multicast());
            out += &format!("-A POSTROUTING -s {ip} -m comment --comment {c} -j {chain}\n");
        }
        out + "COMMIT\n"
    }

    /// Deletes, from an `iptables-save -t nat` dump, our POSTROUTING jumps and, once no jump is left, the
    /// chain. The chain name (the reference scheme) ignores ifname, so another interface of the same
    /// container on this network shares it: only the jumps for our own addresses go. Without known
    /// addresses (DEL by name) every jump goes. None when nothing of ours is there.
    pub fn render_teardown(&self, saved_nat: &str) -> Option<String> {
        if self.sources.is_empty() {
            return super::render_chain_teardown("nat", &self.chain, saved_nat);
        }
        let jump = format!(" -j {}", self.chain);
        let ours = |l: &str| self.sources.iter().any(|(ip, _)| l.contains(&format!(" -s {} ", crate::netaddr::host_net(*ip))));
        let jumps: Vec<&str> = saved_nat.lines().filter(|l| l.starts_with("-A POSTROUTING ") && l.ends_with(&jump)).collect();
        let (mine, others): (Vec<&str>, Vec<&str>) = jumps.into_iter().partition(|l| ours(l));
        if !others.is_empty() {
            if mine.is_empty() {
                return None;
            }
            let deletes: String = mine.iter().map(|j| format!("-D{}\n", &j[2..])).collect();
            return Some(format!("*nat\n{deletes}COMMIT\n"));
        }
        super::render_chain_teardown("nat", &self.chain, saved_nat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_reference_scheme() {
        let c = chain_name("mynet", "abc");
        assert_eq!(c.len(), 28);
        assert!(c.starts_with("CNI-"));
        assert_eq!(c, chain_name("mynet", "abc"));
        assert_ne!(c, chain_name("mynet", "abd"));
        assert_eq!(comment("mynet", "abc"), r#"name: "mynet" id: "abc""#);
    }

    fn masq() -> Masquerade {
        Masquerade::new("net", "ctr", vec![("10.22.0.5".parse().unwrap(), "10.22.0.0/24".parse().unwrap())])
    }

    #[test]
    fn setup_renders_the_three_reference_rules() {
        let m = masq();
        let text = m.render_setup(Family::V4);
        let c = &m.chain;
        assert_eq!(
            text,
            format!(
                "*nat\n:{c} - [0:0]\n-A {c} -d 10.22.0.0/24 -m comment --comment \"name: \\\"net\\\" id: \\\"ctr\\\"\" -j ACCEPT\n\
                 -A {c} ! -d 224.0.0.0/4 -m comment --comment \"name: \\\"net\\\" id: \\\"ctr\\\"\" -j MASQUERADE\n\
                 -A POSTROUTING -s 10.22.0.5 -m comment --comment \"name: \\\"net\\\" id: \\\"ctr\\\"\" -j {c}\nCOMMIT\n"
            )
        );
    }

    #[test]
    fn teardown_deletes_jumps_then_the_chain_and_nothing_when_absent() {
        let m = masq();
        let c = &m.chain;
        let saved = format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:{c} - [0:0]\n:CNI-other - [0:0]\n\
             -A POSTROUTING -s 10.22.0.5/32 -m comment --comment \"name: \\\"net\\\" id: \\\"ctr\\\"\" -j {c}\n\
             -A POSTROUTING -s 10.22.0.6/32 -j CNI-other\n-A {c} -d 10.22.0.0/24 -j ACCEPT\nCOMMIT\n"
        );
        let out = m.render_teardown(&saved).unwrap();
        assert_eq!(
            out,
            format!(
                "*nat\n-D POSTROUTING -s 10.22.0.5/32 -m comment --comment \"name: \\\"net\\\" id: \\\"ctr\\\"\" -j {c}\n\
                 -F {c}\n-X {c}\nCOMMIT\n"
            )
        );
        assert!(m.render_teardown("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n").is_none());
    }

    #[test]
    fn teardown_keeps_the_chain_another_interface_still_uses() {
        let m = masq();
        let c = &m.chain;
        let saved = format!(
            "*nat\n:{c} - [0:0]\n-A POSTROUTING -s 10.22.0.5/32 -m comment --comment x -j {c}\n\
             -A POSTROUTING -s 10.22.0.9/32 -m comment --comment x -j {c}\nCOMMIT\n"
        );
        let out = m.render_teardown(&saved).unwrap();
        assert_eq!(out, format!("*nat\n-D POSTROUTING -s 10.22.0.5/32 -m comment --comment x -j {c}\nCOMMIT\n"));
    }
}
