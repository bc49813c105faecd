//! Deleting a node-side link without waiting for the kernel to free it.
//!
//! A link deletion does two things in the deleting process's system call: it removes the link (and its veth
//! peer) from their namespaces, with their addresses and routes, and announces that (RTM_DELLINK to the
//! link group); then, after the rtnl lock is released, it waits until the device can be freed, which takes
//! an `rcu_barrier` (10-30 ms here, most of a DEL). The second part changes nothing anyone can see. So a
//! short-lived child process makes the request and waits it out, and we return at the
//! announcement: the link is gone from the namespace by then, as DEL promises. The child does nothing after
//! `fork` but plain system calls on what was prepared before it (async-signal-safe: another thread may
//! hold a lock at that moment), keeps no file of ours open (the runtime reads our stdout until it closes)
//! and is never waited for. When it fails before sending, or the announcement never comes, the caller
//! deletes the link itself.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::libc;

const RTM_DELLINK: u16 = 17;
pub(super) const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const RTMGRP_LINK: u32 = 1;
pub(super) const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;

/// How a detached deletion ended.
#[derive(Debug, PartialEq)]
pub enum Unlinked {
    /// The kernel removed the link (announced, or acknowledged).
    Gone,
    /// The kernel refused the deletion.
    Refused(Errno),
    /// No answer either way (the child died before sending, or nothing came in time): delete it yourself.
    Unknown,
}

pub(super) fn netlink_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind_groups(fd: &OwnedFd, groups: u32) -> std::io::Result<()> {
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as u16;
    addr.nl_groups = groups;
    let len = std::mem::size_of::<libc::sockaddr_nl>() as u32;
    // SAFETY: addr lives across the call and len is its size.
    if unsafe { libc::bind(fd.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, len) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// RTM_DELLINK by name, with an acknowledgement: nlmsghdr, ifinfomsg, IFLA_IFNAME.
fn request(name: &str) -> Vec<u8> {
    let mut attr = name.as_bytes().to_vec();
    attr.push(0);
    let attr_len = 4 + attr.len();
    let len = 16 + 16 + attr_len.div_ceil(4) * 4;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&RTM_DELLINK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(&[0u8; 16]);
    m.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    m.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
    m.extend_from_slice(&attr);
    m.resize(len, 0);
    m
}

/// Whether `buf` (what the link group sent) announces that link `name` was deleted.
fn announces_deletion(buf: &[u8], name: &str) -> bool {
    let mut at = 0;
    while at + 32 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len < 32 || at + len > buf.len() {
            return false;
        }
        let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        if ty == RTM_DELLINK && ifname(&buf[at + 32..at + len]) == Some(name.as_bytes()) {
            return true;
        }
        // Other announcements (RTM_NEWLINK: the link going down first; other links) are not it.
        at += len.div_ceil(4) * 4;
    }
    false
}

fn ifname(attrs: &[u8]) -> Option<&[u8]> {
    attr(attrs, IFLA_IFNAME).map(|v| v.split(|b| *b == 0).next().unwrap_or(v))
}

/// The payload of the first attribute of type `ty` among netlink attributes `attrs`.
pub(super) fn attr(mut attrs: &[u8], ty: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let t = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == ty {
            return Some(&attrs[4..len]);
        }
        attrs = attrs.get(len.div_ceil(4) * 4..).unwrap_or_default();
    }
    None
}

/// In a child: closes every fd but `keep`. Async-signal-safe.
pub fn close_all_but(keep: &[RawFd]) {
    let mut sorted = [-1; 8];
    let n = keep.len().min(sorted.len());
    sorted[..n].copy_from_slice(&keep[..n]);
    sorted[..n].sort_unstable();
    let mut from: libc::c_uint = 0;
    for &k in &sorted[..n] {
        let k = k as libc::c_uint;
        if k > from {
            // SAFETY: close_range(2) on fds of this process only.
            unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0) };
        }
        from = k + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0) };
}

/// In the child: send, read the acknowledgement, write its errno (0: done) to `report`, exit. Async-signal-
/// safe only: no allocation, no locks, no Rust runtime beyond plain calls.
fn child(send: RawFd, report: RawFd, msg: &[u8]) -> ! {
    // Nothing of the parent's stays open here: not stdout (the runtime waits for it to close), not locks.
    close_all_but(&[send, report]);
    // SAFETY: system calls on fds this process holds and on buffers allocated before the fork.
    unsafe {
        let mut code: i32 = 0;
        if libc::send(send, msg.as_ptr().cast(), msg.len(), 0) < 0 {
            code = *libc::__errno_location();
        } else {
            let mut buf = [0u8; 1024];
            let n = libc::recv(send, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
                code = -i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
            } else if n < 0 {
                code = *libc::__errno_location();
            }
        }
        libc::write(report, (&code as *const i32).cast(), 4);
        libc::_exit(0)
    }
}

