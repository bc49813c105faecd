//! Everything the plugin does to netfilter, behind one interface with one implementation per backend:
//! apply an attachment's rules (masquerade, hook chains) atomically, tear them down, check them, find
//! leftovers, report status. The rest of the plugin hands over `AttachmentRules` (data) and never sees
//! rule text, chain names or tables: each backend derives its own from the attachment.

pub mod fake;
pub mod iptables;
pub mod nftables;
mod noop;
pub mod rules;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub use noop::Noop;
pub use rules::{Action, AttachmentRules, Direction, HookChain, HookRule, Masquerade, Protocol};

/// Which implementation made (and so must remove) an attachment's rules; stored in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Iptables,
    Nftables,
    /// No firewall at all (`firewallBackend: "none"`): masquerade and hook rules are someone else's job.
    None,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Iptables => "iptables",
            Backend::Nftables => "nftables",
            Backend::None => "none",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub fn multicast(self) -> &'static str {
        match self {
            Family::V4 => "224.0.0.0/4",
            Family::V6 => "ff00::/8",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{tool} not found in PATH or /usr/sbin, /sbin, /usr/bin: install iptables (apt-get install iptables)")]
    NotFound { tool: String },
    #[error("{tool} failed ({status}): {stderr}")]
    Failed { tool: String, status: String, stderr: String },
    #[error("cannot run {tool}: {source}")]
    Spawn { tool: String, source: std::io::Error },
    #[error("cannot lock {}: {source}", path.display())]
    Lock { path: std::path::PathBuf, source: std::io::Error },
    /// A backend-specific failure, worded by the backend.
    #[error("{0}")]
    Backend(String),
}

/// A change being applied; the rules are in place once `wait` returns Ok.
pub trait Applying: Send {
    fn wait(self: Box<Self>) -> Result<(), Error>;
}

/// Already applied (backends that apply synchronously).
pub struct Done(pub Result<(), String>);

impl Applying for Done {
    fn wait(self: Box<Self>) -> Result<(), Error> {
        self.0.map_err(Error::Backend)
    }
}

/// One firewall backend (netavark's driver pattern): the plugin never knows which one runs.
pub trait Firewall: Send + Sync {
    fn backend(&self) -> Backend;
    /// Starts applying `rules` atomically; the caller does other work until it waits. Applying rules that
    /// are already there (a retried ADD) must not duplicate them.
    fn apply(&self, rules: &AttachmentRules) -> Result<Box<dyn Applying>, Error>;
    /// Removes every rule `rules` describes, and only those; what is already gone counts as removed.
    fn teardown(&self, rules: &AttachmentRules) -> Result<(), Error>;
    /// What of `rules` is missing or differs, in words for CHECK.
    fn check(&self, rules: &AttachmentRules) -> Result<Vec<String>, Error>;
    /// Attachments of `network` that have rules of ours, found by our naming alone (for GC). `ifname` is
    /// empty when the naming does not hold it.
    fn leftovers(&self, network: &str) -> Result<Vec<AttachmentRules>, Error>;
    /// Removes what `network` itself has here and no pod uses any more (GC, after the leftovers): the
    /// nftables backend's masquerade set, rule and chain, which DEL leaves for the network's next pod.
    fn sweep(&self, _network: &str) -> Result<(), Error> {
        Ok(())
    }
    /// Whether the backend works here (STATUS).
    fn status(&self) -> Result<(), Error>;
}

/// The backends of this node, by name: the record says which one made an attachment's rules.
pub trait Firewalls: Sync {
    fn get(&self, backend: Backend) -> &dyn Firewall;

    /// The backend for a network: the configured one, or (None: `auto`) the one this node supports.
    fn choose(&self, configured: Option<Backend>) -> Backend {
        configured.unwrap_or(Backend::Iptables)
    }
}

/// The real backends.
pub struct NodeFirewalls {
    iptables: iptables::Iptables,
    nftables: nftables::Nftables,
    noop: Noop,
    auto: std::sync::OnceLock<Backend>,
}

impl NodeFirewalls {
    /// `run_dir`: where the backends keep their node-wide locks.
    pub fn new(run_dir: &std::path::Path) -> Self {
        NodeFirewalls { iptables: iptables::Iptables::new(run_dir), nftables: nftables::Nftables::default(), noop: Noop, auto: Default::default() }
    }
}

impl Firewalls for NodeFirewalls {
    fn get(&self, backend: Backend) -> &dyn Firewall {
        match backend {
            Backend::Iptables => &self.iptables,
            Backend::Nftables => &self.nftables,
            Backend::None => &self.noop,
        }
    }

    /// `auto` is nftables wherever the kernel's nf_tables answers (every kernel since 3.13 with the module,
    /// and what iptables-nft writes to anyway), iptables otherwise: netavark and kube-proxy are moving the
    /// same way, and native nftables keeps the per-pod cost flat. One probe (a generation query) per process.
    fn choose(&self, configured: Option<Backend>) -> Backend {
        configured.unwrap_or_else(|| {
            *self.auto.get_or_init(|| match self.nftables.status() {
                Ok(()) => Backend::Nftables,
                Err(e) => {
                    log::info!("firewallBackend auto: nftables is not usable here ({e}), using iptables");
                    Backend::Iptables
                }
            })
        })
    }
}
