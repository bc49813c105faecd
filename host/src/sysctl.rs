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

/// Turns off IPv6 duplicate address detection on `ifname` inside `ns`, before it comes up: its link-local
/// address would otherwise stay tentative for a second or two (our own addresses are added with NODAD).
/// `ns` None is the plugin's own namespace (the node).
pub fn disable_dad(ns: Option<&crate::netns::NetNs>, ifname: &str) -> Result<(), Error> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/accept_dad");
    let written = match ns {
        Some(ns) => ns.run(|| fs::write(&path, "0")).and_then(|r| r),
        None => fs::write(&path, "0"),
    };
    match written {
        // No IPv6 on this link or node: no DAD to turn off.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => {
            let where_ = ns.map(|n| format!(" in netns {}", n.path().display())).unwrap_or_default();
            Err(Error::io(format!("cannot turn off DAD ({path}{where_})"), e))
        }
        Ok(()) => Ok(()),
    }
}
