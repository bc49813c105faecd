//! The firewall backend under test, and what the tests read of its state. The kernel suite runs once per
//! backend (`WASMCNI_TEST_BACKEND=iptables|nftables`, iptables when unset): `Node::conf` asks for it, and
//! the tests look at rules only through these helpers, so one test covers both.

use super::support::Node;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fw {
    Iptables,
    Nftables,
}

impl Fw {
    pub fn name(self) -> &'static str {
        match self {
            Fw::Iptables => "iptables",
            Fw::Nftables => "nftables",
        }
    }
}

/// The backend this run of the suite tests.
pub fn under_test() -> Fw {
    match std::env::var("WASMCNI_TEST_BACKEND").as_deref() {
        Ok("nftables") => Fw::Nftables,
        Ok("iptables") | Err(_) => Fw::Iptables,
        Ok(other) => panic!("WASMCNI_TEST_BACKEND={other:?}: expected iptables or nftables"),
    }
}

/// Whether a rule line (either backend's listing) drops TCP to `port`.
pub fn drops_port(line: &str, port: u16) -> bool {
    (line.contains(&format!("--dport {port} ")) && line.ends_with("-j DROP"))
        || (line.contains(&format!("dport {port} ")) && line.trim_end().ends_with(" drop"))
}

/// How our nftables comments name an attachment (eth0), as `nft list` quotes it.
fn tag(network: &str, id: &str) -> String {
    format!("\"wasmcni {network}/{id}/eth0")
}

/// The set of `nft list table` output that has an element line containing `element`.
fn masq_set_holding(dump: &str, element: &str) -> Option<String> {
    let mut set = None;
    for l in dump.lines().map(str::trim) {
        if let Some(name) = l.strip_prefix("set ").and_then(|r| r.strip_suffix(" {")) {
            set = Some(name.to_string());
        } else if l.starts_with("map ") || l.starts_with("chain ") {
            set = None;
        } else if l.contains(element) && set.is_some() {
            return set;
        }
    }
    None
}

/// A chain of `nft list table` output: its name and lines (comment and rules).
struct NftChain<'a> {
    name: &'a str,
    lines: Vec<&'a str>,
}

fn nft_chains(dump: &str) -> Vec<NftChain<'_>> {
    let mut out = Vec::new();
    let mut current: Option<NftChain> = None;
    for line in dump.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("chain ").and_then(|r| r.strip_suffix(" {")) {
            current = Some(NftChain { name, lines: Vec::new() });
        } else if t == "}" {
            out.extend(current.take());
        } else if let Some(c) = current.as_mut() {
            if !t.is_empty() {
                c.lines.push(t);
            }
        }
    }
    out
}

