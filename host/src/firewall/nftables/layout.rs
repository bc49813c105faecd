//! What the nftables backend keeps in its one table, `inet wasmcni`, and the messages that build it.
//!
//! ```text
//! table inet wasmcni {
//!   map masq4 { ipv4_addr : verdict }  map masq6 { ipv6_addr : verdict }      pod address -> its masq chain
//!   map from_if, to_if { ifname : verdict }                                    routed pods, by node-side veth
//!   map from4, to4, from6, to6 { ip : verdict }                                bridged pods, by address
//!   chain postrouting { type nat hook postrouting priority srcnat; ip saddr vmap @masq4; ip6 saddr vmap @masq6 }
//!   chain forward { type filter hook forward priority filter; ct state established,related accept;
//!                   iifname vmap @from_if; oifname vmap @to_if; ip saddr vmap @from4; ... }
//!   chain m4-<net> { ip daddr <pod subnet> return; ip daddr <cluster> return; ip daddr 224.0.0.0/4 return; masquerade }
//!   chain a-<att>-out { jump h-<att,hook>-out; ... }     one per attachment and direction: its hooks in order
//!   chain h-<att,hook>-out { <the hook's rules> }        accept = return: it ends this hook's judgement only
//! }
//! ```
//! So an ADD or a DEL adds or removes a few elements and chains in one transaction; nothing lists or rewrites
//! the whole ruleset. Elements and per-attachment chains carry the attachment as a comment, for GC.

use sha2::{Digest, Sha256};

use super::expr::{self, Expr};
use super::wire::{msg, Attrs, Batch, NLM_F_APPEND, NLM_F_CREATE};
use crate::firewall::Family;

pub const TABLE: &str = "wasmcni";

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

pub fn delete_element(b: &mut Batch, map: &Map, key: Vec<u8>, what: &str) {
    b.add(msg::DELSETELEM, 0, format!("remove {what} from map {}", map.name), |a| {
        a.str(1, TABLE).str(2, map.name).nest(3, |list| {
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
    base_chain(b, "postrouting", "nat", 4, 100);
    base_chain(b, "forward", "filter", 2, 0);
    for f in [Family::V4, Family::V6] {
        let mut x = expr::family(f);
        x.push(expr::load_addr(f, true));
        x.push(expr::vmap(masq_map(f).name));
        rule(b, "postrouting", &x, "masquerade by pod address");
    }
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
        assert!(masq_chain(Family::V4, &["10.0.0.0/24".parse().unwrap()]).starts_with("m4-"));
    }
}
