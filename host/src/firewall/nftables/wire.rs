//! nf_tables over netlink, by hand: the few messages the backend needs, encoded on a byte buffer (no GPL
//! library: libnftnl and rustables are GPL), sent as one batch that the kernel commits atomically, and the
//! replies read back. A batch is processed inside the sendmsg call, so every answer is queued when it
//! returns.

use std::collections::HashMap;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

/// Message types: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_*.
pub mod msg {
    pub const NEWTABLE: u16 = 0x0a00;
    pub const NEWCHAIN: u16 = 0x0a03;
    pub const GETCHAIN: u16 = 0x0a04;
    pub const DELCHAIN: u16 = 0x0a05;
    pub const NEWRULE: u16 = 0x0a06;
    pub const GETRULE: u16 = 0x0a07;
    pub const DELRULE: u16 = 0x0a08;
    pub const NEWSET: u16 = 0x0a09;
    pub const GETSET: u16 = 0x0a0a;
    pub const DELSET: u16 = 0x0a0b;
    pub const NEWSETELEM: u16 = 0x0a0c;
    pub const GETSETELEM: u16 = 0x0a0d;
    pub const DELSETELEM: u16 = 0x0a0e;
    pub const GETGEN: u16 = 0x0a10;
    pub const BATCH_BEGIN: u16 = 0x10;
    pub const BATCH_END: u16 = 0x11;
}

pub const NLM_F_REQUEST: u16 = 0x001;
pub const NLM_F_ACK: u16 = 0x004;
pub const NLM_F_DUMP: u16 = 0x300;
/// On a deletion: refuse when the object is not empty (a set with elements).
pub const NLM_F_NONREC: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;
/// The inet family: one table for both IPv4 and IPv6.
pub const NFPROTO_INET: u8 = 1;
const NFNL_SUBSYS_NFTABLES: u16 = 10;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Attributes of one message (or of a nest), appended to its buffer.
pub struct Attrs<'a> {
    buf: &'a mut Vec<u8>,
}

impl Attrs<'_> {
    pub fn bytes(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    /// NUL-terminated, as the kernel's policies expect.
    pub fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.bytes(ty, &b)
    }

    /// Integers are big-endian in nf_tables attributes.
    pub fn u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.bytes(ty, &v.to_be_bytes())
    }

    pub fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        f(&mut Attrs { buf: self.buf });
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }
}

/// Appends one netlink message: header, nfgenmsg, then what `f` writes.
fn push_msg(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, f: impl FnOnce(&mut Attrs)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[family, 0]);
    buf.extend_from_slice(&res_id.to_be_bytes());
    f(&mut Attrs { buf });
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

/// One transaction: BEGIN, the messages (each acknowledged), END.
pub struct Batch {
    buf: Vec<u8>,
    next: u32,
    /// What each message does, by sequence number, to word errors.
    what: Vec<(u32, String)>,
}

impl Batch {
    pub fn new() -> Self {
        // Sequence numbers only need to be unique on this socket.
        let begin = (std::process::id() << 8) & 0x7fff_ff00;
        let mut buf = Vec::with_capacity(4096);
        push_msg(&mut buf, msg::BATCH_BEGIN, NLM_F_REQUEST, begin, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        Batch { buf, next: begin + 1, what: Vec::new() }
    }

    pub fn is_empty(&self) -> bool {
        self.what.is_empty()
    }

    pub fn len(&self) -> usize {
        self.what.len()
    }

    /// What each message does, in order (for tests).
    #[cfg(test)]
    pub fn descriptions(&self) -> Vec<&str> {
        self.what.iter().map(|(_, w)| w.as_str()).collect()
    }

    /// Adds a message; `what` says in words what it does ("add element 10.0.0.2 to masq4").
    pub fn add(&mut self, ty: u16, flags: u16, what: impl Into<String>, f: impl FnOnce(&mut Attrs)) {
        let seq = self.next;
        self.next += 1;
        push_msg(&mut self.buf, ty, flags | NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_INET, 0, f);
        self.what.push((seq, what.into()));
    }
}

/// A message the kernel refused, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    /// Its position in the batch (None: the batch as a whole, at commit).
    pub index: Option<usize>,
    pub what: String,
    pub errno: i32,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, std::io::Error::from_raw_os_error(self.errno))
    }
}

/// A parsed reply message: its type and attributes (after the nfgenmsg).
pub struct Reply {
    pub attrs: Vec<u8>,
}

/// The netfilter netlink socket of the calling thread's network namespace.
pub struct Conn {
    sock: Socket,
}

fn io(what: &str, e: std::io::Error) -> String {
    format!("nftables netlink {what}: {e}")
}

/// (type, flags, seq, payload) of each netlink message in `buf`.
fn messages(buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
        if len < 16 || at + len > buf.len() {
            break;
        }
        let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
        let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
        out.push((ty, seq, &buf[at + 16..at + len]));
        at += align4(len);
    }
    out
}

