//! A recording fake firewall for unit tests: remembers what is applied per attachment, writes every call
//! down, and fails on demand.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Applying, AttachmentRules, Backend, Done, Error, Firewall};

#[derive(Debug, Default)]
pub struct State {
    /// Applied rules by "<network>/<id>/<ifname>".
    pub applied: BTreeMap<String, AttachmentRules>,
    pub calls: Vec<String>,
    /// Calls ("apply", "teardown", "check", "leftovers", "status") that fail, each once.
    pub fail: Vec<String>,
}

#[derive(Clone)]
pub struct FakeFirewall {
    backend: Backend,
    state: Arc<Mutex<State>>,
    journal: Option<crate::netlink::fake::Journal>,
}

impl FakeFirewall {
    pub fn new(backend: Backend) -> Self {
        FakeFirewall { backend, state: Arc::default(), journal: None }
    }

    /// Also writes every call as "firewall: <call>" into `journal` (the fake kernel's call log).
    pub fn with_journal(mut self, journal: crate::netlink::fake::Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn fail_once(&self, call: &str) {
        self.state().fail.push(call.into());
    }

    fn call(&self, what: &str, rules: Option<&AttachmentRules>) -> Result<(), Error> {
        let key = rules.map(key).unwrap_or_default();
        let line = format!("{what} {key}").trim_end().to_string();
        if let Some(j) = &self.journal {
            (j.0)(format!("firewall: {line}"));
        }
        let mut s = self.state();
        s.calls.push(line);
        if let Some(i) = s.fail.iter().position(|f| f == what) {
            s.fail.remove(i);
            return Err(Error::Backend(format!("{what} failed (injected)")));
        }
        Ok(())
    }
}

pub fn key(r: &AttachmentRules) -> String {
    crate::naming::attachment_key(&r.network, &r.container_id, &r.ifname)
}

impl Firewall for FakeFirewall {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn apply(&self, rules: &AttachmentRules) -> Result<Box<dyn Applying>, Error> {
        self.call("apply", Some(rules))?;
        self.state().applied.insert(key(rules), rules.clone());
        Ok(Box::new(Done(Ok(()))))
    }

    fn teardown(&self, rules: &AttachmentRules) -> Result<(), Error> {
        self.call("teardown", Some(rules))?;
        let mut s = self.state();
        // By container (a leftover found by masquerade comment has no ifname): every interface of it.
        if rules.ifname.is_empty() {
            s.applied.retain(|_, r| !(r.network == rules.network && r.container_id == rules.container_id));
        } else {
            s.applied.remove(&key(rules));
        }
        Ok(())
    }

    fn check(&self, rules: &AttachmentRules) -> Result<Vec<String>, Error> {
        self.call("check", Some(rules))?;
        Ok(match self.state().applied.get(&key(rules)) {
            Some(have) if have == rules => Vec::new(),
            Some(_) => vec![format!("the rules of {} differ", key(rules))],
            None if rules.is_empty() => Vec::new(),
            None => vec![format!("the rules of {} are missing", key(rules))],
        })
    }

    fn leftovers(&self, network: &str) -> Result<Vec<AttachmentRules>, Error> {
        self.call("leftovers", None)?;
        Ok(self.state().applied.values().filter(|r| r.network == network).cloned().collect())
    }

    fn status(&self) -> Result<(), Error> {
        self.call("status", None)
    }
}

/// The fake as the node's only backends.
pub struct FakeFirewalls(pub FakeFirewall, pub super::Noop);

impl super::Firewalls for FakeFirewalls {
    fn get(&self, backend: Backend) -> &dyn Firewall {
        match backend {
            Backend::None => &self.1,
            _ => &self.0,
        }
    }
}
