//! A CNI plugin exec'd the way a runtime does (env + config on stdin), from inside a node namespace of the
//! benchmark's own, timed from spawn to reaped.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const REF_DIR: &str = "/usr/lib/cni";

/// A network namespace of the benchmark's own; a node's also has a /proc of its own (`OwnProc`).
pub struct Ns {
    name: String,
    procfs: Option<OwnProc>,
}

impl Ns {
    pub fn new(name: String) -> Ns {
        let ok = Command::new("ip").args(["netns", "add", &name]).status().unwrap().success();
        assert!(ok, "ip netns add {name}");
        Ns { name, procfs: None }
    }

    /// A node: its namespace, and a procfs instance its plugins see as /proc unless `--shared-proc`.
    pub fn node(name: String) -> Ns {
        let mut ns = Ns::new(name);
        if !flag("--shared-proc") {
            ns.procfs = Some(OwnProc::new());
        }
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.name))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A mount namespace whose /proc is a procfs instance of its own, held by a sleeping process.
///
/// Separate hosts do not share the kernel's dentries; nodes simulated on one kernel do, through the one
/// /proc. A file under /proc/sys/net/ipv6 is looked up among the `ipv6` dentries of every namespace that
/// has opened one through that procfs instance (the reference plugins do in each of their pods), so on a
/// shared /proc one node's pods slowed another node's lookups: a cost no real node pays for its
/// neighbours. Only /proc is made private here, so the pod namespaces `ip netns add` mounts later under
/// /run/netns still reach this namespace, and the new procfs never shows outside it.
pub struct OwnProc {
    holder: std::process::Child,
    mnt: std::fs::File,
}

impl OwnProc {
    fn new() -> OwnProc {
        let script = "mount --make-rprivate /proc && mount -t proc proc /proc && echo ready && exec sleep infinity";
        let mut c = Command::new("unshare");
        c.args(["--mount", "--propagation", "unchanged", "sh", "-c", script]).stdout(Stdio::piped());
        // unshare execs the script in this child, and the script execs sleep: the death signal stays set
        // through both, so a benchmark killed before its Drop leaves no holder behind.
        unsafe {
            c.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
        let mut holder = c.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
        assert_eq!(line.trim(), "ready", "a mount namespace with its own /proc");
        let mnt = std::fs::File::open(format!("/proc/{}/ns/mnt", holder.id())).unwrap();
        OwnProc { holder, mnt }
    }
}

impl Drop for OwnProc {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

pub struct Plugin<'a> {
    pub label: &'static str,
    pub binary: PathBuf,
    pub conf: Value,
    pub node: &'a Ns,
}

pub struct Run {
    pub took: Duration,
    pub ok: bool,
    pub stdout: String,
    pub max_rss_kb: i64,
}

impl Plugin<'_> {
    pub fn spawn(&self, cmd: &str, id: &str, pod: &Path) -> (std::process::Child, Instant) {
        let node = std::fs::File::open(self.node.path()).unwrap();
        let mut c = Command::new(&self.binary);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", pod)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", REF_DIR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // The child enters the node's namespaces itself: no nsenter in the measured path.
        let fd = node.as_raw_fd();
        let mnt = self.node.procfs.as_ref().map(|p| p.mnt.as_raw_fd());
        unsafe {
            c.pre_exec(move || {
                if mnt.is_some_and(|mnt| libc::setns(mnt, libc::CLONE_NEWNS) != 0) {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let start = Instant::now();
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(self.conf.to_string().as_bytes()).unwrap();
        drop(node);
        (child, start)
    }

    pub fn finish(child: std::process::Child, start: Instant) -> Run {
        let mut child = child;
        let mut stdout = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let pid = child.id() as libc::pid_t;
        unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let took = start.elapsed();
        // Reaped by wait4 above; dropping the Child closes its stdout pipe and neither waits nor kills
        // (forgetting it leaked one descriptor per run).
        drop(child);
        Run { took, ok: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, stdout, max_rss_kb: usage.ru_maxrss }
    }

    pub fn run(&self, cmd: &str, id: &str, pod: &Path) -> Run {
        let (c, s) = self.spawn(cmd, id, pod);
        let r = Plugin::finish(c, s);
        assert!(r.ok, "{} {cmd} {id} failed: {}", self.label, r.stdout);
        r
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn pct(v: &[f64], p: usize) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() * p) / 100).min(v.len() - 1)]
}

pub fn median(v: &[f64]) -> f64 {
    pct(v, 50)
}

pub fn arg(name: &str, default: &str) -> String {
    opt_arg(name).unwrap_or_else(|| default.to_string())
}

/// The value after `name` on the command line, if given.
pub fn opt_arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}
/// Whether the switch `name` was given.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

pub fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
