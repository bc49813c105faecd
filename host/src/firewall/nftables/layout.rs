//! What the nftables backend keeps in its one table, `inet wasmcni`, and the messages that build it.
//!
//! ```text
//! table inet wasmcni {
//!   set s4-<net> { ipv4_addr }  set s6-<net> { ipv6_addr }                    the pods a masq chain serves
//!   map masq4 { ipv4_addr : verdict }  map masq6 { ipv6_addr : verdict }      the same, as earlier builds
//!                                                                             made it (kept for their pods)
//!   map from_if, to_if { ifname : verdict }                                    routed pods, by node-side veth
//!   map from4, to4, from6, to6 { ip : verdict }                                bridged pods, by address
//!   chain postrouting { type nat hook postrouting priority srcnat; ip saddr vmap @masq4; ip6 saddr vmap @masq6;
//!                       jump masq }
//!   chain masq { ip saddr @s4-<net> jump m4-<net>; ... }                       one rule per masq chain
//!   chain forward { type filter hook forward priority filter; ct state established,related accept;
//!                   iifname vmap @from_if; oifname vmap @to_if; ip saddr vmap @from4; ... }
//!   chain m4-<net> { ip daddr <pod subnet> return; ip daddr <cluster> return; ip daddr 224.0.0.0/4 return; masquerade }
//!   chain a-<att>-out { jump h-<att,hook>-out; ... }     one per attachment and direction: its hooks in order
//!   chain h-<att,hook>-out { <the hook's rules> }        accept = return: it ends this hook's judgement only
//! }
//! ```
//! So an ADD or a DEL adds or removes a few elements and chains in one transaction; nothing lists or rewrites
//! the whole ruleset. Elements and per-attachment chains carry the attachment as a comment, for GC.
//!
//! A pod's masquerade is a plain set element, not a jump: any transaction that adds a jump makes the kernel
//! re-validate every chain reachable from ours, hooked pods' chains included, so a plain pod's ADD grew with
//! the hooked pods on the node (measured: 1.19 ms per commit at 1,000 pods, 0.27 ms without hooked ones).

use sha2::{Digest, Sha256};

use super::expr::{self, Expr};
use super::wire::{msg, Attrs, Batch, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_NONREC};
use crate::firewall::Family;

pub const TABLE: &str = "wasmcni";
/// The regular chain postrouting jumps to: one rule per masquerade chain, matching its set.
pub const MASQ: &str = "masq";

/// A verdict map of ours: name, key type (nft's datatype id) and key length.
pub struct Map {
    pub name: &'static str,
    key_type: u32,
    pub key_len: u32,
}

const IPV4: u32 = 7;
const IPV6: u32 = 8;
const IFNAME: u32 = 41;
const NFT_DATA_VERDICT: u32 = 0xffff_ff00;
const NFT_SET_MAP: u32 = 0x8;

pub const MASQ4: Map = Map { name: "masq4", key_type: IPV4, key_len: 4 };
pub const MASQ6: Map = Map { name: "masq6", key_type: IPV6, key_len: 16 };
pub const FROM_IF: Map = Map { name: "from_if", key_type: IFNAME, key_len: 16 };
pub const TO_IF: Map = Map { name: "to_if", key_type: IFNAME, key_len: 16 };
pub const FROM4: Map = Map { name: "from4", key_type: IPV4, key_len: 4 };
pub const TO4: Map = Map { name: "to4", key_type: IPV4, key_len: 4 };
pub const FROM6: Map = Map { name: "from6", key_type: IPV6, key_len: 16 };
pub const TO6: Map = Map { name: "to6", key_type: IPV6, key_len: 16 };
pub const MAPS: [&Map; 8] = [&MASQ4, &MASQ6, &FROM_IF, &TO_IF, &FROM4, &TO4, &FROM6, &TO6];

pub fn masq_map(f: Family) -> &'static Map {
    if f == Family::V4 {
        &MASQ4
    } else {
        &MASQ6
    }
}

