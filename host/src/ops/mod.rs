//! The CNI operations. Each one orchestrates the modules below it; none of those call back up here.

pub mod add;
mod bridge;
pub mod check;
pub mod del;
pub mod gc;
mod leaks;
pub mod plan;
pub mod record;
pub mod rollback;
pub mod status;

use sha2::{Digest, Sha256};

use crate::error::Error;

/// A runtime for the netlink sockets: one thread, since the plugin does one thing at a time.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::io("cannot start the netlink runtime", e))
}

/// The text of a caught panic.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
    format!("internal error (a bug in wasmcni): {}", what.unwrap_or_else(|| "panic".into()))
}

/// Brings `link` up with IPv6 DAD off on it, so no address on it is ever tentative (a tentative link-local
/// address keeps neighbour resolution through the link waiting for ~2 s). `ns` None is the node.
pub async fn up_without_dad(nl: &crate::netlink::Netlink, ns: Option<&crate::netns::NetNs>, index: u32, name: &str) -> Result<(), Error> {
    crate::sysctl::disable_dad(ns, name)?;
    let where_ = ns.map(|n| format!(" in netns {}", n.path().display())).unwrap_or_default();
    nl.set_up(index).await.map_err(|e| crate::netlink::err(format!("set {name} up{where_}"), e))
}

/// A MAC derived from `seed`: locally administered, unicast, stable for the same seed.
pub fn derived_mac(seed: &str) -> [u8; 6] {
    let d = Sha256::digest(seed.as_bytes());
    [(d[0] & 0xfc) | 0x02, d[1], d[2], d[3], d[4], d[5]]
}
