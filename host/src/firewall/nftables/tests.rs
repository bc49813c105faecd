//! What the backend sends for an attachment, read back from the batch's own descriptions: no kernel needed
//! (the e2e suite runs the same against the real one, `WASMCNI_TEST_BACKEND=nftables`).

use super::plan::{self, Op};
use crate::firewall::{Action, AttachmentRules, Direction, HookChain, HookRule, Masquerade, Protocol};

fn pod(masq: bool) -> AttachmentRules {
    let mut r = AttachmentRules::new("net", "ctr", "eth0", "wcniabc");
    r.addresses = vec!["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
    if masq {
        r.masquerade = Some(Masquerade {
            sources: vec![("10.0.0.2".parse().unwrap(), "10.0.0.0/24".parse().unwrap()), ("fd00::2".parse().unwrap(), "fd00::/64".parse().unwrap())],
            except: vec!["10.244.0.0/16".parse().unwrap()],
        });
    }
    r
}

fn drop_to(peer: &str, port: u16) -> HookRule {
    HookRule { direction: Direction::Egress, protocol: Protocol::Tcp, ports: Some((port, port)), peer: Some(peer.parse().unwrap()), action: Action::Drop, log_prefix: None }
}

fn sent(rules: &AttachmentRules) -> Vec<String> {
    plan::apply_batch(rules, &[], &[]).descriptions().into_iter().map(String::from).collect()
}

#[test]
fn masquerade_is_a_set_element_per_address_and_a_shared_chain_per_family() {
    let d = sent(&pod(true));
    let elements: Vec<&String> = d.iter().filter(|l| l.starts_with("add ") && l.contains(" to set ")).collect();
    assert!(elements.len() == 2 && elements[0].starts_with("add 10.0.0.2 to set s4-") && elements[1].starts_with("add fd00::2 to set s6-"), "{d:#?}");
    // Left alone: the pod subnet, the cluster CIDR of that family, multicast; then masquerade.
    let m4: Vec<&String> = d.iter().filter(|l| l.starts_with("add to chain m4-")).collect();
    assert!(m4[0].ends_with("leave 10.0.0.0/24 alone") && m4[1].ends_with("leave 10.244.0.0/16 alone"), "{m4:#?}");
    assert!(m4[2].ends_with("leave 224.0.0.0/4 alone") && m4[3].ends_with(": masquerade") && m4.len() == 4, "{m4:#?}");
    // The first pod of a network makes its sets, each with the one rule in `masq` that jumps for it.
    assert_eq!(d.iter().filter(|l| l.starts_with("create set s")).count(), 2, "{d:#?}");
    assert_eq!(d.iter().filter(|l| l.starts_with("add to chain masq: masquerade @s")).count(), 2, "{d:#?}");
    assert!(!d.iter().any(|l| l.contains("dispatch") || l.contains("chain a-")), "no hooks, no dispatch: {d:#?}");
    // Nothing about the table or base chains: they are set up once, when a commit finds them missing.
    assert!(!d.iter().any(|l| l.contains("table") || l.contains("postrouting")), "{d:#?}");
    // With the chains whole and the sets there, only the elements are new: no jump, so the kernel has
    // nothing to validate (hooked pods' chains are not walked).
    let sizes = plan::masq_chain_sizes(&pod(true));
    // v4: pod subnet, cluster CIDR, multicast, masquerade; v6: no cluster CIDR of that family.
    assert_eq!(sizes.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [4, 3]);
    let whole: Vec<String> = sizes.into_iter().map(|(c, _)| c).collect();
    let sets: Vec<String> = whole.iter().map(|c| super::layout::masq_set(c)).collect();
    let d = plan::apply_batch(&pod(true), &whole, &sets).descriptions().into_iter().map(String::from).collect::<Vec<_>>();
    assert_eq!(d, [format!("add 10.0.0.2 to set {}", sets[0]), format!("add fd00::2 to set {}", sets[1])], "{d:#?}");
}

#[test]
fn hook_rules_go_to_their_direction_reached_by_the_veth() {
    let mut r = pod(false);
    r.hooks = vec![HookChain { hook: "guard".into(), rules: vec![drop_to("203.0.113.0/24", 80)] }];
    let d = sent(&r);
    let out = super::layout::dispatch_chain("net/ctr/eth0", true);
    let hook = super::layout::hook_chain("net/ctr/eth0", "guard", true);
    assert!(d.contains(&format!("add to chain {out}: jump {hook}")), "{d:#?}");
    assert!(d.contains(&"add wcniabc to map from_if".to_string()), "{d:#?}");
    // A v4 peer: one rule, in the v4 family only; egress only: nothing for traffic to the pod.
    assert_eq!(d.iter().filter(|l| l.starts_with(&format!("add to chain {hook}"))).count(), 1, "{d:#?}");
    assert!(!d.iter().any(|l| l.contains("-in") || l.contains("to_if")), "{d:#?}");
}

#[test]
fn a_bridged_pod_is_reached_by_its_addresses() {
    let mut r = pod(false);
    r.match_by_address = true;
    r.hooks = vec![HookChain { hook: "guard".into(), rules: vec![drop_to("0.0.0.0/0", 25)] }];
    let d = sent(&r);
    assert!(d.contains(&"add 10.0.0.2 to map from4".to_string()) && d.contains(&"add fd00::2 to map from6".to_string()), "{d:#?}");
    assert!(!d.iter().any(|l| l.contains("from_if")), "{d:#?}");
}

fn removals(rules: &AttachmentRules) -> Vec<String> {
    plan::teardown_ops(rules)
        .iter()
        .map(|op| match op {
            Op::Element(set, _, shown) => format!("element {shown} of {set}"),
            Op::Chain(c) => format!("chain {c}"),
        })
        .collect()
}

#[test]
fn teardown_removes_dispatch_elements_then_dispatch_chains_then_hook_chains() {
    let mut r = pod(true);
    r.hooks = vec![HookChain { hook: "guard".into(), rules: vec![drop_to("203.0.113.0/24", 80)] }];
    let ops = removals(&r);
    let out = super::layout::dispatch_chain("net/ctr/eth0", true);
    let hook = super::layout::hook_chain("net/ctr/eth0", "guard", true);
    assert_eq!(
        ops,
        ["element wcniabc of from_if", &format!("chain {out}"), &format!("chain {hook}")],
        "masquerade elements are looked up in the kernel (their set, or the maps of earlier builds); the \
         masquerade chains go in their own transaction, once no pod uses them"
    );
}

#[test]
fn hooks_known_by_name_only_are_removed_in_both_directions() {
    let mut r = pod(false);
    r.hooks = vec![HookChain { hook: "guard".into(), rules: Vec::new() }];
    let ops = removals(&r);
    for out in [true, false] {
        assert!(ops.contains(&format!("chain {}", super::layout::dispatch_chain("net/ctr/eth0", out))), "{ops:#?}");
        assert!(ops.contains(&format!("chain {}", super::layout::hook_chain("net/ctr/eth0", "guard", out))), "{ops:#?}");
    }
    assert!(ops.contains(&"element wcniabc of to_if".to_string()), "{ops:#?}");
}

#[test]
fn a_gc_leftover_known_by_its_chains_is_removed_with_its_elements() {
    let mut r = AttachmentRules::new("net", "ctr", "eth0", "wcniabc");
    let a = super::layout::dispatch_chain("net/ctr/eth0", true);
    let h = super::layout::hook_chain("net/ctr/eth0", "guard", true);
    r.extra_chains = vec![h.clone(), a.clone(), "m4-0123".into()];
    let ops = removals(&r);
    assert_eq!(ops, ["element wcniabc of from_if".to_string(), format!("chain {a}"), format!("chain {h}")]);
    assert_eq!(plan::masq_chains(&r), ["m4-0123"]);
}

#[test]
fn a_socket_is_kept_for_the_whole_command_and_reused_not_closed_after_each_use() {
    // Opening a netfilter socket needs no privilege; closing one right after a commit waits for the kernel's
    // cleanup of that transaction, which DEL used to pay.
    let nft = super::Nftables::default();
    let first = nft.conn().expect("a netfilter socket").fd();
    let again = nft.conn().expect("a netfilter socket");
    assert_eq!(again.fd(), first, "an idle socket of this namespace is reused");
    let beside = nft.conn().expect("a netfilter socket");
    assert_ne!(beside.fd(), first, "one in use is never handed out twice");
    drop((again, beside));
    assert_eq!(nft.idle.lock().unwrap().len(), 2, "both stay open until the command ends");
}

/// The race a DEL of a network's last pod has with an ADD of its next one: the DEL saw the set empty, the
/// ADD committed an element since. The kernel must refuse the removal, so the ADD's masquerade stays.
#[test]
#[ignore = "needs root in a network namespace of its own: scripts/test.sh runs it under unshare -n"]
fn the_kernel_refuses_to_remove_a_masquerade_set_that_an_add_just_filled() {
    use super::layout;
    use super::wire::{Batch, Conn};
    use crate::firewall::Family;
    let c = Conn::open().unwrap();
    let mut b = Batch::new();
    layout::setup(&mut b);
    assert!(c.commit(b).unwrap().is_empty());
    let chain = "m4-0123456789abcdef";
    let set = layout::masq_set(chain);
    let mut b = Batch::new();
    layout::fresh_chain(&mut b, chain, "wasmcni masquerade of net");
    layout::masq_set_with_rule(&mut b, Family::V4, chain, "net");
    layout::set_element(&mut b, &set, vec![10, 0, 0, 2], "wasmcni net/a/eth0", "10.0.0.2");
    assert_eq!(c.commit(b).unwrap(), []);
    let handle = super::masq::rule_for(&c, &set).unwrap().expect("the set's rule in masq");

    let mut b = Batch::new();
    layout::delete_masq(&mut b, chain, Some(&handle), true);
    let refused = c.commit(b).unwrap();
    assert!(refused.len() == 1 && refused[0].errno == super::EBUSY && refused[0].what == format!("delete set {set}"), "{refused:?}");
    assert!(super::masq::rule_for(&c, &set).unwrap().is_some(), "the whole removal is undone, its rule included");

    // Once the set is empty the same removal goes through.
    let mut b = Batch::new();
    layout::delete_element(&mut b, &set, vec![10, 0, 0, 2], "10.0.0.2");
    assert_eq!(c.commit(b).unwrap(), []);
    let mut b = Batch::new();
    layout::delete_masq(&mut b, chain, Some(&handle), true);
    assert_eq!(c.commit(b).unwrap(), []);
    let asked = c.request(super::wire::msg::GETCHAIN, 0, |a| {
        a.str(1, layout::TABLE).str(3, chain);
    });
    assert_eq!(asked.unwrap().err(), Some(super::ENOENT), "the chain is gone");
}
