//! wasmcni against the reference `bridge` + `host-local` plugins, side by side and interleaved in one run,
//! each in its own "node" namespace with the same subnet and ipMasq on, a fresh pod namespace per ADD.
//! Prints a markdown table and writes JSON. Not a test: it asserts nothing but that operations succeed.
//!
//! scripts/bench.sh runs it (root; Debian's containernetworking-plugins provide the reference).

use std::collections::HashSet;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SUBNET: &str = "10.100.0.0/16";
const REF_DIR: &str = "/usr/lib/cni";

struct Ns(String);

impl Ns {
    fn new(name: String) -> Ns {
        let ok = Command::new("ip").args(["netns", "add", &name]).status().unwrap().success();
        assert!(ok, "ip netns add {name}");
        Ns(name)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.0))
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

struct Plugin {
    label: &'static str,
    binary: PathBuf,
    conf: Value,
    node: Ns,
}

struct Run {
    took: Duration,
    ok: bool,
    stdout: String,
    max_rss_kb: i64,
}

impl Plugin {
    fn spawn(&self, cmd: &str, id: &str, pod: &Path) -> (std::process::Child, Instant) {
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
        // The child enters the node namespace itself: no nsenter in the measured path.
        let fd = node.as_raw_fd();
        unsafe {
            c.pre_exec(move || {
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

    fn finish(child: std::process::Child, start: Instant) -> Run {
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

    fn run(&self, cmd: &str, id: &str, pod: &Path) -> Run {
        let (c, s) = self.spawn(cmd, id, pod);
        let r = Plugin::finish(c, s);
        assert!(r.ok, "{} {cmd} {id} failed: {}", self.label, r.stdout);
        r
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(v: &[f64], p: usize) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() * p) / 100).min(v.len() - 1)]
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let iterations = arg("--iterations", 40);
    let concurrency = arg("--concurrency", 100);
    let tag = format!("wb{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let hook = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/wasmcni_test_hook.wasm");
    assert!(hook.is_file(), "build the test hook first (scripts/bench.sh does)");
    let ours_conf = |hooks: bool| {
        let mut c = json!({"cniVersion": "1.0.0", "name": "bench", "type": "wasmcni", "ipMasq": true,
            "stateDir": dir.path().join("state"),
            "runDir": dir.path().join("run"),
            "ipam": {"type": "builtin", "subnet": SUBNET, "dataDir": dir.path().join("ipam-ours")}});
        if hooks {
            let drop = |port: u16| json!({"behavior": "drop-port", "peer": "203.0.113.0/24", "port": port});
            c["hooks"] = json!([
                {"name": "plan", "module": hook, "stages": ["pre-add"]},
                {"name": "guard-a", "module": hook, "stages": ["post-add"], "config": drop(25)},
                {"name": "guard-b", "module": hook, "stages": ["post-add"], "config": drop(465)},
            ]);
        }
        c
    };
    let ours = Plugin {
        label: "wasmcni",
        binary: PathBuf::from(env!("CARGO_BIN_EXE_wasmcni")),
        conf: ours_conf(false),
        node: Ns::new(format!("{tag}-ours")),
    };
    let hooked = Plugin { label: "wasmcni+3 hooks", binary: ours.binary.clone(), conf: ours_conf(true), node: Ns::new(format!("{tag}-hooks")) };
    let reference = Plugin {
        label: "bridge+host-local",
        binary: PathBuf::from(REF_DIR).join("bridge"),
        conf: json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cnibench0",
            "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": dir.path().join("ipam-ref")}}),
        node: Ns::new(format!("{tag}-ref")),
    };
    // Bridge mode against the reference bridge plugin: the same topology on both sides.
    let mut bridge_conf = ours_conf(false);
    bridge_conf["mode"] = json!("bridge");
    bridge_conf["bridge"] = json!("wcbench0");
    bridge_conf["isGateway"] = json!(true);
    let bridged = Plugin { label: "wasmcni bridge", binary: ours.binary.clone(), conf: bridge_conf, node: Ns::new(format!("{tag}-br")) };
    let plugins = [&ours, &hooked, &reference, &bridged];

    // Warm-up: page cache, the reference's bridge, our hook cache. Not measured.
    for p in plugins {
        let pod = Ns::new(format!("{tag}-warm-{}", p.node.0.len()));
        p.run("ADD", "warm", &pod.path());
        p.run("DEL", "warm", &pod.path());
    }

    let mut add: [Vec<f64>; 4] = Default::default();
    let mut del: [Vec<f64>; 4] = Default::default();
    let mut rss: [i64; 4] = [0; 4];
    for i in 0..iterations {
        for (k, p) in plugins.iter().enumerate() {
            let pod = Ns::new(format!("{tag}-{k}-{i}"));
            let id = format!("seq{i}");
            let a = p.run("ADD", &id, &pod.path());
            add[k].push(ms(a.took));
            rss[k] = rss[k].max(a.max_rss_kb);
            del[k].push(ms(p.run("DEL", &id, &pod.path()).took));
        }
    }

