//! What an attachment's rules become in our table: the one batch that applies them, and the removals
//! that undo them (kept as data, so a retry can leave out what is already gone).

use std::net::IpAddr;

use ipnet::IpNet;

use super::expr::{self, Expr};
use super::layout::{self, Map};
use super::wire::Batch;
use crate::firewall::{Action, AttachmentRules, Direction, Family, HookRule, Masquerade, Protocol};

/// The comment naming an attachment on its elements and chains.
pub fn tag(rules: &AttachmentRules) -> String {
    format!("wasmcni {}", key(rules))
}

pub fn key(rules: &AttachmentRules) -> String {
    crate::naming::attachment_key(&rules.network, &rules.container_id, &rules.ifname)
}

pub fn families(rules: &AttachmentRules) -> Vec<Family> {
    let mut f: Vec<Family> = rules.addresses.iter().map(|a| Family::of(*a)).collect();
    f.sort();
    f.dedup();
    f
}

/// The destinations one family's masquerade leaves alone: the pod's subnet(s), the cluster's, multicast.
pub fn masq_keep(m: &Masquerade, f: Family) -> Vec<IpNet> {
    let mut keep: Vec<IpNet> = m.sources.iter().filter(|(ip, _)| Family::of(*ip) == f).map(|(_, net)| net.trunc()).collect();
    keep.extend(m.except.iter().filter(|n| Family::of(n.addr()) == f).map(|n| n.trunc()));
    keep.push(f.multicast().parse().expect("a valid CIDR"));
    keep.sort();
    keep.dedup();
    keep
}

/// The masquerade chains `rules` jumps to, one per family it has.
pub fn masq_chains(rules: &AttachmentRules) -> Vec<String> {
    // A leftover found by GC knows them from its elements' verdicts.
    let named: Vec<String> = rules.extra_chains.iter().filter(|c| c.starts_with("m4-") || c.starts_with("m6-")).cloned().collect();
    if !named.is_empty() {
        return named;
    }
    let Some(m) = &rules.masquerade else { return Vec::new() };
    [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| m.sources.iter().any(|(ip, _)| Family::of(*ip) == *f))
        .map(|f| layout::masq_chain(f, &masq_keep(m, f)))
        .collect()
}

/// A hook rule of one family as nf_tables expressions (the chain it is in already says whose pod).
pub fn hook_rule(r: &HookRule, f: Family) -> Vec<Expr> {
    let mut x = expr::family(f);
    if let Some(peer) = r.peer {
        // The remote side: the source of ingress traffic, the destination of egress.
        x.extend(expr::addr_in(r.direction == Direction::Ingress, peer).into_iter().skip(2));
    }
    let proto = match (r.protocol, f) {
        (Protocol::Any, _) => None,
        (Protocol::Tcp, _) => Some(6),
        (Protocol::Udp, _) => Some(17),
        (Protocol::Icmp, Family::V4) => Some(1),
        (Protocol::Icmp, Family::V6) => Some(58),
    };
    if let Some(p) = proto {
        x.extend(expr::l4proto(p));
    }
    if let Some((a, b)) = r.ports {
        x.extend(expr::dport(a, b));
    }
    if let Some(prefix) = &r.log_prefix {
        x.push(expr::log(prefix));
    }
    // accept = return: it ends this hook's judgement, the other hooks (and the peer pod's) still see it.
    x.push(match r.action {
        Action::Accept => expr::verdict(expr::NFT_RETURN, None),
        Action::Drop => expr::verdict(expr::NF_DROP, None),
        Action::Reject => expr::reject(),
    });
    x
}

/// The element keys that send this attachment's traffic of one direction to its chain.
pub fn dispatch_keys(rules: &AttachmentRules, out_of_pod: bool) -> Vec<(&'static Map, Vec<u8>, String)> {
    let (by_if, by4, by6) = layout::dispatch_maps(out_of_pod);
    if !rules.match_by_address {
        return vec![(by_if, expr::ifname_key(&rules.host_veth), rules.host_veth.clone())];
    }
    rules
        .addresses
        .iter()
        .map(|ip| (if ip.is_ipv4() { by4 } else { by6 }, expr::addr_bytes(*ip), ip.to_string()))
        .collect()
}

/// The hook chains of one direction, in hook order, with the rules each holds (hooks without rules for that
/// direction get none).
pub fn hook_chains(rules: &AttachmentRules, out_of_pod: bool) -> Vec<(String, &str, Vec<&HookRule>)> {
    let wanted = if out_of_pod { Direction::Egress } else { Direction::Ingress };
    rules
        .hooks
        .iter()
        .map(|h| {
            let mine: Vec<&HookRule> = h.rules.iter().filter(|r| r.direction == wanted).collect();
            (layout::hook_chain(&key(rules), &h.hook, out_of_pod), h.hook.as_str(), mine)
        })
        .filter(|(_, _, mine)| !mine.is_empty())
        .collect()
}

