//! The iptables backend: rules applied through `iptables-restore --noflush`, one process per family for a
//! whole attachment (the `iptables` crate execs per rule, which is why it is not used), with the reference
//! plugins' chain names and comments for masquerade.

mod hookrules;
pub(crate) mod leaks;
pub(crate) mod masq;
mod restore;
pub(crate) mod saved;

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

pub use hookrules::{chain_name as hook_chain_name, comment as hook_comment, SHARED_CHAIN};
pub use masq::{chain_name as masquerade_chain_name, comment as masquerade_comment};
use restore::{Pending, Tools};
pub use saved::{declares_chain, table_section};

use super::{Applying, AttachmentRules, Backend, Error, Family, Firewall, Masquerade};

#[derive(Debug, Clone)]
pub struct Iptables {
    tools: Tools,
    /// Node-wide locks (the netconf's runDir, /run/wasmcni by default: tmpfs, so a lock never outlives a
    /// boot), whatever the netconf's stateDir.
    lock_dir: PathBuf,
}

impl Iptables {
    pub fn new(lock_dir: &Path) -> Self {
        Iptables { tools: Tools, lock_dir: lock_dir.to_path_buf() }
    }
}

/// The families an attachment has rules in: those of its addresses, and both when none is known (cleanup
/// by name).
fn families(rules: &AttachmentRules) -> Vec<Family> {
    let mut f: Vec<Family> = rules.addresses.iter().map(|a| Family::of(*a)).collect();
    if let Some(m) = &rules.masquerade {
        f.extend(m.sources.iter().map(|(ip, _)| Family::of(*ip)));
    }
    if f.is_empty() {
        f = vec![Family::V4, Family::V6];
    }
    f.sort();
    f.dedup();
    f
}

/// A node without ip6tables has no v6 rules to remove or leak.
fn missing_v6_tools(family: Family, e: &Error) -> bool {
    family == Family::V6 && matches!(e, Error::NotFound { .. })
}

struct IptablesApplying {
    tools: Tools,
    lock_dir: PathBuf,
    runs: Vec<(Family, Pending, String)>,
    hooks: bool,
    /// Held until the restores are reaped; the children hold it too (see attachment_lock).
    _lock: Flock<File>,
}

impl Applying for IptablesApplying {
    fn wait(self: Box<Self>) -> Result<(), Error> {
        let mut outcome = Ok(());
        // Every restore is reaped, also after a failure, so an unwind sees their final state.
        for (family, run, input) in self.runs {
            let result = match run.wait() {
                // The shared chain may be missing (first hook rule on this node): create it and retry.
                Err(_) if self.hooks => {
                    ensure_shared_chain(&self.tools, family, &self.lock_dir).and_then(|_| self.tools.restore(family, &input))
                }
                other => other,
            };
            outcome = outcome.and(result);
        }
        outcome
    }
}

impl Iptables {
    /// A lock for one attachment's rules. ADD holds it, and so does every iptables-restore it starts (the
    /// child inherits the open file): a teardown takes it first, so it never reads the rules while a restore
    /// of a killed ADD could still commit more.
    fn attachment_lock(&self, rules: &AttachmentRules) -> Result<Flock<File>, Error> {
        let key = crate::naming::attachment_key(&rules.network, &rules.container_id, &rules.ifname);
        let name = crate::netaddr::hex(&Sha256::digest(key.as_bytes())[..12], "");
        let path = self.lock_dir.join("attachments").join(format!("{name}.lock"));
        crate::fsutil::lock(&path, FlockArg::LockExclusive).map_err(|source| Error::Lock { path, source })
    }

    /// The input creating the attachment's rules for `family`: filter first, so a missing shared chain fails
    /// the batch before any nat change.
    fn render(rules: &AttachmentRules, family: Family) -> String {
        let mut input = hookrules::render(rules, family).unwrap_or_default();
        if let Some(m) = &rules.masquerade {
            if m.sources.iter().any(|(ip, _)| Family::of(*ip) == family) {
                input += &masq::render_setup(&rules.network, &rules.container_id, m, family);
            }
        }
        input
    }

    /// DEL's fast path: the exact inverse of what ADD applied, without reading the tables (iptables-save
    /// of a full node costs more than the rest of DEL). Only for rules known in full (from a record); false
    /// when it did not apply as a whole, and then nothing of it did.
    fn teardown_as_recorded(&self, rules: &AttachmentRules) -> bool {
        let known = rules.extra_chains.is_empty()
            && rules.hooks.iter().all(|h| !h.rules.is_empty())
            && rules.masquerade.as_ref().is_none_or(|m| !m.sources.is_empty())
            && !rules.addresses.is_empty();
        if !known {
            return false;
        }
        for family in families(rules) {
            let setup = Self::render(rules, family);
            if setup.is_empty() {
                continue;
            }
            if let Err(e) = self.tools.restore(family, &saved::render_inverse(&setup)) {
                // Already partly gone, or the masquerade chain still used by another interface: read the
                // tables and remove what is there. A family already done stays done.
                log::debug!("iptables: the recorded rules of {}/{} are not all there ({e}); reading the tables", rules.container_id, rules.ifname);
                return false;
            }
        }
        true
    }

