//! Masquerade in our table, as the kernel has it: what an ADD finds already there, where a DEL finds a
//! pod's elements (its set, or the `masq4`/`masq6` maps of earlier builds), what CHECK misses, and the
//! removal of a masquerade chain with its last pod.

use std::net::IpAddr;

use super::layout::{self, TABLE};
use super::plan::{self, masq_chains, masq_keep, Op};
use super::wire::{self, msg, Batch, Conn, NLM_F_DUMP};
use super::{backend_err, commit, Nftables, EBUSY, ENOENT};
use crate::firewall::{AttachmentRules, Error, Family};

/// What of `rules`' masquerade an ADD finds in place: chains with all their rules, and sets (each with its
/// rule in `masq`, made in the same transaction).
pub struct Present {
    pub whole: Vec<String>,
    pub sets: Vec<String>,
}

pub fn present(conn: &Conn, rules: &AttachmentRules) -> Result<Present, Error> {
    let mut p = Present { whole: Vec::new(), sets: Vec::new() };
    for (chain, n) in plan::masq_chain_sizes(rules) {
        if Nftables::rule_count(conn, &chain)? == Some(n) {
            p.whole.push(chain.clone());
        }
        let set = layout::masq_set(&chain);
        if set_exists(conn, &set)? {
            p.sets.push(set);
        }
    }
    Ok(p)
}

fn set_exists(conn: &Conn, set: &str) -> Result<bool, Error> {
    let got = conn
        .request(msg::GETSET, 0, |a| {
            a.str(1, TABLE).str(2, set);
        })
        .map_err(backend_err)?;
    Ok(got.is_ok())
}

fn in_set(conn: &Conn, set: &str, ip: IpAddr) -> Result<bool, Error> {
    Nftables::element_exists(conn, set, &super::expr::addr_bytes(ip))
}

/// The network's masquerade chains, by their comment (for a DEL without its record, which does not know
/// the pod's subnet and so neither the chains' names).
fn commented(conn: &Conn, network: &str) -> Result<Vec<String>, Error> {
    Nftables::chains_commented(conn, &format!("wasmcni masquerade of {network}"))
}

/// DEL: the removal of each masquerade element of `rules`, wherever it is (asked for one by one, ~20 µs
/// each). The network's set and chain stay for its next pod (GC's `sweep` removes them once unused).
pub fn element_ops(conn: &Conn, rules: &AttachmentRules) -> Result<Vec<Op>, Error> {
    let Some(m) = &rules.masquerade else { return Ok(Vec::new()) };
    let chains = masq_chains(rules);
    let mut ops = Vec::new();
    let mut unplaced = Vec::new();
    for (ip, _) in &m.sources {
        let f = Family::of(*ip);
        let mut found = None;
        for c in chains.iter().filter(|c| c.starts_with(if f == Family::V4 { "m4-" } else { "m6-" })) {
            if in_set(conn, &layout::masq_set(c), *ip)? {
                found = Some(layout::masq_set(c));
                break;
            }
        }
        match found {
            Some(set) => ops.push(Op::Element(set, super::expr::addr_bytes(*ip), ip.to_string())),
            None if in_set(conn, layout::masq_map(f).name, *ip)? => ops.push(Op::Element(layout::masq_map(f).name.into(), super::expr::addr_bytes(*ip), ip.to_string())),
            None => unplaced.push(*ip),
        }
    }
    if !unplaced.is_empty() && rules.extra_chains.is_empty() {
        let others = commented(conn, &rules.network)?;
        for ip in unplaced {
            let wanted = if ip.is_ipv4() { "m4-" } else { "m6-" };
            for c in others.iter().filter(|c| c.starts_with(wanted)) {
                if in_set(conn, &layout::masq_set(c), ip)? {
                    ops.push(Op::Element(layout::masq_set(c), super::expr::addr_bytes(ip), ip.to_string()));
                }
            }
        }
    }
    Ok(ops)
}