/// A hook rule once per family it applies to: a rule with a peer only in that peer's family.
pub fn per_family<'a>(mine: &'a [&'a HookRule], fams: &'a [Family]) -> impl Iterator<Item = (&'a HookRule, Family)> + 'a {
    fams.iter().flat_map(move |f| mine.iter().filter(move |r| r.peer.is_none_or(|p| Family::of(p.addr()) == *f)).map(move |r| (*r, *f)))
}

/// The masquerade chains `rules` needs, with the number of rules each holds when whole.
pub fn masq_chain_sizes(rules: &AttachmentRules) -> Vec<(String, usize)> {
    let Some(m) = &rules.masquerade else { return Vec::new() };
    [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| m.sources.iter().any(|(ip, _)| Family::of(*ip) == *f))
        .map(|f| {
            let keep = masq_keep(m, f);
            (layout::masq_chain(f, &keep), keep.len() + 1)
        })
        .collect()
}

/// The one transaction of an ADD. A masquerade chain in `whole` (there, with all its rules) only gets the
/// pod's elements: rewriting a chain other pods jump to makes every concurrent commit slow (measured: 40
/// concurrent ADDs took 650 ms instead of 150 ms), and its content follows from its name anyway. A set in
/// `sets` is there with its rule in `masq`, so the pod's address is all that is new.
pub fn apply_batch(rules: &AttachmentRules, whole: &[String], sets: &[String]) -> Batch {
    let mut b = Batch::new();
    let tag = tag(rules);
    if let Some(m) = &rules.masquerade {
        for f in [Family::V4, Family::V6] {
            let sources: Vec<IpAddr> = m.sources.iter().map(|(ip, _)| *ip).filter(|ip| Family::of(*ip) == f).collect();
            if sources.is_empty() {
                continue;
            }
            let keep = masq_keep(m, f);
            let chain = layout::masq_chain(f, &keep);
            if !whole.contains(&chain) {
                layout::fresh_chain(&mut b, &chain, &format!("wasmcni masquerade of {}", rules.network));
                for net in &keep {
                    let mut x = expr::addr_in(false, *net);
                    x.push(expr::verdict(expr::NFT_RETURN, None));
                    layout::rule(&mut b, &chain, &x, &format!("leave {net} alone"));
                }
                let mut x = expr::family(f);
                x.push(expr::masquerade());
                layout::rule(&mut b, &chain, &x, "masquerade");
            }
            let set = layout::masq_set(&chain);
            if !sets.contains(&set) {
                layout::masq_set_with_rule(&mut b, f, &chain, &rules.network);
            }
            for ip in sources {
                layout::set_element(&mut b, &set, expr::addr_bytes(ip), &tag, &ip.to_string());
            }
        }
    }
    let fams = families(rules);
    for out in [true, false] {
        let mut jumps = Vec::new();
        for (chain, hook, mine) in hook_chains(rules, out) {
            layout::fresh_chain(&mut b, &chain, &format!("{tag} hook {hook}"));
            for (r, f) in per_family(&mine, &fams) {
                layout::rule(&mut b, &chain, &hook_rule(r, f), &r.describe());
            }
            jumps.push(chain);
        }
        if jumps.is_empty() {
            continue;
        }
        let dispatch = layout::dispatch_chain(&key(rules), out);
        layout::fresh_chain(&mut b, &dispatch, &tag);
        for j in &jumps {
            layout::rule(&mut b, &dispatch, &[expr::verdict(expr::NFT_JUMP, Some(j))], &format!("jump {j}"));
        }
        for (map, k, shown) in dispatch_keys(rules, out) {
            layout::element(&mut b, map, k, &dispatch, &tag, &shown);
        }
    }
    b
}

/// Everything of `rules` to remove but its masquerade elements (where they are is asked of the kernel),
/// elements before the chains they point to.
pub fn teardown_ops(rules: &AttachmentRules) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut chains = Vec::new();
    for out in [true, false] {
        let dispatch = layout::dispatch_chain(&key(rules), out);
        let mut hooks: Vec<String> = hook_chains(rules, out).into_iter().map(|(c, _, _)| c).collect();
        // Hooks known by name only (DEL without a record) may have rules either way.
        hooks.extend(rules.hooks.iter().filter(|h| h.rules.is_empty()).map(|h| layout::hook_chain(&key(rules), &h.hook, out)));
        // A leftover found by GC knows its dispatch chain by name only.
        if hooks.is_empty() && !rules.extra_chains.contains(&dispatch) {
            continue;
        }
        for (map, k, shown) in dispatch_keys(rules, out) {
            ops.push(Op::Element(map.name.to_string(), k, shown));
        }
        chains.push(dispatch);
        chains.extend(hooks);
    }
    chains.extend(rules.extra_chains.iter().filter(|c| c.starts_with("a-") || c.starts_with("h-")).cloned());
    // Dispatch chains (a-) jump to hook chains (h-): they go first.
    chains.sort_by(|a, b| (!a.starts_with("a-"), a).cmp(&(!b.starts_with("a-"), b)));
    chains.dedup();
    ops.extend(chains.into_iter().map(Op::Chain));
    ops
}

/// One removal of a teardown, kept as data so a retry can leave out what was already gone.
pub enum Op {
    /// Set or map, key, the key in words.
    Element(String, Vec<u8>, String),
    Chain(String),
}

pub fn teardown_batch(ops: &[&Op]) -> Batch {
    let mut b = Batch::new();
    for op in ops {
        match op {
            Op::Element(set, k, shown) => layout::delete_element(&mut b, set, k.clone(), shown),
            Op::Chain(c) => layout::delete_chain(&mut b, c),
        }
    }
    b
}
