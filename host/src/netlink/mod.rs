//! Netlink access through rtnetlink. One socket per namespace: a socket created inside a namespace keeps
//! operating on it, so the pod side is configured from our own thread without further namespace switches.

mod ops;

pub use ops::{LinkInfo, Netlink, VethSpec};

use rtnetlink::Error as RtError;

/// The errno behind a netlink error, if the kernel sent one.
pub fn errno(e: &RtError) -> Option<i32> {
    match e {
        RtError::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

pub fn is_errno(e: &RtError, code: nix::errno::Errno) -> bool {
    errno(e) == Some(code as i32)
}

/// A netlink failure as the crate's error, worded by `describe`.
pub fn err(op: String, e: RtError) -> crate::error::Error {
    crate::error::Error::Netlink(describe(&op, &e))
}

/// Spec-free formatting: "what we tried: what the kernel said".
pub fn describe(op: &str, e: &RtError) -> String {
    match errno(e) {
        Some(n) => format!("{op}: {}", std::io::Error::from_raw_os_error(n)),
        None => format!("{op}: {e}"),
    }
}