    // Concurrent ADDs: all spawned at once, total wall and per-operation latency.
    let mut conc = Vec::new();
    for p in [&ours, &reference] {
        let pods: Vec<Ns> = (0..concurrency).map(|i| Ns::new(format!("{tag}-c{}-{i}", p.label.len()))).collect();
        let start = Instant::now();
        let children: Vec<_> = pods.iter().enumerate().map(|(i, pod)| p.spawn("ADD", &format!("conc{i}"), &pod.path())).collect();
        let runs: Vec<Run> = children.into_iter().map(|(c, s)| Plugin::finish(c, s)).collect();
        let wall = ms(start.elapsed());
        let failures = runs.iter().filter(|r| !r.ok).count();
        let ips: HashSet<String> = runs
            .iter()
            .filter_map(|r| serde_json::from_str::<Value>(&r.stdout).ok())
            .filter_map(|v| v["ips"][0]["address"].as_str().map(String::from))
            .collect();
        let lat: Vec<f64> = runs.iter().map(|r| ms(r.took)).collect();
        conc.push((wall, pct(&lat, 50), pct(&lat, 99), failures, ips.len()));
        for (i, pod) in pods.iter().enumerate() {
            p.run("DEL", &format!("conc{i}"), &pod.path());
        }
    }

    let row = |name: &str, o: f64, r: f64, target: f64| {
        let ratio = o / r;
        let verdict = if ratio <= target { "met" } else { "missed" };
        println!("| {name} | {o:.2} | {r:.2} | {ratio:.2} | ≤ {target} | {verdict} |");
        json!({"metric": name, "wasmcni": o, "reference": r, "ratio": ratio, "target": target, "met": ratio <= target})
    };
    println!("\n{iterations} interleaved iterations, {concurrency} concurrent ADDs, {} cores\n", num_cpus());
    println!("| metric (ms) | wasmcni | bridge+host-local | ratio | target | |\n|---|---|---|---|---|---|");
    let mut results = vec![
        row("ADD median", pct(&add[0], 50), pct(&add[2], 50), 0.25),
        row("ADD p99", pct(&add[0], 99), pct(&add[2], 99), 0.25),
        row("DEL median", pct(&del[0], 50), pct(&del[2], 50), 0.5),
        row("DEL p99", pct(&del[0], 99), pct(&del[2], 99), 0.5),
        row("ADD with 3 cached hooks, median", pct(&add[1], 50), pct(&add[2], 50), 0.35),
        row("ADD with 3 cached hooks, p99", pct(&add[1], 99), pct(&add[2], 99), 0.35),
        row("DEL with 3 hooks' rules, median", pct(&del[1], 50), pct(&del[2], 50), 0.5),
        row("bridge mode: ADD median", pct(&add[3], 50), pct(&add[2], 50), 0.25),
        row("bridge mode: DEL median", pct(&del[3], 50), pct(&del[2], 50), 0.5),
        row(&format!("{concurrency} concurrent ADDs, total wall"), conc[0].0, conc[1].0, 0.3),
        row(&format!("{concurrency} concurrent ADDs, per-op p50"), conc[0].1, conc[1].1, 1.0),
        row(&format!("{concurrency} concurrent ADDs, per-op p99"), conc[0].2, conc[1].2, 1.0),
    ];
    println!("\n| | wasmcni | wasmcni + 3 hooks | bridge+host-local |\n|---|---|---|---|");
    println!("| peak RSS of one ADD (MB) | {:.1} | {:.1} | {:.1} |", rss[0] as f64 / 1024.0, rss[1] as f64 / 1024.0, rss[2] as f64 / 1024.0);
    println!(
        "| concurrent ADDs: failures / distinct addresses | {} / {} | - | {} / {} |",
        conc[0].3, conc[0].4, conc[1].3, conc[1].4
    );
    results.push(json!({"metric": "peak RSS of one ADD (kB)", "wasmcni": rss[0], "wasmcni_hooks": rss[1], "reference": rss[2],
        "target_hooks_kb": 20 * 1024, "met": rss[1] <= 20 * 1024}));
    results.push(json!({"metric": "concurrent failures", "wasmcni": conc[0].3, "reference": conc[1].3,
        "distinct": [conc[0].4, conc[1].4]}));
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/cni-bench.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let doc = json!({"iterations": iterations, "concurrency": concurrency, "raw_ms": {"add": add, "del": del}, "results": results});
    std::fs::write(&out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    println!("\nJSON: {}", out.display());
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
