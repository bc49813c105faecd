//! GC's view of our table: the attachments of a network that have elements or chains of ours, found by
//! their comments alone ("wasmcni <network>/<id>/<ifname>"), with what is needed to remove them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::layout::{self, Map, TABLE};
use super::wire::{self, msg, Conn, Reply, NLM_F_DUMP};
use super::{backend_err, ENOENT};
use crate::firewall::{AttachmentRules, Error, Masquerade};

pub fn find(conn: &Conn, network: &str) -> Result<Vec<AttachmentRules>, Error> {
    let prefix = format!("wasmcni {network}/");
    let mut found: BTreeMap<(String, String), AttachmentRules> = BTreeMap::new();
    fn entry<'a>(found: &'a mut BTreeMap<(String, String), AttachmentRules>, network: &str, tagged: &str) -> Option<&'a mut AttachmentRules> {
        let k = tagged.strip_prefix("wasmcni ")?.split(" hook ").next()?;
        let (id, ifname) = crate::naming::parse_attachment_key(k, network)?;
        Some(found.entry((id.clone(), ifname.clone())).or_insert_with(|| AttachmentRules::new(network, &id, &ifname, "")))
    }
    for m in layout::MAPS {
        let replies = match conn
            .request(msg::GETSETELEM, NLM_F_DUMP, |a| {
                a.str(1, TABLE).str(2, m.name);
            })
            .map_err(backend_err)?
        {
            Ok(r) => r,
            // No table yet: nothing of ours on this node.
            Err(ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(Error::Backend(format!("cannot list map {}: {}", m.name, std::io::Error::from_raw_os_error(e)))),
        };
        for (text, key, target) in tagged_elements(&replies, &prefix) {
            let Some(rules) = entry(&mut found, network, &text) else { continue };
            record_key(rules, m, &key);
            if let Some(chain) = target.filter(|c| c.starts_with("m4-") || c.starts_with("m6-")) {
                add_chain(rules, chain);
            }
        }
    }
    // Masquerade sets: each element is a pod address, its set names the chain it is masqueraded by.
    if let Ok(sets) = conn.request(msg::GETSET, NLM_F_DUMP, |_| {}).map_err(backend_err)? {
        for s in &sets {
            let Some(set) = wire::attr_str(&s.attrs, 2).filter(|n| wire::attr_str(&s.attrs, 1).as_deref() == Some(TABLE) && layout::is_masq_set(n)) else { continue };
            let Ok(replies) = conn
                .request(msg::GETSETELEM, NLM_F_DUMP, |a| {
                    a.str(1, TABLE).str(2, &set);
                })
                .map_err(backend_err)?
            else {
                continue;
            };
            for (text, key, _) in tagged_elements(&replies, &prefix) {
                let Some(rules) = entry(&mut found, network, &text) else { continue };
                record_key(rules, if set.starts_with("s4-") { &layout::MASQ4 } else { &layout::MASQ6 }, &key);
                add_chain(rules, layout::masq_chain_of_set(&set));
            }
        }
    }
    // Per-attachment chains no element points to any more (an ADD killed between them) go too.
    if let Ok(chains) = conn.request(msg::GETCHAIN, NLM_F_DUMP, |_| {}).map_err(backend_err)? {
        for c in &chains {
            if wire::attr_str(&c.attrs, 1).as_deref() != Some(TABLE) {
                continue;
            }
            let (Some(name), Some(text)) = (wire::attr_str(&c.attrs, 3), wire::attr(&c.attrs, 12).and_then(layout::read_comment)) else { continue };
            if !(name.starts_with("a-") || name.starts_with("h-")) || !text.starts_with(&prefix) {
                continue;
            }
            if let Some(rules) = entry(&mut found, network, &text) {
                add_chain(rules, name);
            }
        }
    }
    Ok(found.into_values().collect())
}

/// The elements of a set or map dump whose comment starts with `prefix`: (comment, key, the chain a verdict
/// jumps to).
fn tagged_elements(replies: &[Reply], prefix: &str) -> Vec<(String, Vec<u8>, Option<String>)> {
    let mut out = Vec::new();
    for list in replies.iter().filter_map(|r| wire::attr(&r.attrs, 3)) {
        for (_, el) in wire::attrs(list) {
            let Some(text) = wire::attr(el, 6).and_then(layout::read_comment).filter(|t| t.starts_with(prefix)) else { continue };
            let Some(key) = wire::attr(el, 1).and_then(|k| wire::attr(k, 1)).map(<[u8]>::to_vec) else { continue };
            let target = wire::attr(el, 2).and_then(|d| wire::attr(d, 2)).and_then(|v| wire::attr_str(v, 2));
            out.push((text, key, target));
        }
    }
    out
}

fn add_chain(rules: &mut AttachmentRules, chain: String) {
    if !rules.extra_chains.contains(&chain) {
        rules.extra_chains.push(chain);
    }
}

/// What a map element found by GC says about its attachment.
fn record_key(rules: &mut AttachmentRules, map: &Map, key: &[u8]) {
    let ip = match key.len() {
        4 if map.key_len == 4 => Some(IpAddr::from(<[u8; 4]>::try_from(key).expect("4 bytes"))),
        16 if map.key_len == 16 && map.name != "from_if" && map.name != "to_if" => Some(IpAddr::from(<[u8; 16]>::try_from(key).expect("16 bytes"))),
        _ => None,
    };
    match (map.name, ip) {
        ("masq4" | "masq6", Some(ip)) => {
            let m = rules.masquerade.get_or_insert_with(|| Masquerade { sources: Vec::new(), except: Vec::new() });
            m.sources.push((ip, IpNet::from(ip)));
        }
        ("from_if" | "to_if", _) => {
            rules.host_veth = String::from_utf8_lossy(key.split(|b| *b == 0).next().unwrap_or_default()).into_owned();
        }
        (_, Some(ip)) => {
            rules.match_by_address = true;
            if !rules.addresses.contains(&ip) {
                rules.addresses.push(ip);
            }
        }
        _ => {}
    }
}