/// The dispatch maps for one direction: (by veth, by v4 address, by v6 address).
pub fn dispatch_maps(out_of_pod: bool) -> (&'static Map, &'static Map, &'static Map) {
    if out_of_pod {
        (&FROM_IF, &FROM4, &FROM6)
    } else {
        (&TO_IF, &TO4, &TO6)
    }
}

fn hash(s: &str) -> String {
    crate::netaddr::hex(&Sha256::digest(s.as_bytes())[..8], "")
}

/// Direction suffix: traffic from the pod ("out") or to it ("in").
pub fn dir(out_of_pod: bool) -> &'static str {
    if out_of_pod {
        "out"
    } else {
        "in"
    }
}

pub fn dispatch_chain(key: &str, out_of_pod: bool) -> String {
    format!("a-{}-{}", hash(key), dir(out_of_pod))
}

pub fn hook_chain(key: &str, hook: &str, out_of_pod: bool) -> String {
    format!("h-{}-{}", hash(&format!("{key}/{hook}")), dir(out_of_pod))
}

/// One masquerade chain per family and set of destinations left alone: shared by the pods that have them.
pub fn masq_chain(f: Family, keep: &[ipnet::IpNet]) -> String {
    let text: Vec<String> = keep.iter().map(ToString::to_string).collect();
    format!("m{}-{}", if f == Family::V4 { 4 } else { 6 }, hash(&text.join(",")))
}

/// The set of pod addresses masquerade chain `chain` (m4-… or m6-…) serves: s4-… or s6-…, same hash.
pub fn masq_set(chain: &str) -> String {
    format!("s{}", &chain[1..])
}

/// The masquerade chain that serves set `set`.
pub fn masq_chain_of_set(set: &str) -> String {
    format!("m{}", &set[1..])
}

pub fn is_masq_set(name: &str) -> bool {
    name.starts_with("s4-") || name.starts_with("s6-")
}

/// libnftnl's userdata TLV for a comment: [type 0][length][text NUL].
pub fn comment(text: &str) -> Vec<u8> {
    let mut t = text.as_bytes().to_vec();
    t.truncate(250);
    t.push(0);
    let mut out = vec![0u8, t.len() as u8];
    out.extend(t);
    out
}

/// The comment of a userdata TLV.
pub fn read_comment(userdata: &[u8]) -> Option<String> {
    if userdata.len() < 2 || userdata[0] != 0 {
        return None;
    }
    let len = userdata[1] as usize;
    let text = userdata.get(2..2 + len)?;
    Some(String::from_utf8_lossy(text.split(|b| *b == 0).next().unwrap_or_default()).into_owned())
}

pub fn table_attrs(a: &mut Attrs) {
    a.str(1, TABLE);
}

/// Creates (or leaves as it is) a regular chain and empties it, so what follows is its whole content.
pub fn fresh_chain(b: &mut Batch, name: &str, comment_text: &str) {
    let (name, comment_text) = (name.to_string(), comment_text.to_string());
    b.add(msg::NEWCHAIN, NLM_F_CREATE, format!("create chain {name}"), |a| {
        a.str(1, TABLE).str(3, &name).bytes(12, &comment(&comment_text));
    });
    b.add(msg::DELRULE, 0, format!("empty chain {name}"), |a| {
        a.str(1, TABLE).str(2, &name);
    });
}

pub fn rule(b: &mut Batch, chain: &str, exprs: &[Expr], what: &str) {
    b.add(msg::NEWRULE, NLM_F_CREATE | NLM_F_APPEND, format!("add to chain {chain}: {what}"), |a| {
        a.str(1, TABLE).str(2, chain).nest(4, |l| expr::write_list(l, exprs));
    });
}