    fn teardown_family(&self, rules: &AttachmentRules, family: Family) -> Result<(), Error> {
        let saved = match self.tools.save(family, None) {
            // Without the tools nothing can have been applied: there is nothing to remove.
            Err(Error::NotFound { .. }) => return Ok(()),
            other => other?,
        };
        let mut input = String::new();
        if let Some(m) = &rules.masquerade {
            let chain = masq::chain_name(&rules.network, &rules.container_id);
            let sources: Vec<_> = m.sources.iter().map(|(ip, _)| *ip).filter(|ip| Family::of(*ip) == family).collect();
            // Known sources of the other family only: nothing of this family's to remove. No sources known
            // at all (cleanup by name): the whole chain goes, in each family.
            let by_name = m.sources.is_empty();
            if by_name || !sources.is_empty() {
                input += &masq::render_teardown(&chain, &sources, table_section(&saved, "nat")).unwrap_or_default();
            }
        }
        let filter = table_section(&saved, "filter");
        let hook_chains = rules.hooks.iter().map(|h| hookrules::chain_name(&rules.network, &rules.container_id, &rules.ifname, &h.hook));
        for chain in hook_chains.chain(rules.extra_chains.iter().cloned()) {
            let table = if chain.starts_with("CNI-") { "nat" } else { "filter" };
            let section = if table == "nat" { table_section(&saved, "nat") } else { filter };
            input += &saved::render_chain_teardown(table, &chain, section).unwrap_or_default();
        }
        if input.is_empty() {
            return Ok(());
        }
        self.tools.restore(family, &input)
    }
}

impl Firewall for Iptables {
    fn backend(&self) -> Backend {
        Backend::Iptables
    }

    fn apply(&self, rules: &AttachmentRules) -> Result<Box<dyn Applying>, Error> {
        let lock = self.attachment_lock(rules)?;
        let mut runs = Vec::new();
        for family in families(rules) {
            let input = Self::render(rules, family);
            if !input.is_empty() {
                runs.push((family, self.tools.restore_start(family, &input, Some(lock.as_fd()))?, input));
            }
        }
        let hooks = rules.hooks.iter().any(|h| !h.rules.is_empty());
        Ok(Box::new(IptablesApplying { tools: self.tools.clone(), lock_dir: self.lock_dir.clone(), runs, hooks, _lock: lock }))
    }

    fn teardown(&self, rules: &AttachmentRules) -> Result<(), Error> {
        let _lock = self.attachment_lock(rules)?;
        if self.teardown_as_recorded(rules) {
            return Ok(());
        }
        for family in [Family::V4, Family::V6] {
            match self.teardown_family(rules, family) {
                Err(e) if missing_v6_tools(family, &e) => {}
                other => other?,
            }
        }
        Ok(())
    }

    fn check(&self, rules: &AttachmentRules) -> Result<Vec<String>, Error> {
        let mut missing = Vec::new();
        for family in families(rules) {
            let wants_masq = rules.masquerade.as_ref().is_some_and(|m| m.sources.iter().any(|(ip, _)| Family::of(*ip) == family));
            let expected = hookrules::expected_rules(rules, family);
            if !wants_masq && expected.is_empty() {
                continue;
            }
            let saved = self.tools.save(family, None)?;
            if let Some(m) = rules.masquerade.as_ref().filter(|_| wants_masq) {
                let chain = masq::chain_name(&rules.network, &rules.container_id);
                missing.extend(masq::check(&chain, m, family, table_section(&saved, "nat")));
            }
            let filter = table_section(&saved, "filter");
            for (chain, n) in expected {
                if !declares_chain(filter, &chain) {
                    missing.push(format!("hook rule chain {chain} is missing"));
                    continue;
                }
                let own = format!("-A {chain} ");
                let have = filter.lines().filter(|l| l.starts_with(&own)).count();
                if have < n {
                    missing.push(format!("hook rule chain {chain} holds {have} of its {n} rules"));
                }
                let jump = format!("-j {chain}");
                if !filter.lines().any(|l| l.starts_with(&format!("-A {SHARED_CHAIN} ")) && l.ends_with(&jump)) {
                    missing.push(format!("{SHARED_CHAIN} no longer jumps to hook rule chain {chain}"));
                }
            }
        }
        Ok(missing)
    }

    fn leftovers(&self, network: &str) -> Result<Vec<AttachmentRules>, Error> {
        let mut found: BTreeMap<(String, String), AttachmentRules> = BTreeMap::new();
        for family in [Family::V4, Family::V6] {
            let saved = match self.tools.save(family, None) {
                Err(e) if missing_v6_tools(family, &e) => continue,
                other => other?,
            };
            for id in leaks::masquerade(network, table_section(&saved, "nat")) {
                let r = found.entry((id.clone(), String::new())).or_insert_with(|| AttachmentRules::new(network, &id, "", ""));
                r.masquerade = Some(Masquerade { sources: Vec::new(), except: Vec::new() });
            }
            for ((id, ifname), chains) in leaks::hook_chains(network, table_section(&saved, "filter")) {
                let r = found.entry((id.clone(), ifname.clone())).or_insert_with(|| AttachmentRules::new(network, &id, &ifname, ""));
                for c in chains {
                    if !r.extra_chains.contains(&c) {
                        r.extra_chains.push(c);
                    }
                }
            }
        }
        Ok(found.into_values().collect())
    }

    fn status(&self) -> Result<(), Error> {
        self.tools.probe(Family::V4)
    }
}

/// Creates the shared chain if it is missing, under a lock so concurrent ADDs cannot both create it (a
/// second declaration would flush the first one's jumps). The chain is per node, not per network, so the
/// lock is too.
fn ensure_shared_chain(tools: &Tools, family: Family, lock_dir: &Path) -> Result<(), Error> {
    let path = lock_dir.join("firewall.lock");
    let _lock = crate::fsutil::lock(&path, FlockArg::LockExclusive).map_err(|source| Error::Lock { path: path.clone(), source })?;
    let saved = tools.save(family, Some("filter"))?;
    if !declares_chain(&saved, SHARED_CHAIN) {
        tools.restore(family, &hookrules::render_shared_setup())?;
    }
    Ok(())
}