impl Node {
    /// Our table, as `nft list table` prints it ("" when there is none).
    pub fn nft_table(&self) -> String {
        let out = self.ns.exec(&["nft", "list", "table", "inet", "wasmcni"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn tag(&self, id: &str) -> String {
        tag(&self.network, id)
    }

    /// Every rule, chain and element of any attachment, in both backends (a leak into either shows). The
    /// node's and the networks' shared pieces stay: iptables' WASMCNI-FORWARD and its jump, nftables'
    /// table, maps, base chains, `masq`, and each network's masquerade set, rule and chain (GC removes
    /// those once empty: `masquerade_pieces`).
    pub fn attachment_rules(&self) -> Vec<String> {
        let mut out: Vec<String> = (self.ns.iptables_save() + &self.ns.ip6tables_save())
            .lines()
            .filter(|l| l.contains("CNI-") && !l.contains("\"wasmcni hooks\"") && !l.starts_with(":WASMCNI-FORWARD "))
            .map(String::from)
            .collect();
        let nft = self.nft_table();
        out.extend(nft.lines().map(str::trim).filter(|l| l.contains("comment \"wasmcni ") && !l.starts_with("comment ")).map(|l| format!("nft element {l}")));
        let shared = |c: &str| ["postrouting", "forward", "masq"].contains(&c) || c.starts_with("m4-") || c.starts_with("m6-");
        out.extend(nft_chains(&nft).iter().filter(|c| !shared(c.name)).map(|c| format!("nft chain {}", c.name)));
        out
    }

    /// nftables' per-network masquerade pieces: the sets, their rules in `masq`, the masquerade chains.
    pub fn masquerade_pieces(&self) -> Vec<String> {
        let nft = self.nft_table();
        let mut out: Vec<String> = nft.lines().map(str::trim).filter(|l| l.starts_with("set s4-") || l.starts_with("set s6-")).map(String::from).collect();
        for c in nft_chains(&nft) {
            if c.name == "masq" {
                out.extend(c.lines.iter().map(|l| format!("masq: {l}")));
            } else if c.name.starts_with("m4-") || c.name.starts_with("m6-") {
                out.push(format!("chain {}", c.name));
            }
        }
        out
    }

    /// What the backend under test holds for attachment `id` (eth0): rules and chain declarations, or
    /// elements and chains.
    pub fn rules_of(&self, id: &str) -> Vec<String> {
        self.rules_in(&self.network.clone(), id)
    }

    /// Like `rules_of`, for an attachment of another network on this node.
    pub fn rules_in(&self, network: &str, id: &str) -> Vec<String> {
        match under_test() {
            Fw::Iptables => {
                let masq = wasmcni::firewall::iptables::masquerade_chain_name(network, id);
                let hook_comment = format!(": {network}/{id}/eth0\"");
                (self.ns.iptables_save() + &self.ns.ip6tables_save())
                    .lines()
                    .filter(|l| l.contains(&masq) || l.contains(&hook_comment))
                    .map(String::from)
                    .collect()
            }
            Fw::Nftables => {
                let (nft, tag) = (self.nft_table(), tag(network, id));
                let mut out: Vec<String> = nft.lines().map(str::trim).filter(|l| l.contains(&tag) && !l.starts_with("comment ")).map(String::from).collect();
                for c in nft_chains(&nft).iter().filter(|c| c.lines.first().is_some_and(|l| l.starts_with("comment ") && l.contains(&tag))) {
                    out.push(format!("chain {}", c.name));
                    out.extend(c.lines[1..].iter().map(|l| l.to_string()));
                }
                out
            }
        }
    }

    /// The rules hook `hook` holds for attachment `id`, one line each.
    pub fn hook_rules_of(&self, id: &str, hook: &str) -> Vec<String> {
        match under_test() {
            Fw::Iptables => {
                let chain = wasmcni::firewall::iptables::hook_chain_name(&self.network, id, "eth0", hook);
                (self.ns.iptables_save() + &self.ns.ip6tables_save()).lines().filter(|l| l.starts_with(&format!("-A {chain} "))).map(String::from).collect()
            }
            Fw::Nftables => {
                let (nft, comment) = (self.nft_table(), format!("comment {} hook {hook}\"", self.tag(id)));
                nft_chains(&nft)
                    .iter()
                    .filter(|c| c.lines.first() == Some(&comment.as_str()))
                    .flat_map(|c| c.lines[1..].iter().map(|l| l.to_string()))
                    .collect()
            }
        }
    }

    /// Whether attachment `id` has masquerade for `ip` in the backend under test.
    pub fn masquerades(&self, id: &str, ip: &str) -> bool {
        match under_test() {
            Fw::Iptables => {
                let chain = wasmcni::firewall::iptables::masquerade_chain_name(&self.network, id);
                let saved = if ip.contains(':') { self.ns.ip6tables_save() } else { self.ns.iptables_save() };
                let jump = saved.lines().any(|l| l.starts_with(&format!("-A POSTROUTING -s {ip}/")) && l.ends_with(&format!("-j {chain}")));
                jump && saved.lines().any(|l| l.starts_with(&format!("-A {chain} ")) && l.ends_with("-j MASQUERADE"))
            }
            Fw::Nftables => {
                let nft = self.nft_table();
                // Any interface of the container: the comment names it after the id.
                let Some(set) = masq_set_holding(&nft, &format!("{ip} comment \"wasmcni {}/{id}/", self.network)) else { return false };
                let chain = format!("m{}", &set[1..]);
                let chains = nft_chains(&nft);
                let sent = chains.iter().any(|c| c.name == "masq" && c.lines.iter().any(|l| l.contains(&format!("@{set} jump {chain}"))));
                sent && chains.iter().any(|c| c.name == chain && c.lines.iter().any(|l| l.ends_with("masquerade")))
            }
        }
    }

    /// Empties attachment `id`'s masquerade by hand (its chain stays) and returns how CHECK names that.
    pub fn flush_masquerade(&self, id: &str, ip: &str) -> String {
        match under_test() {
            Fw::Iptables => {
                let chain = wasmcni::firewall::iptables::masquerade_chain_name(&self.network, id);
                assert!(self.ns.exec(&["iptables", "-t", "nat", "-F", &chain]).status.success());
                format!("masquerade chain {chain} has no MASQUERADE rule (flushed?)")
            }
            Fw::Nftables => {
                let chain = self.masq_chain_of(ip);
                assert!(self.ns.exec(&["nft", "flush", "chain", "inet", "wasmcni", &chain]).status.success());
                format!("masquerade chain {chain} has no rules (flushed?)")
            }
        }
    }

    /// Removes attachment `id`'s masquerade for `ip` by hand and returns how CHECK names that.
    pub fn remove_masquerade(&self, id: &str, ip: &str) -> String {
        match under_test() {
            Fw::Iptables => {
                let chain = wasmcni::firewall::iptables::masquerade_chain_name(&self.network, id);
                let table = if ip.contains(':') { self.ns.ip6tables_save() } else { self.ns.iptables_save() };
                let jump = table.lines().find(|l| l.starts_with("-A POSTROUTING") && l.ends_with(&chain)).expect("the jump").to_string();
                // The jump carries a quoted comment: delete it as iptables-save printed it, through restore.
                let input = self.dir.path().join("teardown");
                std::fs::write(&input, format!("*nat\n-D{}\n-F {chain}\n-X {chain}\nCOMMIT\n", &jump[2..])).unwrap();
                let tool = if ip.contains(':') { "ip6tables-restore" } else { "iptables-restore" };
                let restore = format!("{tool} --noflush < {}", input.display());
                assert!(self.ns.exec(&["sh", "-c", &restore]).status.success());
                format!("masquerade chain {chain} is missing")
            }
            Fw::Nftables => {
                let set = self.masq_set_of(id, ip).expect("a masquerade element");
                let out = self.ns.exec(&["nft", "delete", "element", "inet", "wasmcni", &set, &format!("{{ {ip} }}")]);
                assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                format!("the masquerade of {ip} (element of set {set}) is missing")
            }
        }
    }

    /// The masquerade set (nftables) holding attachment `id`'s address `ip`.
    pub fn masq_set_of(&self, id: &str, ip: &str) -> Option<String> {
        masq_set_holding(&self.nft_table(), &format!("{ip} comment {}", self.tag(id)))
    }

    /// Whether a bridged attachment's hook rules are reached by its address (its routed traffic enters
    /// FORWARD from the bridge, not from its veth).
    pub fn dispatched_by_address(&self, id: &str, ip: &str) -> bool {
        match under_test() {
            Fw::Iptables => (self.ns.iptables_save() + &self.ns.ip6tables_save())
                .lines()
                .any(|l| l.starts_with("-A WASMCNI-FORWARD") && l.contains(&format!("-s {ip}/")) && l.contains(&format!("/{id}/eth0\""))),
            Fw::Nftables => {
                let nft = self.nft_table();
                let map = if ip.contains(':') { "map from6 {" } else { "map from4 {" };
                let Some(start) = nft.find(map) else { return false };
                let block = &nft[start..start + nft[start..].find("\n\t}").unwrap_or(nft.len() - start)];
                block.contains(&format!("{ip} comment {}", self.tag(id)))
            }
        }
    }

    /// The nftables masquerade chain that serves an address (through its set).
    fn masq_chain_of(&self, ip: &str) -> String {
        let nft = self.nft_table();
        let set = masq_set_holding(&nft, &format!("{ip} comment ")).unwrap_or_else(|| panic!("no element for {ip}: {nft}"));
        format!("m{}", &set[1..])
    }
}
