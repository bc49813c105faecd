//! Test fixtures: every test builds its own "node" namespace (standing in for the host), "pod" namespaces
//! and an "upstream" namespace (the outside world), runs the real binary inside the node as a runtime would,
//! and removes everything on drop, also when the test fails. Nothing touches the machine's own network.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_wasmcni");
/// Upstream's "internet" address; the node reaches it over a link, pods only through masquerade.
pub const UPSTREAM_IP: &str = "203.0.113.10";
/// The node's address on the upstream link: what upstream sees when masquerade works.
pub const NODE_UPLINK_IP: &str = "192.0.2.1";
/// The same two for IPv6 (documentation prefixes).
pub const UPSTREAM_IP6: &str = "2001:db8:aa::10";
pub const NODE_UPLINK_IP6: &str = "2001:db8:ff::1";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique(role: &str) -> String {
    format!("wt{}-{}-{role}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

/// Runs a command and panics with its output if it fails: fixtures must not fail silently.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace, deleted on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(role: &str) -> Self {
        let name = unique(role);
        run("ip", &["netns", "add", &name]);
        let ns = Ns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.name))
    }

    /// `ip -n NS ARGS...`
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Runs a command inside the namespace (nsenter rather than `ip netns exec`, which remounts /sys).
    pub fn exec(&self, cmd: &[&str]) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .args(cmd)
            .output()
            .expect("nsenter runs")
    }

    /// One echo to `ip`, IPv4 or IPv6 (ping picks the family from the address).
    pub fn ping(&self, ip: &str) -> bool {
        self.exec(&["ping", "-c", "1", "-W", "2", ip]).status.success()
    }

    pub fn links(&self) -> String {
        self.ip(&["-o", "link", "show"])
    }

    pub fn iptables_save(&self) -> String {
        self.save_with("iptables-save")
    }

    pub fn ip6tables_save(&self) -> String {
        self.save_with("ip6tables-save")
    }

    fn save_with(&self, tool: &str) -> String {
        let out = self.exec(&[tool]);
        assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `f` on a thread inside this namespace (for sockets).
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(self.path()).expect("netns path opens");
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("thread inside netns")
        })
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// The environment a runtime gives one plugin call; tests add or replace variables (PATH, CNI_PATH).
pub fn cni_env(command: &str, container_id: &str, netns: Option<&Path>, ifname: &str) -> HashMap<&'static str, String> {
    [
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", container_id.to_string()),
        ("CNI_NETNS", netns.map(|p| p.display().to_string()).unwrap_or_default()),
        ("CNI_IFNAME", ifname.to_string()),
        ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=test".to_string()),
        ("CNI_PATH", "/usr/lib/cni".to_string()),
    ]
    .into()
}

/// What the plugin printed and how it exited.
pub struct Reply {
    pub code: i32,
    pub json: Option<Value>,
    pub stderr: String,
}

impl Reply {
    pub fn ok(&self) -> &Value {
        assert_eq!(self.code, 0, "plugin failed: {:?}\nstderr: {}", self.json, self.stderr);
        self.json.as_ref().expect("a result on stdout")
    }

    /// Success with nothing on stdout (DEL, CHECK, STATUS, GC).
    pub fn succeeded(&self) {
        assert_eq!(self.code, 0, "plugin failed: {:?}\nstderr: {}", self.json, self.stderr);
        assert!(self.json.is_none(), "nothing may be printed on success: {:?}", self.json);
    }

    pub fn err(&self) -> &Value {
        assert_ne!(self.code, 0, "plugin unexpectedly succeeded: {:?}", self.json);
        self.json.as_ref().expect("an error object on stdout")
    }
}

/// A node with an upstream link and its own state directories.
pub struct Node {
    pub ns: Ns,
    pub upstream: Ns,
    pub dir: tempfile::TempDir,
    pub network: String,
    pub subnet: String,
}

