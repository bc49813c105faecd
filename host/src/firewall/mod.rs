//! iptables rules the plugin owns, applied through `iptables-restore --noflush` so one ADD costs one
//! process per family, not one per rule (the `iptables` crate execs per rule, which is why it is not used).

pub mod hookrules;
mod masq;
mod restore;
mod saved;

pub(crate) use masq::quote;
pub use masq::{chain_name, comment, comment_prefix, Masquerade};
pub use saved::{declares_chain, render_chain_teardown, table_section};
pub use restore::{Family, Iptables};

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
}
