//! The crate's error type and its mapping to CNI error codes (spec §"Error"): module errors fold into
//! `Error`, which knows its code; the protocol boundary turns it into an `ErrorReply`.

use std::io;

/// Our own codes, all >= 100 as the spec reserves 0-99 for itself. Documented in docs/errors.md.
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    pub const LIMITED_RESOURCES: u32 = 51;
    pub const NETLINK: u32 = 100;
    pub const IPAM_EXHAUSTED: u32 = 101;
    pub const IPAM_DUPLICATE: u32 = 102;
    pub const FIREWALL: u32 = 103;
    pub const HOOK: u32 = 104;
    pub const CHECK_FAILED: u32 = 105;
    pub const INTERNAL: u32 = 106;
    pub const ADDRESS_UNAVAILABLE: u32 = 107;
    /// A delegated plugin failed without a CNI error object (the message says so).
    pub const DELEGATE_GAVE_NO_CODE: u32 = 999;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("incompatible CNI version {requested}: this plugin supports {supported}")]
    IncompatibleVersion { requested: String, supported: String },
    #[error("unsupported network config field: {0}")]
    UnsupportedField(String),
    #[error("{0}")]
    UnknownContainer(String),
    #[error("invalid environment variable {var}: {msg}")]
    InvalidEnv { var: &'static str, msg: String },
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    #[error("failed to decode {what}: {source}")]
    Decode { what: &'static str, source: serde_json::Error },
    #[error("invalid network config: {0}")]
    InvalidConfig(String),
    #[error("{0}")]
    TryAgain(String),
    #[error("{0}")]
    NotAvailable(String),
    /// STATUS: up, but cannot take an ADD now (the address pool is full).
    #[error("{0}")]
    LimitedResources(String),
    #[error(transparent)]
    Netlink(#[from] crate::netlink::Error),
    /// The node's state is in the way of this attachment (a leftover link or route, a non-bridge link by the
    /// bridge's name).
    #[error("{0}")]
    Conflict(String),
    /// A second ADD of an attachment that exists.
    #[error("{0}")]
    Duplicate(String),
    #[error(transparent)]
    Ipam(#[from] crate::ipam::Error),
    #[error(transparent)]
    Firewall(#[from] crate::firewall::Error),
    #[error(transparent)]
    Hook(#[from] crate::hooks::Error),
    #[error("{0}")]
    CheckFailed(String),
    #[error("{0}")]
    Internal(String),
    /// An ADD failed and unwinding what it had done failed too: the code is the cause's, the undo errors are
    /// reported in `details` so an operator knows what may be left.
    #[error("{cause} (rollback also failed: {})", undo_errors.join("; "))]
    Rollback { cause: Box<Error>, undo_errors: Vec<String> },
}

impl Error {
    pub fn code(&self) -> u32 {
        use crate::ipam::Error as I;
        match self {
            Error::IncompatibleVersion { .. } => code::INCOMPATIBLE_VERSION,
            Error::UnsupportedField(_) => code::UNSUPPORTED_FIELD,
            Error::UnknownContainer(_) => code::UNKNOWN_CONTAINER,
            Error::InvalidEnv { .. } => code::INVALID_ENV,
            Error::Io { .. } => code::IO,
            Error::Decode { .. } => code::DECODE,
            Error::InvalidConfig(_) => code::INVALID_CONFIG,
            Error::TryAgain(_) => code::TRY_AGAIN,
            Error::NotAvailable(_) => code::NOT_AVAILABLE,
            Error::LimitedResources(_) => code::LIMITED_RESOURCES,
            Error::Netlink(_) | Error::Conflict(_) => code::NETLINK,
            Error::Duplicate(_) => code::IPAM_DUPLICATE,
            Error::Ipam(I::Exhausted { .. }) => code::IPAM_EXHAUSTED,
            Error::Ipam(I::Config(_)) => code::INVALID_CONFIG,
            Error::Ipam(I::Unavailable(_)) => code::ADDRESS_UNAVAILABLE,
            Error::Ipam(I::Io { .. }) => code::IO,
            Error::Ipam(I::Delegated { code, .. }) => *code,
            Error::Firewall(_) => code::FIREWALL,
            Error::Hook(_) => code::HOOK,
            Error::CheckFailed(_) => code::CHECK_FAILED,
            Error::Internal(_) => code::INTERNAL,
            Error::Rollback { cause, .. } => cause.code(),
        }
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// Extra context for the `details` field of the error reply.
    pub fn details(&self) -> String {
        match self {
            Error::Rollback { undo_errors, .. } => {
                format!("rollback errors (something may be left behind): {}", undo_errors.join("; "))
            }
            Error::Netlink(_) | Error::Conflict(_) => "see the plugin log on stderr or the logFile for the step that failed".into(),
            _ => String::new(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a message for people must never contain: the tells of Rust's Debug output (options, JSON values,
/// structs, io errors, escaped newlines). Used by the error tests and the fuzz targets.
pub const DEBUG_TELLS: &[&str] = &["Some(", "None)", "Object {", "String(", "Number(", "Error {", " { kind:", "Os {", "\\n"];

/// The text of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
    format!("internal error (a bug in wasmcni): {}", what.unwrap_or_else(|| "panic".into()))
}