/// GC's sweep: removes masquerade chain `chain` with its set and rule unless a pod still uses it. Asks
/// first, because a transaction the kernel refuses costs ~10 ms (its abort waits for an RCU grace period):
/// the set's elements and the jumps to the chain beyond its rule in `masq` (pods of earlier builds). A
/// concurrent ADD between the question and the removal only costs that abort: the kernel refuses to delete
/// a set that is not empty.
pub fn remove_unused(conn: &Conn, chain: &str) -> Result<(), Error> {
    let set = layout::masq_set(chain);
    let set_there = match conn
        .request(msg::GETSETELEM, NLM_F_DUMP, |a| {
            a.str(1, TABLE).str(2, &set);
        })
        .map_err(backend_err)?
    {
        Ok(replies) => {
            if replies.iter().any(|r| wire::attr(&r.attrs, 3).is_some_and(|l| !wire::attrs(l).is_empty())) {
                return Ok(());
            }
            true
        }
        Err(ENOENT) => false,
        Err(e) => return Err(Error::Backend(format!("cannot list set {set}: {}", std::io::Error::from_raw_os_error(e)))),
    };
    let got = conn
        .request(msg::GETCHAIN, 0, |a| {
            a.str(1, TABLE).str(3, chain);
        })
        .map_err(backend_err)?;
    // The kernel counts a chain's own rules among its uses: the others are jumps to it.
    let uses = match got {
        Err(_) => return Ok(()),
        Ok(replies) => replies.first().and_then(|r| wire::attr_u32(&r.attrs, 6)).unwrap_or(0) as usize,
    };
    let handle = if set_there { rule_for(conn, &set)? } else { None };
    if uses > Nftables::rule_count(conn, chain)?.unwrap_or(0) + usize::from(handle.is_some()) {
        return Ok(());
    }
    let mut b = Batch::new();
    layout::delete_masq(&mut b, chain, handle.as_deref(), set_there);
    match commit(conn, b)?.first() {
        None => log::debug!("nftables: {chain} removed, no pod uses it"),
        // Gone meanwhile, or an ADD filled the set meanwhile (the kernel refuses then).
        Some(r) if r.errno == ENOENT || r.errno == EBUSY => {}
        Some(r) => log::warn!("nftables: {r}"),
    }
    Ok(())
}

/// The handle of the rule in `masq` that serves `set` (its comment names the set).
pub(super) fn rule_for(conn: &Conn, set: &str) -> Result<Option<Vec<u8>>, Error> {
    let Ok(rules) = conn
        .request(msg::GETRULE, NLM_F_DUMP, |a| {
            a.str(1, TABLE).str(2, layout::MASQ);
        })
        .map_err(backend_err)?
    else {
        return Ok(None);
    };
    Ok(rules
        .iter()
        .find(|r| wire::attr(&r.attrs, 7).and_then(layout::read_comment).as_deref() == Some(set))
        .and_then(|r| wire::attr(&r.attrs, 3).map(<[u8]>::to_vec)))
}

/// CHECK: what of `rules`' masquerade is missing, in words.
pub fn check(conn: &Conn, rules: &AttachmentRules, missing: &mut Vec<String>) -> Result<(), Error> {
    let Some(m) = &rules.masquerade else { return Ok(()) };
    for f in [Family::V4, Family::V6] {
        let sources: Vec<IpAddr> = m.sources.iter().map(|(ip, _)| *ip).filter(|ip| Family::of(*ip) == f).collect();
        if sources.is_empty() {
            continue;
        }
        let chain = layout::masq_chain(f, &masq_keep(m, f));
        match Nftables::rule_count(conn, &chain)? {
            None => missing.push(format!("masquerade chain {chain} is missing")),
            Some(0) => missing.push(format!("masquerade chain {chain} has no rules (flushed?)")),
            Some(_) => {}
        }
        let set = layout::masq_set(&chain);
        let mut in_new = false;
        for ip in sources {
            if in_set(conn, &set, ip)? {
                in_new = true;
            } else if !in_set(conn, layout::masq_map(f).name, ip)? {
                missing.push(format!("the masquerade of {ip} (element of set {set}) is missing"));
            }
        }
        if in_new && rule_for(conn, &set)?.is_none() {
            missing.push(format!("the rule of chain {} that sends set {set} to {chain} is missing", layout::MASQ));
        }
        if in_new && Nftables::rule_count(conn, "postrouting")?.unwrap_or(0) < 3 {
            missing.push(format!("chain postrouting of table inet {TABLE} does not jump to chain {}", layout::MASQ));
        }
    }
    Ok(())
}
