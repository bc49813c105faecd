//! nf_tables expressions, encoded as nft itself encodes the rules we need (its test payloads are the
//! reference): meta, payload, cmp, bitwise, lookup, immediate, ct, masq, reject, log. A rule is a list of
//! them; in the inet family every L3 match is preceded by `meta nfproto`, every L4 match by `meta l4proto`.

use std::net::IpAddr;

use ipnet::IpNet;

use super::wire::Attrs;
use crate::firewall::Family;

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// Registers: the verdict, and the 16-byte register 1.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;

pub const NF_DROP: i32 = 0;
pub const NF_ACCEPT: i32 = 1;
pub const NFT_JUMP: i32 = -3;
pub const NFT_RETURN: i32 = -5;

/// One expression: its name and how to write its attributes.
pub struct Expr {
    name: &'static str,
    data: Vec<(u16, Data)>,
}

enum Data {
    U32(u32),
    U8(u8),
    Str(String),
    /// A nest holding NFTA_DATA_VALUE.
    Value(Vec<u8>),
    /// A nest holding NFTA_DATA_VERDICT.
    Verdict(i32, Option<String>),
}

fn e(name: &'static str, data: Vec<(u16, Data)>) -> Expr {
    Expr { name, data }
}

/// Writes a data nest (NFTA_DATA_VALUE or NFTA_DATA_VERDICT) at attribute `ty`.
pub fn value_nest(a: &mut Attrs, ty: u16, bytes: &[u8]) {
    a.nest(ty, |n| {
        n.bytes(NFTA_DATA_VALUE, bytes);
    });
}

pub fn verdict_nest(a: &mut Attrs, ty: u16, code: i32, chain: Option<&str>) {
    a.nest(ty, |n| {
        n.nest(NFTA_DATA_VERDICT, |v| {
            v.u32(NFTA_VERDICT_CODE, code as u32);
            if let Some(c) = chain {
                v.str(NFTA_VERDICT_CHAIN, c);
            }
        });
    });
}

/// Writes `exprs` as NFTA_RULE_EXPRESSIONS' content.
pub fn write_list(a: &mut Attrs, exprs: &[Expr]) {
    for x in exprs {
        a.nest(NFTA_LIST_ELEM, |el| {
            el.str(NFTA_EXPR_NAME, x.name);
            if !x.data.is_empty() {
                el.nest(NFTA_EXPR_DATA, |d| {
                    for (ty, v) in &x.data {
                        match v {
                            Data::U32(n) => {
                                d.u32(*ty, *n);
                            }
                            Data::U8(n) => {
                                d.bytes(*ty, &[*n]);
                            }
                            Data::Str(s) => {
                                d.str(*ty, s);
                            }
                            Data::Value(b) => value_nest(d, *ty, b),
                            Data::Verdict(code, chain) => verdict_nest(d, *ty, *code, chain.as_deref()),
                        }
                    }
                });
            }
        });
    }
}

/// `meta KEY => reg 1`: IIFNAME 6, OIFNAME 7, NFPROTO 15, L4PROTO 16.
fn meta(key: u32) -> Expr {
    e("meta", vec![(1, Data::U32(REG_1)), (2, Data::U32(key))])
}

/// `payload BASE OFFSET LEN => reg 1` (network 1, transport 2).
fn payload(base: u32, offset: u32, len: u32) -> Expr {
    e("payload", vec![(1, Data::U32(REG_1)), (2, Data::U32(base)), (3, Data::U32(offset)), (4, Data::U32(len))])
}

/// `cmp reg 1 OP DATA` (eq 0, neq 1, gte 5, lte 3).
fn cmp(op: u32, data: Vec<u8>) -> Expr {
    e("cmp", vec![(1, Data::U32(REG_1)), (2, Data::U32(op)), (3, Data::Value(data))])
}