impl Node {
    pub fn new(subnet: &str) -> Self {
        let ns = Ns::new("node");
        let upstream = Ns::new("up");
        ns.ip(&["link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", &upstream.name]);
        ns.ip(&["addr", "add", &format!("{NODE_UPLINK_IP}/24"), "dev", "uplink"]);
        ns.ip(&["link", "set", "uplink", "up"]);
        ns.ip(&["route", "add", "default", "via", "192.0.2.2"]);
        upstream.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        upstream.ip(&["link", "set", "eth0", "up"]);
        upstream.ip(&["addr", "add", &format!("{UPSTREAM_IP}/32"), "dev", "lo"]);
        // The same over IPv6 (nodad: usable at once).
        ns.ip(&["addr", "add", &format!("{NODE_UPLINK_IP6}/64"), "dev", "uplink", "nodad"]);
        ns.ip(&["-6", "route", "add", "default", "via", "2001:db8:ff::2"]);
        upstream.ip(&["addr", "add", "2001:db8:ff::2/64", "dev", "eth0", "nodad"]);
        upstream.ip(&["addr", "add", &format!("{UPSTREAM_IP6}/128"), "dev", "lo"]);
        // Upstream has no route back to the pod subnet: replies reach pods only through masquerade.
        Node { ns, upstream, dir: tempfile::tempdir().expect("tempdir"), network: "testnet".into(), subnet: subnet.into() }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    pub fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": self.network,
            "type": "wasmcni",
            "ipMasq": true,
            "firewallBackend": super::fw::under_test().name(),
            "mtu": 1400,
            "stateDir": self.state_dir(),
            "runDir": self.dir.path().join("run"),
            "logFile": self.dir.path().join("wasmcni.log"),
            "logLevel": "debug",
            "ipam": {"type": "builtin", "subnet": self.subnet, "dataDir": self.ipam_dir()},
        })
    }

    /// Execs the plugin inside the node namespace exactly as a runtime does: env + config on stdin.
    pub fn cni(&self, command: &str, conf: &Value, container_id: &str, netns: Option<&Path>, ifname: &str) -> Reply {
        self.spawn_cni(&cni_env(command, container_id, netns, ifname), conf).wait()
    }

    /// ADD for every pod at once (container ids `{prefix}0`, `{prefix}1`...), as racing runtimes would.
    pub fn add_concurrently(&self, conf: &Value, pods: &[Ns], prefix: &str) -> Vec<Reply> {
        let running: Vec<Running> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| self.spawn_cni(&cni_env("ADD", &format!("{prefix}{i}"), Some(&pod.path()), "eth0"), conf))
            .collect();
        running.into_iter().map(Running::wait).collect()
    }

    /// A PATH whose first directory holds an `iptables-restore` that always fails with `message`.
    pub fn path_with_failing_restore(&self, message: &str) -> String {
        self.path_with_failing("iptables-restore", message)
    }

    /// A PATH whose first directory holds a `tool` that always fails with `message`.
    pub fn path_with_failing(&self, tool: &str, message: &str) -> String {
        let bin = self.dir.path().join("failing-bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join(tool);
        std::fs::write(&fake, format!("#!/bin/sh\necho '{message}' >&2\nexit 1\n")).unwrap();
        run("chmod", &["755", fake.to_str().unwrap()]);
        format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display())
    }

    pub fn spawn_cni(&self, env: &HashMap<&str, String>, conf: &Value) -> Running {
        self.spawn_plugin(BIN, env, conf)
    }

    /// Execs any CNI plugin binary inside the node namespace (the reference plugins, for chaining).
    pub fn spawn_plugin(&self, binary: &str, env: &HashMap<&str, String>, conf: &Value) -> Running {
        let mut child = Command::new("nsenter")
            .arg(format!("--net={}", self.ns.path().display()))
            .arg(binary)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("plugin starts");
        child.stdin.take().unwrap().write_all(conf.to_string().as_bytes()).unwrap();
        Running { child }
    }

    pub fn add(&self, pod: &Ns, id: &str) -> Reply {
        self.cni("ADD", &self.conf("1.0.0"), id, Some(&pod.path()), "eth0")
    }

    pub fn del(&self, pod: &Ns, id: &str) -> Reply {
        self.cni("DEL", &self.conf("1.0.0"), id, Some(&pod.path()), "eth0")
    }

    /// IP reservation files (host-local layout), without the lock and last_reserved_ip files.
    pub fn reserved_ips(&self) -> Vec<String> {
        let dir = self.ipam_dir().join(&self.network);
        let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
        let mut ips: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip."))
            .collect();
        ips.sort();
        ips
    }

    pub fn records(&self) -> Vec<PathBuf> {
        let dir = self.state_dir().join("attachments").join(&self.network);
        std::fs::read_dir(dir).map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect()).unwrap_or_default()
    }

    pub fn host_veths(&self) -> Vec<String> {
        self.ns.links().lines().filter(|l| l.contains(": wcni")).map(String::from).collect()
    }

    /// Like assert_clean, but portmap's shared CNI-HOSTPORT-* chains (the reference plugin keeps them) are
    /// allowed; its per-attachment CNI-DN-* chains are not.
    pub fn assert_clean_except_shared_portmap_chains(&self) {
        assert!(self.host_veths().is_empty(), "veths left: {:?}", self.host_veths());
        assert!(self.reserved_ips().is_empty(), "IP files left: {:?}", self.reserved_ips());
        assert!(self.records().is_empty(), "records left: {:?}", self.records());
        let left: Vec<String> = self.attachment_rules().into_iter().filter(|l| !l.contains("CNI-HOSTPORT-")).collect();
        assert!(left.is_empty(), "firewall rules left: {left:?}");
    }

    /// Asserts that nothing of any attachment is left on the node.
    pub fn assert_clean(&self) {
        assert!(self.host_veths().is_empty(), "veths left: {:?}", self.host_veths());
        assert!(self.reserved_ips().is_empty(), "IP files left: {:?}", self.reserved_ips());
        assert!(self.records().is_empty(), "records left: {:?}", self.records());
        let left = self.attachment_rules();
        assert!(left.is_empty(), "firewall rules left: {left:?}");
    }

    /// Accepts one TCP connection on upstream and returns the peer address it saw.
    pub fn upstream_sees(&self, from: &Ns) -> SocketAddr {
        self.upstream_sees_at(from, UPSTREAM_IP)
    }

    /// The same, to one of upstream's addresses (either family).
    pub fn upstream_sees_at(&self, from: &Ns, upstream_ip: &str) -> SocketAddr {
        let ip: std::net::IpAddr = upstream_ip.parse().expect("an IP address");
        let listener = self.upstream.within(|| TcpListener::bind((ip, 0)).expect("bind upstream"));
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, peer) = listener.accept().expect("accept");
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).expect("read");
            peer
        });
        from.within(|| {
            let addr = SocketAddr::new(ip, port);
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).expect("pod connects upstream");
            s.write_all(b"hello").unwrap();
        });
        server.join().expect("server thread")
    }
}

pub struct Running {
    child: std::process::Child,
}

impl Running {
    /// The plugin's process id (nsenter execs it in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(self) -> Reply {
        let out = self.child.wait_with_output().expect("plugin finishes");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let json = if stdout.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout}")))
        };
        Reply { code: out.status.code().unwrap_or(-1), json, stderr: String::from_utf8_lossy(&out.stderr).into() }
    }
}

/// The pod's address from a 1.x result.
pub fn pod_ip(result: &Value) -> String {
    result["ips"][0]["address"].as_str().expect("an address").split('/').next().unwrap().to_string()
}
