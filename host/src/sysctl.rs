//! The few sysctls ADD needs. /proc/sys/net resolves to the namespace of the thread that opens it.

use std::fs;
use std::net::IpAddr;

use crate::error::Error;

/// Turns on forwarding for the family of `ip` in the plugin's own namespace (the node). Read first: the
/// write is skipped on every ADD but the first, and never undone, since other pods rely on it.
pub fn enable_forwarding(ip: IpAddr) -> Result<(), Error> {
    let path = if ip.is_ipv4() { "/proc/sys/net/ipv4/ip_forward" } else { "/proc/sys/net/ipv6/conf/all/forwarding" };
    if fs::read_to_string(path).map(|v| v.trim() == "1").unwrap_or(false) {
        return Ok(());
    }
    fs::write(path, "1").map_err(|e| Error::io(format!("cannot enable forwarding ({path})"), e))
}