fn bitwise(mask: Vec<u8>) -> Expr {
    let xor = vec![0u8; mask.len()];
    e("bitwise", vec![(1, Data::U32(REG_1)), (2, Data::U32(REG_1)), (3, Data::U32(mask.len() as u32)), (4, Data::Value(mask)), (5, Data::Value(xor))])
}

/// The 16-byte, NUL-padded form of an interface name, as registers and ifname set keys hold it.
pub fn ifname_key(name: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.resize(16, 0);
    b
}

pub fn addr_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// `meta nfproto ipv4|ipv6`.
pub fn family(f: Family) -> Vec<Expr> {
    vec![meta(15), cmp(0, vec![if f == Family::V4 { 2 } else { 10 }])]
}

/// `meta iifname|oifname => reg 1` (for a lookup by name).
pub fn load_ifname(out_of_pod: bool) -> Expr {
    meta(if out_of_pod { 6 } else { 7 })
}

/// The source or destination address, loaded into reg 1 (after the family match).
pub fn load_addr(f: Family, source: bool) -> Expr {
    match (f, source) {
        (Family::V4, true) => payload(1, 12, 4),
        (Family::V4, false) => payload(1, 16, 4),
        (Family::V6, true) => payload(1, 8, 16),
        (Family::V6, false) => payload(1, 24, 16),
    }
}

/// `ip saddr|daddr NET` (the general form: masked, so any prefix length works).
pub fn addr_in(source: bool, net: IpNet) -> Vec<Expr> {
    let f = Family::of(net.addr());
    let mut out = family(f);
    out.push(load_addr(f, source));
    let mask = addr_bytes(net.netmask());
    if mask.iter().any(|b| *b != 0xff) {
        out.push(bitwise(mask));
    }
    out.push(cmp(0, addr_bytes(net.network())));
    out
}

/// `meta l4proto tcp|udp|icmp|ipv6-icmp` for the family.
pub fn l4proto(proto: u8) -> Vec<Expr> {
    vec![meta(16), cmp(0, vec![proto])]
}

/// `th dport A-B` (after the l4proto match).
pub fn dport(a: u16, b: u16) -> Vec<Expr> {
    let mut out = vec![payload(2, 2, 2)];
    if a == b {
        out.push(cmp(0, a.to_be_bytes().to_vec()));
    } else {
        out.push(cmp(5, a.to_be_bytes().to_vec()));
        out.push(cmp(3, b.to_be_bytes().to_vec()));
    }
    out
}

/// `ct state established,related`: the state is a host-order bitmask.
pub fn ct_established() -> Vec<Expr> {
    vec![
        e("ct", vec![(1, Data::U32(REG_1)), (2, Data::U32(0))]),
        bitwise(6u32.to_ne_bytes().to_vec()),
        cmp(1, vec![0; 4]),
    ]
}

/// `lookup reg 1 @set` as a verdict map (the verdict register is the destination).
pub fn vmap(set: &str) -> Expr {
    e("lookup", vec![(1, Data::Str(set.into())), (2, Data::U32(REG_1)), (3, Data::U32(REG_VERDICT))])
}

/// `lookup reg 1 @set`: matches when the set holds the register's value.
pub fn lookup(set: &str) -> Expr {
    e("lookup", vec![(1, Data::Str(set.into())), (2, Data::U32(REG_1))])
}

pub fn verdict(code: i32, chain: Option<&str>) -> Expr {
    e("immediate", vec![(1, Data::U32(REG_VERDICT)), (2, Data::Verdict(code, chain.map(String::from)))])
}

pub fn masquerade() -> Expr {
    e("masq", vec![])
}

/// `reject` in the inet family: ICMP(v6) port unreachable, like iptables' default REJECT.
pub fn reject() -> Expr {
    e("reject", vec![(1, Data::U32(2)), (2, Data::U8(1))])
}

/// `log prefix "..."` (syslog; the prefix is checked by hooks::validate).
pub fn log(prefix: &str) -> Expr {
    e("log", vec![(2, Data::Str(format!("{prefix} ")))])
}
