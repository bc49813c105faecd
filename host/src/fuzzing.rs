//! Entry points for the fuzz targets (fuzz/), shared with `cargo test`, which replays the checked-in corpus
//! through them (tests/fuzz_corpus.rs): a crash the fuzzer once found fails CI from then on.
//! Each takes arbitrary bytes, must never panic, and checks what must hold of whatever it accepts.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::cni::request::{parse_args, Command, Request};
use crate::cni::result::CniResult;
use crate::cni::version::{Version, SUPPORTED};
use crate::firewall::iptables::{leaks, masq, saved};
use crate::firewall::{Family, Masquerade};
use crate::hooks::engine::wit;
use crate::hooks::{manifest, validate};
use crate::ipam::IpamConfig;

/// The targets by name, as fuzz/fuzz_targets and the corpus directories call them.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("request", request),
    ("result", result),
    ("cni_args", cni_args),
    ("manifest", hooks_manifest),
    ("hook_answer", hook_answer),
    ("iptables_save", iptables_save),
];

/// What a person reads must never be a Rust Debug dump (unless it quotes the input that said so).
fn readable(msg: &str, input: &[u8]) {
    let input = String::from_utf8_lossy(input);
    // Quoted input has its newlines escaped on purpose: that tell says nothing here.
    for dump in crate::error::DEBUG_TELLS.iter().filter(|t| **t != "\\n") {
        assert!(!msg.contains(dump) || input.contains(dump), "message shows Rust Debug output ({dump}): {msg}");
    }
}

/// `KEY=VALUE` lines (the environment), an empty line, then the config on stdin.
pub fn request(data: &[u8]) {
    let split = data.windows(2).position(|w| w == b"\n\n").unwrap_or(data.len());
    let (head, stdin) = (&data[..split], data.get(split + 2..).unwrap_or(&[]));
    let env: HashMap<String, String> = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let command = match env.get("CNI_COMMAND").map(|c| Command::parse(c)) {
        Some(Ok(c)) => c,
        _ => Command::Add,
    };
    match Request::parse(command, &env, stdin) {
        Ok(req) => {
            assert!(req.ifname.len() <= 15 && !req.ifname.contains('/'), "accepted ifname {:?}", req.ifname);
            assert!(!req.container_id.contains('/') && req.container_id != "..", "accepted id {:?}", req.container_id);
            assert!(crate::naming::name_problem(&req.conf.name, usize::MAX).is_none() || req.conf.name.is_empty());
            // Everything parsed must also survive the parts ADD reads next.
            let _ = IpamConfig::load(&req.raw_conf.get("ipam").cloned().unwrap_or(Value::Null), None, false);
        }
        Err(e) => readable(&e.to_string(), data),
    }
}

/// A result as a delegated IPAM plugin or a previous plugin gives it, converted to every version.
pub fn result(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(r) = CniResult::from_json(&v) else { return };
    for s in SUPPORTED {
        let version = Version::parse(s).expect("a supported version parses");
        let out = r.to_json(&version);
        if version.at_least("0.3.0") {
            let back = CniResult::from_json(&out).unwrap_or_else(|e| panic!("our own {s} result does not parse: {e}"));
            if *s == crate::cni::version::LATEST {
                assert_eq!(back, r, "the latest version's result does not round-trip");
            }
        }
    }
}

pub fn cni_args(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    match parse_args(&s) {
        Ok(pairs) => {
            for (k, v) in pairs {
                assert!(!k.is_empty() && !k.contains(';') && !k.contains('=') && !v.contains(';'));
            }
        }
        Err(e) => readable(&e.to_string(), data),
    }
}

pub fn hooks_manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(specs) = manifest::parse_manifest(&text, Path::new("/hooks")) {
        for s in specs {
            assert!(crate::naming::name_problem(&s.name, usize::MAX).is_none(), "accepted hook name {:?}", s.name);
        }
    }
}

