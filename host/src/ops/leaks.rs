//! What GC finds without a record: masquerade chains, hook chains and node-side veths that an older plugin
//! or a crash between a change and the record left behind. Each carries its attachment in our naming: the
//! reference comment `name: "<network>" id: "<id>"`, the hook comment `wasmcni hook <hook>: <network>/<id>/
//! <ifname>`, the veth alias `wasmcni <network>/<id>/<ifname>`. Parsing is pure; GC turns leaks into undo
//! steps and runs them like recorded ones.

use std::collections::{BTreeMap, BTreeSet};

use super::rollback::Undo;
use crate::firewall::{comment_prefix, quote, Family, Masquerade};
use crate::naming::{parse_attachment_key, HOOK_COMMENT_PREFIX, VETH_ALIAS_PREFIX};
use crate::netlink::LinkInfo;


/// One leaked attachment: `ifname` is None when the naming holds only the container (masquerade chains).
#[derive(Debug, Clone, PartialEq)]
pub struct Leak {
    pub container_id: String,
    pub ifname: Option<String>,
    pub undo: Undo,
}


/// Masquerade chains of `network` in an `iptables-save` dump, by container id. Only comments that start
/// with `name:` count: portmap's `dnat name: ...` rules are portmap's to clean.
pub fn masquerade(network: &str, saved: &str, family: Family) -> Vec<Leak> {
    // The comment as iptables-save quotes it, without its closing quote: up to the container id.
    let quoted = quote(&comment_prefix(network));
    let prefix = format!("--comment {}", &quoted[..quoted.len() - 1]);
    let ids: BTreeSet<String> = saved
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            Some(rest[..rest.find("\\\"\"")?].to_string())
        })
        .collect();
    ids.into_iter()
        .map(|id| Leak {
            undo: Undo::RemoveMasquerade { masq: Masquerade::new(network, &id, Vec::new()), families: vec![family] },
            container_id: id,
            ifname: None,
        })
        .collect()
}

/// Hook rule chains of `network` in a filter-table dump, by attachment.
pub fn hook_chains(network: &str, saved: &str, family: Family) -> Vec<Leak> {
    let prefix = format!("--comment \"{HOOK_COMMENT_PREFIX}");
    let mut found: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for line in saved.lines() {
        let Some(at) = line.find(&prefix) else { continue };
        let comment = &line[at + prefix.len()..];
        let Some(comment) = comment.split('"').next() else { continue };
        let Some((_hook, target)) = comment.split_once(": ") else { continue };
        let Some(key) = parse_attachment_key(target, network) else { continue };
        let chain = line
            .split_whitespace()
            .skip_while(|t| *t != "-j")
            .nth(1)
            .filter(|c| c.starts_with("WCNI-"))
            .or_else(|| line.strip_prefix("-A ").and_then(|r| r.split_whitespace().next()).filter(|c| c.starts_with("WCNI-")));
        if let Some(chain) = chain {
            found.entry(key).or_default().insert(chain.to_string());
        }
    }
    found
        .into_iter()
        .map(|((id, ifname), chains)| Leak {
            container_id: id,
            ifname: Some(ifname),
            undo: Undo::RemoveChains { family, table: "filter".into(), chains: chains.into_iter().collect() },
        })
        .collect()
}

/// Node-side veths of `network`, by the alias ADD wrote into them.
pub fn veths(network: &str, links: &[LinkInfo]) -> Vec<Leak> {
    links
        .iter()
        .filter_map(|l| {
            let (id, ifname) = parse_attachment_key(l.alias.as_deref()?.strip_prefix(VETH_ALIAS_PREFIX)?, network)?;
            Some(Leak { container_id: id, ifname: Some(ifname), undo: Undo::DeleteHostLink { name: l.name.clone() } })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAVED: &str = r#"*nat
:CNI-aaa - [0:0]
-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \"net\" id: \"gone\"" -j CNI-aaa
-A CNI-aaa -d 10.0.0.0/24 -m comment --comment "name: \"net\" id: \"gone\"" -j ACCEPT
-A CNI-bbb -m comment --comment "name: \"other\" id: \"x\"" -j MASQUERADE
-A CNI-DN-ccc -p tcp -m comment --comment "dnat name: \"net\" id: \"pm\"" -j DNAT
COMMIT
*filter
:WCNI-111 - [0:0]
-A WASMCNI-FORWARD -i wcni1 -m comment --comment "wasmcni hook guard: net/c/1/eth0" -j WCNI-111
-A WCNI-111 -i wcni1 -d 1.2.3.4/32 -m comment --comment "wasmcni hook guard: net/c/1/eth0" -j DROP
-A WCNI-222 -m comment --comment "wasmcni hook guard: other/c2/eth0" -j DROP
COMMIT
"#;

    #[test]
    fn finds_our_masquerade_chains_but_not_portmaps_or_other_networks() {
        let leaks = masquerade("net", SAVED, Family::V4);
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        assert_eq!(leaks[0].container_id, "gone");
        match &leaks[0].undo {
            Undo::RemoveMasquerade { masq, .. } => assert_eq!(masq.chain, crate::firewall::chain_name("net", "gone")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finds_hook_chains_by_attachment_with_slashes_in_the_id() {
        let leaks = hook_chains("net", SAVED, Family::V4);
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        assert_eq!((leaks[0].container_id.as_str(), leaks[0].ifname.as_deref()), ("c/1", Some("eth0")));
        assert_eq!(leaks[0].undo, Undo::RemoveChains { family: Family::V4, table: "filter".into(), chains: vec!["WCNI-111".into()] });
    }

    #[test]
    fn finds_veths_by_alias() {
        let link = |name: &str, alias: Option<&str>| LinkInfo {
            index: 1,
            name: name.into(),
            mac: String::new(),
            mtu: None,
            up: true,
            kind: Some("veth".into()),
            controller: None,
            promisc: false,
            alias: alias.map(String::from),
        };
        let links = [
            link("wcni1", Some(&crate::naming::veth_alias("net", "gone", "eth0"))),
            link("wcni2", Some(&crate::naming::veth_alias("other", "x", "eth0"))),
            link("eth0", None),
        ];
        let leaks = veths("net", &links);
        assert_eq!(leaks.len(), 1);
        assert_eq!(leaks[0].undo, Undo::DeleteHostLink { name: "wcni1".into() });
    }
}
