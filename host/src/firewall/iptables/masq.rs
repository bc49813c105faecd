//! Per-attachment masquerade, laid out exactly like the reference plugins' (`CNI-` + hash chain, the same
//! comment on every rule) so tools and operators that know those chains recognise ours.

use std::net::IpAddr;

use sha2::{Digest, Sha512};

use crate::firewall::{Family, Masquerade};

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

/// Quotes an argument for iptables-restore's tokenizer (double quotes, backslash escapes).
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `*nat` table input for iptables-restore --noflush: traffic to the pod's own subnet and to the
/// `except` CIDRs (the cluster's pods) is left alone, everything else but multicast is masqueraded, and
/// POSTROUTING jumps here for the pod's address.
pub fn render_setup(network: &str, container_id: &str, masq: &Masquerade, family: Family) -> String {
    let c = quote(&comment(network, container_id));
    let chain = chain_name(network, container_id);
    let mut out = format!("*nat\n:{chain} - [0:0]\n");
    for (ip, subnet) in masq.sources.iter().filter(|(ip, _)| Family::of(*ip) == family) {
        out += &format!("-A {chain} -d {subnet} -m comment --comment {c} -j ACCEPT\n");
        for except in masq.except.iter().filter(|n| Family::of(n.addr()) == family && *n != subnet) {
            out += &format!("-A {chain} -d {except} -m comment --comment {c} -j ACCEPT\n");
        }
        out += &format!("-A {chain} ! -d {} -m comment --comment {c} -j MASQUERADE\n", family.multicast());
        out += &format!("-A POSTROUTING -s {ip} -m comment --comment {c} -j {chain}\n");
    }
    out + "COMMIT\n"
}

/// Deletes, from an `iptables-save -t nat` dump, the POSTROUTING jumps for `sources` and, once no jump is
/// left, the chain. The chain name (the reference scheme) ignores ifname, so another interface of the same
/// container on this network shares it: only the jumps for our own addresses go. Without known addresses
/// (cleanup by name) every jump goes. None when nothing of ours is there.
pub fn render_teardown(chain: &str, sources: &[IpAddr], saved_nat: &str) -> Option<String> {
    if sources.is_empty() {
        return super::saved::render_chain_teardown("nat", chain, saved_nat);
    }
    let jump = format!(" -j {chain}");
    let ours = |l: &str| sources.iter().any(|ip| l.contains(&format!(" -s {} ", crate::netaddr::host_net(*ip))));
    let jumps: Vec<&str> = saved_nat.lines().filter(|l| l.starts_with("-A POSTROUTING ") && l.ends_with(&jump)).collect();
    let (mine, others): (Vec<&str>, Vec<&str>) = jumps.into_iter().partition(|l| ours(l));
    if !others.is_empty() {
        if mine.is_empty() {
            return None;
        }
        let deletes: String = mine.iter().map(|j| format!("-D{}\n", &j[2..])).collect();
        return Some(format!("*nat\n{deletes}COMMIT\n"));
    }
    super::saved::render_chain_teardown("nat", chain, saved_nat)
}

