//! The static (musl) plugin build against the glibc one: the same ADD, interleaved, each build in a node
//! namespace of its own, a fresh pod namespace per ADD; plain and with three cached hooks. It execs the two
//! binaries (it links neither), the child entering its node namespace itself, so nothing but the plugin is
//! in the measured path, as host/benches/cni.rs measures. Not a test: it asserts only that ADD succeeds.
//!
//! scripts/bench-static.sh builds both and runs it (root; only its own namespaces).
//! Arguments: --glibc PATH --musl PATH [--iterations N] [--hook PATH]

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Ns(String);

impl Ns {
    fn new(name: String) -> Ns {
        let ok = Command::new("ip").args(["netns", "add", &name]).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "ip netns add {name} (root?)");
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

struct Build {
    label: String,
    binary: PathBuf,
    node: Ns,
    conf: Value,
    hooked: Value,
}

impl Build {
    /// Wall time and CPU time (user + system) of one call. CPU time comes from the reaped children's rusage,
    /// taken right around this child: less disturbed than wall time when the machine is busy.
    fn run(&self, cmd: &str, conf: &Value, id: &str, pod: &Path) -> (Duration, Duration) {
        let node = std::fs::File::open(self.node.path()).expect("node netns");
        let mut c = Command::new(&self.binary);
        c.env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", pod)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let fd = node.as_fd().try_clone_to_owned().expect("dup");
        // SAFETY: setns is async-signal-safe; the child only enters its node namespace before exec.
        unsafe {
            c.pre_exec(move || nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from));
        }
        let input = conf.to_string();
        let cpu_before = children_cpu();
        let start = Instant::now();
        let mut child = c.spawn().expect("spawn the plugin");
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let took = start.elapsed();
        let cpu = children_cpu() - cpu_before;
        assert!(out.status.success(), "{} {cmd} {id}: {}", self.label, String::from_utf8_lossy(&out.stdout));
        (took, cpu)
    }
}

fn children_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let d = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    d(u.user_time()) + d(u.system_time())
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn p90(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn main() {
    let (Some(glibc), Some(musl)) = (arg("--glibc"), arg("--musl")) else {
        eprintln!("usage: static_add --glibc PATH --musl PATH [--iterations N] [--hook PATH]");
        std::process::exit(2);
    };
    let iterations: usize = arg("--iterations").and_then(|v| v.parse().ok()).unwrap_or(60);
    let hook = arg("--hook").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/wasmcni_test_hook.wasm")
    });
    assert!(hook.is_file(), "{}: build the test hook first (scripts/bench-static.sh does)", hook.display());
    let tag = format!("wbs{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let make = |label: &str, binary: String| {
        let state = dir.path().join(label);
        let conf = json!({"cniVersion": "1.0.0", "name": "bench", "type": "wasmcni", "ipMasq": true,
            "stateDir": state.join("state"),
            "ipam": {"type": "builtin", "subnet": "10.100.0.0/16", "dataDir": state.join("ipam")}});
        let mut hooked = conf.clone();
        let drop = |port: u16| json!({"behavior": "drop-port", "peer": "203.0.113.0/24", "port": port});
        hooked["hooks"] = json!([
            {"name": "plan", "module": hook, "stages": ["pre-add"]},
            {"name": "guard-a", "module": hook, "stages": ["post-add"], "config": drop(25)},
            {"name": "guard-b", "module": hook, "stages": ["post-add"], "config": drop(465)},
        ]);
        Build { label: label.into(), binary: binary.into(), node: Ns::new(format!("{tag}-{label}")), conf, hooked }
    };
    let builds = [make("glibc", glibc), make("musl", musl)];

    // Warm-up, not measured: page cache, each build's own hook cache.
    for b in &builds {
        for (k, conf) in [&b.conf, &b.hooked].into_iter().enumerate() {
            let pod = Ns::new(format!("{tag}-w{}-{k}", b.label));
            b.run("ADD", conf, &format!("warm{k}"), &pod.path());
            b.run("DEL", conf, &format!("warm{k}"), &pod.path());
        }
    }
    let mut add = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    let mut cpu = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for i in 0..iterations {
        for (n, b) in builds.iter().enumerate() {
            for (k, conf) in [&b.conf, &b.hooked].into_iter().enumerate() {
                let pod = Ns::new(format!("{tag}-{n}{k}-{i}"));
                let id = format!("it{i}-{k}");
                let (wall, used) = b.run("ADD", conf, &id, &pod.path());
                add[n][k].push(wall.as_secs_f64() * 1e3);
                cpu[n][k].push(used.as_secs_f64() * 1e3);
                b.run("DEL", conf, &id, &pod.path());
            }
        }
    }
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64 / 1048576.0).unwrap_or(0.0);
    println!("\n{iterations} interleaved iterations per build and kind, ms\n");
    println!("| ADD | glibc median | musl median | musl / glibc | glibc p90 | musl p90 | CPU glibc | CPU musl | CPU musl / glibc |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (k, name) in ["plain", "3 cached hooks"].iter().enumerate() {
        let (g, m) = (median(&add[0][k]), median(&add[1][k]));
        let (cg, cm) = (median(&cpu[0][k]), median(&cpu[1][k]));
        println!(
            "| {name} | {g:.2} | {m:.2} | {:.2} | {:.2} | {:.2} | {cg:.2} | {cm:.2} | {:.2} |",
            m / g,
            p90(&add[0][k]),
            p90(&add[1][k]),
            cm / cg
        );
    }
    println!("\nbinary size MiB: glibc {:.1}, musl {:.1}", size(&builds[0].binary), size(&builds[1].binary));
}