impl Conn {
    pub fn open() -> Result<Self, String> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| io("socket", e))?;
        sock.bind_auto().map_err(|e| io("bind", e))?;
        // Acks of a large batch (a GC of many attachments) must all fit before we read them; an error
        // answer need not echo the whole message back.
        let _ = sock.set_rx_buf_sz(1 << 20);
        let _ = sock.set_cap_ack(true);
        Ok(Conn { sock })
    }

    #[cfg(test)]
    pub fn fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }

    /// Drops answers an earlier, failed request left unread, so a reused socket starts clean.
    pub fn discard_pending(&self) -> Result<(), String> {
        self.sock.set_non_blocking(true).map_err(|e| io("non-blocking", e))?;
        while self.recv()?.is_some() {}
        Ok(())
    }

    fn recv(&self) -> Result<Option<Vec<u8>>, String> {
        let mut buf = vec![0u8; 1 << 16];
        match self.sock.recv(&mut &mut buf[..], 0) {
            Ok(n) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(io("receive", e)),
        }
    }

    /// Sends the batch and returns the messages the kernel refused (empty: committed). Any refusal means
    /// nothing of the batch was applied.
    pub fn commit(&self, mut batch: Batch) -> Result<Vec<Refused>, String> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let end = batch.next;
        push_msg(&mut batch.buf, msg::BATCH_END, NLM_F_REQUEST, end, 0, NFNL_SUBSYS_NFTABLES, |_| {});
        self.sock.send(&batch.buf, 0).map_err(|e| io("send", e))?;
        let index: HashMap<u32, usize> = batch.what.iter().enumerate().map(|(i, (seq, _))| (*seq, i)).collect();
        let mut refused = Vec::new();
        // The kernel processes the batch inside sendmsg: every answer (an ack or an error per message, and an
        // error on BEGIN when the commit itself failed) is queued by now.
        self.sock.set_non_blocking(true).map_err(|e| io("non-blocking", e))?;
        while let Some(buf) = self.recv()? {
            for (ty, seq, payload) in messages(&buf) {
                if ty != NLMSG_ERROR || payload.len() < 4 {
                    continue;
                }
                let err = -i32::from_ne_bytes(payload[..4].try_into().expect("4 bytes"));
                match (err, index.get(&seq)) {
                    (0, _) => {}
                    (e, Some(i)) => refused.push(Refused { index: Some(*i), what: batch.what[*i].1.clone(), errno: e }),
                    (e, None) => refused.push(Refused { index: None, what: "commit the change".into(), errno: e }),
                }
            }
        }
        Ok(refused)
    }

    /// A request outside a batch (a dump, or a get): its replies until DONE (dumps) or the one answer.
    /// Err(errno) when the kernel refused it (ENOENT: no such table, set or element).
    pub fn request(&self, ty: u16, flags: u16, f: impl FnOnce(&mut Attrs)) -> Result<Result<Vec<Reply>, i32>, String> {
        let mut buf = Vec::new();
        let seq = ((std::process::id() << 8) & 0x7fff_ff00) | 0xff;
        push_msg(&mut buf, ty, flags | NLM_F_REQUEST, seq, NFPROTO_INET, 0, f);
        self.sock.send(&buf, 0).map_err(|e| io("send", e))?;
        self.sock.set_non_blocking(false).map_err(|e| io("blocking", e))?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        loop {
            let Some(buf) = self.recv()? else { return Ok(Ok(out)) };
            for (t, s, payload) in messages(&buf) {
                if s != seq {
                    continue;
                }
                match t {
                    NLMSG_DONE => return Ok(Ok(out)),
                    NLMSG_ERROR => {
                        let e = -i32::from_ne_bytes(payload.get(..4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]));
                        return Ok(if e == 0 { Ok(out) } else { Err(e) });
                    }
                    _ => {
                        out.push(Reply { attrs: payload.get(4..).unwrap_or_default().to_vec() });
                        if !dump {
                            return Ok(Ok(out));
                        }
                    }
                }
            }
        }
    }
}

/// (type, payload) of each attribute in `buf`.
pub fn attrs(buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= buf.len() {
        let len = u16::from_ne_bytes([buf[at], buf[at + 1]]) as usize;
        let ty = u16::from_ne_bytes([buf[at + 2], buf[at + 3]]) & 0x3fff;
        if len < 4 || at + len > buf.len() {
            break;
        }
        out.push((ty, &buf[at + 4..at + len]));
        at += align4(len);
    }
    out
}

pub fn attr<'a>(buf: &'a [u8], ty: u16) -> Option<&'a [u8]> {
    attrs(buf).into_iter().find(|(t, _)| *t == ty).map(|(_, v)| v)
}

pub fn attr_str(buf: &[u8], ty: u16) -> Option<String> {
    attr(buf, ty).map(|v| String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or_default()).into_owned())
}

pub fn attr_u32(buf: &[u8], ty: u16) -> Option<u32> {
    attr(buf, ty).and_then(|v| v.get(..4)).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_aligned_nested_and_read_back() {
        let mut buf = Vec::new();
        push_msg(&mut buf, msg::NEWTABLE, NLM_F_REQUEST, 7, NFPROTO_INET, 0, |a| {
            a.str(1, "wasmcni").u32(2, 5).nest(4, |n| {
                n.u32(1, 2).bytes(2, &[1, 2, 3]);
            });
        });
        let m = messages(&buf);
        assert_eq!(m.len(), 1);
        let (ty, seq, payload) = m[0];
        assert_eq!((ty, seq), (msg::NEWTABLE, 7));
        assert_eq!(payload[0], NFPROTO_INET);
        let a = &payload[4..];
        assert_eq!(attr_str(a, 1).as_deref(), Some("wasmcni"));
        assert_eq!(attr_u32(a, 2), Some(5));
        let nest = attr(a, 4).unwrap();
        assert_eq!(attr_u32(nest, 1), Some(2));
        assert_eq!(attr(nest, 2), Some(&[1u8, 2, 3][..]));
        assert_eq!(buf.len() % 4, 0);
    }
}