/// What of the masquerade is missing from a nat-table dump: the chain, its rules (a flushed chain counts
/// as broken), and the POSTROUTING jump for each source of `family`.
pub fn check(chain: &str, masq: &Masquerade, family: Family, saved_nat: &str) -> Vec<String> {
    let sources: Vec<_> = masq.sources.iter().filter(|(ip, _)| Family::of(*ip) == family).collect();
    if sources.is_empty() {
        return Vec::new();
    }
    if !super::saved::declares_chain(saved_nat, chain) {
        return vec![format!("masquerade chain {chain} is missing")];
    }
    let mut missing = Vec::new();
    let own = format!("-A {chain} ");
    let rules: Vec<&str> = saved_nat.lines().filter(|l| l.starts_with(&own)).collect();
    if !rules.iter().any(|l| l.ends_with("-j MASQUERADE")) {
        missing.push(format!("masquerade chain {chain} has no MASQUERADE rule (flushed?)"));
    }
    for (ip, subnet) in &sources {
        if !rules.iter().any(|l| l.contains(&format!("-d {subnet} ")) && l.ends_with("-j ACCEPT")) {
            missing.push(format!("masquerade chain {chain} lacks the rule keeping {subnet} unmasqueraded"));
        }
        let jump = format!("-s {} ", crate::netaddr::host_net(*ip));
        if !saved_nat.lines().any(|l| l.starts_with("-A POSTROUTING ") && l.contains(&jump) && l.ends_with(&format!("-j {chain}"))) {
            missing.push(format!("the POSTROUTING jump of {ip} to masquerade chain {chain} is missing"));
        }
    }
    missing
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
        Masquerade { sources: vec![("10.22.0.5".parse().unwrap(), "10.22.0.0/24".parse().unwrap())], except: vec![] }
    }

    #[test]
    fn setup_renders_the_three_reference_rules_and_the_exceptions() {
        let text = render_setup("net", "ctr", &masq(), Family::V4);
        let c = chain_name("net", "ctr");
        let cm = "-m comment --comment \"name: \\\"net\\\" id: \\\"ctr\\\"\"";
        assert_eq!(
            text,
            format!(
                "*nat\n:{c} - [0:0]\n-A {c} -d 10.22.0.0/24 {cm} -j ACCEPT\n\
                 -A {c} ! -d 224.0.0.0/4 {cm} -j MASQUERADE\n-A POSTROUTING -s 10.22.0.5 {cm} -j {c}\nCOMMIT\n"
            )
        );
        let mut m = masq();
        m.except = vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
        let text = render_setup("net", "ctr", &m, Family::V4);
        assert!(text.contains(&format!("-A {c} -d 10.0.0.0/8 {cm} -j ACCEPT\n-A {c} ! -d 224.0.0.0/4")), "{text}");
        assert!(!text.contains("fd00::/8"), "the other family's exception stays out");
    }

    #[test]
    fn teardown_deletes_jumps_then_the_chain_and_nothing_when_absent() {
        let c = chain_name("net", "ctr");
        let ip: IpAddr = "10.22.0.5".parse().unwrap();
        let saved = format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:{c} - [0:0]\n:CNI-other - [0:0]\n\
             -A POSTROUTING -s 10.22.0.5/32 -m comment --comment \"name: \\\"net\\\" id: \\\"ctr\\\"\" -j {c}\n\
             -A POSTROUTING -s 10.22.0.6/32 -j CNI-other\n-A {c} -d 10.22.0.0/24 -j ACCEPT\nCOMMIT\n"
        );
        let out = render_teardown(&c, &[ip], &saved).unwrap();
        assert_eq!(
            out,
            format!(
                "*nat\n-D POSTROUTING -s 10.22.0.5/32 -m comment --comment \"name: \\\"net\\\" id: \\\"ctr\\\"\" -j {c}\n\
                 -F {c}\n-X {c}\nCOMMIT\n"
            )
        );
        assert!(render_teardown(&c, &[ip], "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n").is_none());
    }

    #[test]
    fn teardown_keeps_the_chain_another_interface_still_uses() {
        let c = chain_name("net", "ctr");
        let saved = format!(
            "*nat\n:{c} - [0:0]\n-A POSTROUTING -s 10.22.0.5/32 -m comment --comment x -j {c}\n\
             -A POSTROUTING -s 10.22.0.9/32 -m comment --comment x -j {c}\nCOMMIT\n"
        );
        let out = render_teardown(&c, &["10.22.0.5".parse().unwrap()], &saved).unwrap();
        assert_eq!(out, format!("*nat\n-D POSTROUTING -s 10.22.0.5/32 -m comment --comment x -j {c}\nCOMMIT\n"));
    }

    #[test]
    fn check_sees_a_flushed_chain_and_a_missing_jump() {
        let c = chain_name("net", "ctr");
        let full = format!(
            "*nat\n:{c} - [0:0]\n-A POSTROUTING -s 10.22.0.5/32 -m comment --comment x -j {c}\n\
             -A {c} -d 10.22.0.0/24 -m comment --comment x -j ACCEPT\n-A {c} ! -d 224.0.0.0/4 -m comment --comment x -j MASQUERADE\nCOMMIT\n"
        );
        assert!(check(&c, &masq(), Family::V4, &full).is_empty());
        let flushed = format!("*nat\n:{c} - [0:0]\n-A POSTROUTING -s 10.22.0.5/32 -m comment --comment x -j {c}\nCOMMIT\n");
        let missing = check(&c, &masq(), Family::V4, &flushed);
        assert!(missing.iter().any(|m| m.contains("no MASQUERADE rule")), "{missing:?}");
        let no_jump = full.replace(&format!("-A POSTROUTING -s 10.22.0.5/32 -m comment --comment x -j {c}\n"), "");
        assert!(check(&c, &masq(), Family::V4, &no_jump).iter().any(|m| m.contains("POSTROUTING jump")));
        assert_eq!(check(&c, &masq(), Family::V4, "*nat\nCOMMIT\n"), vec![format!("masquerade chain {c} is missing")]);
    }
}