/// A new set of pod addresses for masquerade chain `chain`, with the rule in `masq` that sends its members
/// there (the rule's comment names the set, to find it again). Exclusive: of two first pods of a network
/// racing, the second is refused (EEXIST) and sees the set on its retry, so the rule is never doubled.
pub fn masq_set_with_rule(b: &mut Batch, f: Family, chain: &str, network: &str) {
    let set = masq_set(chain);
    let (key_type, key_len, id) = if f == Family::V4 { (IPV4, 4, 20) } else { (IPV6, 16, 21) };
    let name = set.clone();
    b.add(msg::NEWSET, NLM_F_CREATE | NLM_F_EXCL, format!("create set {set} for {network}"), |a| {
        a.str(1, TABLE).str(2, &name).u32(3, 0).u32(4, key_type).u32(5, key_len).u32(10, id);
    });
    let mut x = expr::family(f);
    x.push(expr::load_addr(f, true));
    x.push(expr::lookup(&set));
    x.push(expr::verdict(expr::NFT_JUMP, Some(chain)));
    b.add(msg::NEWRULE, NLM_F_CREATE | NLM_F_APPEND, format!("add to chain {MASQ}: masquerade @{set}"), |a| {
        a.str(1, TABLE).str(2, MASQ).nest(4, |l| expr::write_list(l, &x)).bytes(7, &comment(&set));
    });
}

/// Pod address `key` into set `set`, with the attachment as its comment.
pub fn set_element(b: &mut Batch, set: &str, key: Vec<u8>, comment_text: &str, what: &str) {
    let comment_text = comment_text.to_string();
    b.add(msg::NEWSETELEM, NLM_F_CREATE, format!("add {what} to set {set}"), |a| {
        a.str(1, TABLE).str(2, set).nest(3, |list| {
            list.nest(1, |el| {
                expr::value_nest(el, 1, &key);
                el.bytes(6, &comment(&comment_text));
            });
        });
    });
}

/// Removes a masquerade set, its rule in `masq` (by handle) and its chain, refused (EBUSY) when the set
/// is not empty: the kernel decides, so an ADD committing meanwhile keeps them.
pub fn delete_masq(b: &mut Batch, chain: &str, rule_handle: Option<&[u8]>, set_there: bool) {
    let set = masq_set(chain);
    if let Some(h) = rule_handle {
        let h = h.to_vec();
        b.add(msg::DELRULE, 0, format!("remove the rule for {set} from chain {MASQ}"), |a| {
            a.str(1, TABLE).str(2, MASQ).bytes(3, &h);
        });
    }
    if set_there {
        b.add(msg::DELSET, NLM_F_NONREC, format!("delete set {set}"), |a| {
            a.str(1, TABLE).str(2, &set);
        });
    }
    delete_chain(b, chain);
}

/// `key : jump chain` into `map`, with the attachment as its comment.
pub fn element(b: &mut Batch, map: &Map, key: Vec<u8>, chain: &str, comment_text: &str, what: &str) {
    let (chain, comment_text) = (chain.to_string(), comment_text.to_string());
    b.add(msg::NEWSETELEM, NLM_F_CREATE, format!("add {what} to map {}", map.name), |a| {
        a.str(1, TABLE).str(2, map.name).nest(3, |list| {
            list.nest(1, |el| {
                expr::value_nest(el, 1, &key);
                expr::verdict_nest(el, 2, expr::NFT_JUMP, Some(&chain));
                el.bytes(6, &comment(&comment_text));
            });
        });
    });
}

/// Removes element `key` from set or map `set`.
pub fn delete_element(b: &mut Batch, set: &str, key: Vec<u8>, what: &str) {
    let kind = if is_masq_set(set) { "set" } else { "map" };
    b.add(msg::DELSETELEM, 0, format!("remove {what} from {kind} {set}"), |a| {
        a.str(1, TABLE).str(2, set).nest(3, |list| {
            list.nest(1, |el| expr::value_nest(el, 1, &key));
        });
    });
}

pub fn delete_chain(b: &mut Batch, name: &str) {
    let name = name.to_string();
    b.add(msg::DELCHAIN, 0, format!("delete chain {name}"), |a| {
        a.str(1, TABLE).str(3, &name);
    });
}

/// The base chains and how many rules `setup` puts in each.
/// postrouting's third rule, the jump to `masq`, is counted by masq::check, for pods in a set only: a node
/// upgraded from an earlier build has the first two until its next ADD, and its pods need no more.
pub const BASE_RULES: [(&str, usize); 2] = [("postrouting", 2), ("forward", 7)];

