//! What GC finds in `iptables-save` dumps without a record: masquerade chains and hook chains that an older
//! plugin or a crash left behind. Each carries its attachment in our naming: the reference comment
//! `name: "<network>" id: "<id>"`, the hook comment `wasmcni hook <hook>: <network>/<id>/<ifname>`.

use std::collections::{BTreeMap, BTreeSet};

use super::hookrules::HOOK_COMMENT_PREFIX;
use super::masq::{comment_prefix, quote};
use crate::naming::parse_attachment_key;

/// Container ids with a masquerade chain of `network` in the dump. Only comments that start with `name:`
/// count: portmap's `dnat name: ...` rules are portmap's to clean.
pub fn masquerade(network: &str, saved: &str) -> BTreeSet<String> {
    // The comment as iptables-save quotes it, without its closing quote: up to the container id.
    let quoted = quote(&comment_prefix(network));
    let prefix = format!("--comment {}", &quoted[..quoted.len() - 1]);
    saved
        .lines()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            Some(rest[..rest.find("\\\"\"")?].to_string())
        })
        .collect()
}

/// Hook rule chains of `network` in a filter-table dump: (container id, ifname) -> chain names.
pub fn hook_chains(network: &str, saved: &str) -> BTreeMap<(String, String), BTreeSet<String>> {
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
        assert_eq!(masquerade("net", SAVED).into_iter().collect::<Vec<_>>(), vec!["gone".to_string()]);
    }

    #[test]
    fn finds_hook_chains_by_attachment_with_slashes_in_the_id() {
        let found = hook_chains("net", SAVED);
        assert_eq!(found.len(), 1, "{found:?}");
        let (key, chains) = found.into_iter().next().unwrap();
        assert_eq!(key, ("c/1".to_string(), "eth0".to_string()));
        assert_eq!(chains.into_iter().collect::<Vec<_>>(), vec!["WCNI-111".to_string()]);
    }
}
