//! Whether a family forwards, asked over rtnetlink (RTM_GETNETCONF) instead of read from /proc/sys.
//!
//! Every ADD asks. Opening a file under /proc/sys/net looks up `net/ipv4` (or `ipv6`) among the dentries
//! of every namespace on the machine that has ever opened one there: their names are the same and sit in
//! one hash chain. On a node where each pod's namespace has had a sysctl set (the reference plugins set
//! `arp_notify` in each, runtimes set pods' sysctls) that one lookup took 0.2 ms with 1,000 such
//! namespaces, 0.012 ms with none, and grows with the pods. The netlink answer costs the same at any size.

use std::os::fd::AsRawFd;

use nix::libc;

use super::unlink::{attr, netlink_socket, NLMSG_ERROR, NLM_F_REQUEST};

const RTM_NEWNETCONF: u16 = 80;
const RTM_GETNETCONF: u16 = 82;
const NETCONFA_IFINDEX: u16 = 1;
const NETCONFA_FORWARDING: u16 = 2;
/// NETCONFA_IFINDEX_ALL: the namespace-wide setting (`ip_forward`, `conf/all/forwarding`).
const IFINDEX_ALL: i32 = -1;
/// nlmsghdr, then struct netconfmsg (one byte, padded to four).
const ATTRS_AT: usize = 20;

/// RTM_GETNETCONF for `family`'s namespace-wide settings: nlmsghdr, netconfmsg, NETCONFA_IFINDEX.
fn request(family: u8) -> Vec<u8> {
    let len = ATTRS_AT + 8;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&RTM_GETNETCONF.to_ne_bytes());
    m.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[family, 0, 0, 0]);
    m.extend_from_slice(&8u16.to_ne_bytes());
    m.extend_from_slice(&NETCONFA_IFINDEX.to_ne_bytes());
    m.extend_from_slice(&IFINDEX_ALL.to_ne_bytes());
    m
}

/// The forwarding flag in the kernel's answer, or its errno.
fn parse(reply: &[u8]) -> std::io::Result<bool> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected RTM_GETNETCONF answer");
    let len = reply.get(0..4).map(|b| u32::from_ne_bytes(b.try_into().expect("4 bytes")) as usize).ok_or_else(bad)?;
    let msg = reply.get(..len).filter(|m| m.len() >= 16).ok_or_else(bad)?;
    match u16::from_ne_bytes([msg[4], msg[5]]) {
        NLMSG_ERROR => {
            let errno = msg.get(16..20).map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes"))).ok_or_else(bad)?;
            Err(std::io::Error::from_raw_os_error(-errno))
        }
        RTM_NEWNETCONF => {
            let value = attr(msg.get(ATTRS_AT..).unwrap_or_default(), NETCONFA_FORWARDING).ok_or_else(bad)?;
            let value = value.get(0..4).map(|b| i32::from_ne_bytes(b.try_into().expect("4 bytes"))).ok_or_else(bad)?;
            Ok(value != 0)
        }
        _ => Err(bad()),
    }
}

/// Whether IPv4 (or IPv6) forwarding is on in the calling thread's network namespace.
pub fn forwarding(v6: bool) -> std::io::Result<bool> {
    let fd = netlink_socket()?;
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
    let msg = request(family);
    // SAFETY: sends `msg`, as long as it says, on a socket we own.
    if unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = [0u8; 1024];
    loop {
        // SAFETY: reads at most buf's length into buf.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return parse(&buf[..n as usize]);
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer as the kernel writes it: header, netconfmsg, then the attributes.
    fn answer(attrs: &[(u16, i32)]) -> Vec<u8> {
        let len = ATTRS_AT + 8 * attrs.len();
        let mut m = Vec::new();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_NEWNETCONF.to_ne_bytes());
        m.extend_from_slice(&[0u8; 10]);
        m.extend_from_slice(&[libc::AF_INET as u8, 0, 0, 0]);
        for (ty, v) in attrs {
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(&v.to_ne_bytes());
        }
        m
    }

    #[test]
    fn the_request_asks_for_the_namespace_wide_settings_and_the_answer_is_read() {
        let m = request(libc::AF_INET6 as u8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(m[16], libc::AF_INET6 as u8);
        assert_eq!(attr(&m[ATTRS_AT..], NETCONFA_IFINDEX), Some(&(-1i32).to_ne_bytes()[..]));
        assert!(parse(&answer(&[(NETCONFA_IFINDEX, -1), (NETCONFA_FORWARDING, 1)])).unwrap());
        assert!(!parse(&answer(&[(NETCONFA_IFINDEX, -1), (NETCONFA_FORWARDING, 0)])).unwrap());
        assert!(parse(&answer(&[(NETCONFA_IFINDEX, -1)])).is_err(), "no forwarding attribute is not an answer");
        let mut refused = answer(&[]);
        refused[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        refused.truncate(16);
        refused.extend_from_slice(&(-libc::EAFNOSUPPORT).to_ne_bytes());
        let len = refused.len() as u32;
        refused[0..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(parse(&refused).unwrap_err().raw_os_error(), Some(libc::EAFNOSUPPORT));
        assert!(parse(&[1, 2]).is_err());
    }

    #[test]
    #[ignore = "needs root in a network namespace of its own: scripts/test.sh runs it under unshare -n"]
    fn the_kernel_answers_what_proc_sys_says_for_both_families() {
        for (v6, path) in [(false, "/proc/sys/net/ipv4/ip_forward"), (true, "/proc/sys/net/ipv6/conf/all/forwarding")] {
            for value in ["0", "1", "0"] {
                std::fs::write(path, value).unwrap();
                assert_eq!(forwarding(v6).unwrap(), value == "1", "{path} = {value}");
            }
        }
    }
}