/// The table, its maps and its two base chains with their rules: idempotent (created if missing, the base
/// chains emptied and filled again), so it also repairs a table someone changed by hand.
pub fn setup(b: &mut Batch) {
    b.add(msg::NEWTABLE, NLM_F_CREATE, format!("create table inet {TABLE}"), table_attrs);
    for (id, m) in MAPS.iter().enumerate() {
        b.add(msg::NEWSET, NLM_F_CREATE, format!("create map {}", m.name), |a| {
            a.str(1, TABLE)
                .str(2, m.name)
                .u32(3, NFT_SET_MAP)
                .u32(4, m.key_type)
                .u32(5, m.key_len)
                .u32(6, NFT_DATA_VERDICT)
                .u32(7, 0)
                .u32(10, id as u32 + 1);
            if m.key_type == IFNAME {
                // For nft's listings only (libnftnl's set userdata: key byteorder host): without it nft
                // prints interface names backwards, that is as "".
                a.bytes(13, &[&[0u8, 4][..], &1u32.to_ne_bytes()].concat());
            }
        });
    }
    // Created if missing, never emptied: its rules belong to the masquerade sets.
    b.add(msg::NEWCHAIN, NLM_F_CREATE, format!("create chain {MASQ}"), |a| {
        a.str(1, TABLE).str(3, MASQ);
    });
    base_chain(b, "postrouting", "nat", 4, 100);
    base_chain(b, "forward", "filter", 2, 0);
    for f in [Family::V4, Family::V6] {
        let mut x = expr::family(f);
        x.push(expr::load_addr(f, true));
        x.push(expr::vmap(masq_map(f).name));
        rule(b, "postrouting", &x, "masquerade by pod address (pods of earlier builds)");
    }
    rule(b, "postrouting", &[expr::verdict(expr::NFT_JUMP, Some(MASQ))], "masquerade by pod address");
    let mut est = expr::ct_established();
    est.push(expr::verdict(expr::NF_ACCEPT, None));
    // Hook rules judge new connections; replies to a pod's own traffic pass.
    rule(b, "forward", &est, "established and related flows pass");
    for out in [true, false] {
        let (by_if, by4, by6) = dispatch_maps(out);
        let x = vec![expr::load_ifname(out), expr::vmap(by_if.name)];
        rule(b, "forward", &x, "dispatch by veth");
        for (f, m) in [(Family::V4, by4), (Family::V6, by6)] {
            let mut x = expr::family(f);
            x.push(expr::load_addr(f, out));
            x.push(expr::vmap(m.name));
            rule(b, "forward", &x, "dispatch by address");
        }
    }
}

fn base_chain(b: &mut Batch, name: &'static str, kind: &'static str, hook: u32, priority: i32) {
    b.add(msg::NEWCHAIN, NLM_F_CREATE, format!("create chain {name}"), |a| {
        a.str(1, TABLE).str(3, name).nest(4, |h| {
            h.u32(1, hook).u32(2, priority as u32);
        });
        a.u32(5, 1).str(7, kind);
    });
    b.add(msg::DELRULE, 0, format!("empty chain {name}"), |a| {
        a.str(1, TABLE).str(2, name);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_comments_read_back() {
        let a = dispatch_chain("net/ctr/eth0", true);
        assert!(a.len() <= 31 && a.starts_with("a-") && a.ends_with("-out"), "{a}");
        assert_ne!(hook_chain("net/ctr/eth0", "g", true), hook_chain("net/ctr/eth0", "h", true));
        assert_ne!(hook_chain("net/ctr/eth0", "g", true), hook_chain("net/ctr/eth0", "g", false));
        assert_eq!(read_comment(&comment("wasmcni net/ctr/eth0")).as_deref(), Some("wasmcni net/ctr/eth0"));
        let m4 = masq_chain(Family::V4, &["10.0.0.0/24".parse().unwrap()]);
        assert!(m4.starts_with("m4-") && is_masq_set(&masq_set(&m4)) && masq_chain_of_set(&masq_set(&m4)) == m4, "{m4}");
    }
}