/// Deletes node-side link `name` from a child process and returns once the kernel has removed it (see the
/// module's comment), waiting at most `limit`.
pub fn delete_detached(name: &str, limit: Duration) -> std::io::Result<Unlinked> {
    let listen = netlink_socket()?;
    bind_groups(&listen, RTMGRP_LINK)?;
    let send = netlink_socket()?;
    let msg = request(name);
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the array with two new fds, owned right after.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds are new and ours.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child runs only `child`, which is async-signal-safe (see there).
    match unsafe { libc::fork() } {
        -1 => return Err(std::io::Error::last_os_error()),
        0 => child(send.as_raw_fd(), write_end.as_raw_fd(), &msg),
        _ => {}
    }
    drop((write_end, send));
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Unlinked::Unknown);
        }
        let mut polled = [
            libc::pollfd { fd: listen.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: read_end.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two pollfds, as the length says.
        let n = unsafe { libc::poll(polled.as_mut_ptr(), 2, left.as_millis().max(1) as i32) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e);
        }
        if polled[0].revents & libc::POLLIN != 0 {
            // SAFETY: reads into buf, at most its length.
            let got = unsafe { libc::recv(listen.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            // ENOBUFS: announcements were dropped (a busy node); the child's report still comes.
            if got > 0 && announces_deletion(&buf[..got as usize], name) {
                return Ok(Unlinked::Gone);
            }
        }
        if polled[1].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            let mut code = [0u8; 4];
            // SAFETY: reads at most 4 bytes into code.
            let got = unsafe { libc::read(read_end.as_raw_fd(), code.as_mut_ptr().cast(), 4) };
            return Ok(match (got, i32::from_ne_bytes(code)) {
                (4, 0) => Unlinked::Gone,
                (4, e) => Unlinked::Refused(Errno::from_raw(e)),
                _ => Unlinked::Unknown,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_and_the_announcement_are_read_as_the_kernel_writes_them() {
        let m = request("wcni0123456789a");
        assert_eq!(m.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize, m.len());
        assert_eq!(ifname(&m[32..]), Some(&b"wcni0123456789a"[..]));
        // The announcement has the same layout as the request: header, ifinfomsg, attributes.
        let mut announced = m.clone();
        assert!(announces_deletion(&announced, "wcni0123456789a"));
        assert!(!announces_deletion(&announced, "wcni0123456789b"));
        announced[4..6].copy_from_slice(&16u16.to_ne_bytes());
        assert!(!announces_deletion(&announced, "wcni0123456789a"), "a link going down is not its deletion");
    }

    #[test]
    fn the_child_keeps_only_the_fds_it_is_given() {
        // Stand-ins for what a child must not keep: the runtime's stdout pipe, a lock file.
        let mut pipe = [0; 2];
        // SAFETY: pipe(2) fills the array; both fds are closed below.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        let lock = std::fs::File::open("/proc/self/stat").unwrap();
        let mut report = [0; 2];
        // SAFETY: as above.
        assert_eq!(unsafe { libc::pipe(report.as_mut_ptr()) }, 0);
        // SAFETY: the child makes only async-signal-safe calls (fcntl, write, _exit).
        let child = unsafe { libc::fork() };
        if child == 0 {
            close_all_but(&[report[1], 2]);
            // Each fd still open, by number: 2 and the report pipe must be; nothing else may be.
            let mut open = [0u8; 256];
            for (fd, slot) in open.iter_mut().enumerate() {
                // SAFETY: F_GETFD on any number only asks.
                *slot = u8::from(unsafe { libc::fcntl(fd as i32, libc::F_GETFD) } >= 0);
            }
            // SAFETY: writes the array to a pipe we keep, then leaves without running destructors.
            unsafe {
                libc::write(report[1], open.as_ptr().cast(), open.len());
                libc::_exit(0)
            }
        }
        assert!(child > 0);
        // SAFETY: our copies of the write ends; the child has its own.
        unsafe { libc::close(report[1]) };
        let mut open = [0u8; 256];
        // SAFETY: reads at most the array's length.
        assert_eq!(unsafe { libc::read(report[0], open.as_mut_ptr().cast(), open.len()) }, 256);
        let kept: Vec<usize> = (0..256).filter(|&fd| open[fd] == 1).collect();
        assert_eq!(kept, vec![2, report[1] as usize], "pipe {pipe:?}, lock {}", lock.as_raw_fd());
        // SAFETY: reaps our child; fds of this test, closed once.
        unsafe {
            libc::waitpid(child, std::ptr::null_mut(), 0);
            libc::close(report[0]);
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
    }

    #[test]
    #[ignore = "needs root in a network namespace of its own: scripts/test.sh runs it under unshare -n"]
    fn a_link_deleted_from_a_child_is_gone_when_this_returns_and_a_refusal_comes_back() {
        let ip = |args: &[&str]| std::process::Command::new("ip").args(args).output().expect("ip runs");
        assert!(ip(&["link", "add", "wcunlink0", "type", "veth", "peer", "name", "wcunlink1"]).status.success());
        assert_eq!(delete_detached("wcunlink0", Duration::from_secs(5)).unwrap(), Unlinked::Gone);
        let links = String::from_utf8_lossy(&ip(&["-o", "link", "show"]).stdout).into_owned();
        assert!(!links.contains("wcunlink"), "both ends are gone already: {links}");
        assert_eq!(delete_detached("wcunlink0", Duration::from_secs(5)).unwrap(), Unlinked::Refused(Errno::ENODEV));
    }
}