/// Reads typed values out of fuzz bytes: every byte string is some value, so the fuzzer explores fields.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map(|(b, r)| (*b, r)).unwrap_or((0, &[]));
        self.0 = rest;
        b
    }
    fn text(&mut self) -> String {
        let n = (self.byte() as usize).min(self.0.len());
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        String::from_utf8_lossy(s).into_owned()
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        (self.byte() & 1 == 1).then(|| f(self))
    }
    fn list<T>(&mut self, mut f: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let n = self.byte() as usize % 40;
        (0..n).map(|_| f(self)).collect()
    }
}

/// A pre-ADD plan and a post-ADD rule list as a hook might return them, checked as the host checks them.
pub fn hook_answer(data: &[u8]) {
    let mut b = Bytes(data);
    let ipam = match b.byte() % 3 {
        0 => None,
        1 => Some(r#"{"subnet":"10.10.0.0/24","gateway":"10.10.0.1"}"#),
        _ => Some(r#"{"ranges":[[{"subnet":"10.10.0.0/24"}],[{"subnet":"fd10::/64"}]]}"#),
    }
    .map(|j| IpamConfig::parse(&serde_json::from_str(j).unwrap()).expect("fixed ipam config"));
    let dns = |b: &mut Bytes| wit::Dns {
        nameservers: b.list(Bytes::text),
        domain: b.opt(Bytes::text),
        search: b.list(Bytes::text),
        options: b.list(Bytes::text),
    };
    let plan = wit::Plan {
        ips: b.list(Bytes::text),
        routes: b.list(|b| wit::Route { dst: b.text(), gw: b.opt(Bytes::text) }),
        mtu: b.opt(|b| u32::from_le_bytes([b.byte(), b.byte(), b.byte(), b.byte()])),
        mac: b.opt(Bytes::text),
        dns: dns(&mut b),
    };
    if let Err(e) = validate::plan(plan, ipam.as_ref()) {
        readable(&e, data);
    }
    let rules = b.list(|b| wit::Rule {
        direction: if b.byte() & 1 == 0 { wit::Direction::Ingress } else { wit::Direction::Egress },
        protocol: [wit::Protocol::Any, wit::Protocol::Tcp, wit::Protocol::Udp, wit::Protocol::Icmp][b.byte() as usize % 4],
        ports: b.opt(|b| wit::PortRange {
            start: u16::from_le_bytes([b.byte(), b.byte()]),
            end: u16::from_le_bytes([b.byte(), b.byte()]),
        }),
        peer: b.opt(Bytes::text),
        action: [wit::Action::Accept, wit::Action::Drop, wit::Action::Reject][b.byte() as usize % 3],
        log_prefix: b.opt(Bytes::text),
    });
    match validate::rules(rules) {
        Ok(rules) => {
            for r in rules {
                if let Some((start, end)) = r.ports {
                    assert!(start >= 1 && start <= end);
                }
                if let Some(p) = &r.log_prefix {
                    let printable = p.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !p.contains(['"', '\\']);
                    assert!(p.len() <= 28 && printable, "log prefix {p:?} reaches a rule");
                }
            }
        }
        Err(e) => readable(&e, data),
    }
}

/// An `iptables-save` dump as every reader of one sees it (teardown, CHECK, GC's leak sweep).
pub fn iptables_save(data: &[u8]) {
    let dump = String::from_utf8_lossy(data);
    for table in ["nat", "filter"] {
        let section = saved::table_section(&dump, table);
        assert!(dump.contains(section));
        let _ = saved::declares_chain(section, "CNI-abc");
        let _ = saved::render_chain_teardown(table, "CNI-abc", section);
    }
    let _ = saved::render_inverse(&dump);
    // The masquerade chain's teardown and CHECK read the nat table's dump too.
    let nat = saved::table_section(&dump, "nat");
    let chain = masq::chain_name("net", "abc");
    let pod: std::net::IpAddr = "10.0.0.2".parse().unwrap();
    let m = Masquerade { sources: vec![(pod, "10.0.0.0/24".parse().unwrap())], except: vec!["10.244.0.0/16".parse().unwrap()] };
    let _ = masq::render_teardown(&chain, &[pod], nat);
    let _ = masq::check(&chain, &m, Family::V4, nat);
    let _ = leaks::masquerade("net", &dump);
    let _ = leaks::hook_chains("net", &dump);
}
