//! wasmcni against the reference `bridge` + `host-local` plugins, side by side and interleaved in one run,
//! each in its own "node" namespace with the same subnet and ipMasq on, a fresh pod namespace per ADD:
//! - per-pod cost on an empty node, for each firewall backend, with and without three cached hooks, and in
//!   bridge mode; 100 concurrent ADDs; peak RSS;
//! - the scale run: ADD and DEL medians with 0, 250 and 1,000 live pods already on the node;
//! - one ADD and DEL at debug level, to show where the time goes.
//!
//! Prints markdown tables and writes JSON (target/bench/cni-bench.json). Not a test: it asserts nothing but
//! that operations succeed. scripts/bench.sh runs it (root; Debian's containernetworking-plugins provide the
//! reference). Arguments: --iterations N (empty node, default 40), --concurrency N (100), --levels 0,250,1000,
//! --scale-iterations N (20), --scale-without-reference (the scale run with wasmcni's pods only on the machine),
//! --shared-proc (every node's plugins on the machine's one /proc, as before each node had its own: `OwnProc`).

mod plugin;
mod trace;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use plugin::{arg, flag, median, opt_arg, ms, num_cpus, pct, Ns, Plugin, Run, REF_DIR};
use serde_json::{json, Value};

const SUBNET: &str = "10.100.0.0/16";

/// ADD and DEL times (ms) of one plugin.
#[derive(Default, Clone)]
struct Times {
    add: Vec<f64>,
    del: Vec<f64>,
    rss_kb: i64,
}

/// One ADD then its DEL of a fresh pod, `n` times per plugin, interleaved across plugins. The pods'
/// namespaces are removed after the last iteration, not after each: the kernel frees a namespace in the
/// background, and that work (it walks every namespace on the machine, 3,000 of them at the top level)
/// then ran beside the next plugin's ADD on our two cores, measured: one nf_tables commit took 4.3 ms
/// instead of 0.2. It is the runtime's cost, the same for every CNI plugin; `--netns-churn` puts it back.
fn interleaved(plugins: &[&Plugin], n: usize, tag: &str) -> Vec<Times> {
    let churn = flag("--netns-churn");
    let mut t = vec![Times::default(); plugins.len()];
    let mut used = Vec::new();
    for i in 0..n {
        for (k, p) in plugins.iter().enumerate() {
            let pod = Ns::new(format!("{tag}-{k}-{i}"));
            let id = format!("{tag}-{i}");
            let a = p.run("ADD", &id, &pod.path());
            t[k].add.push(ms(a.took));
            t[k].rss_kb = t[k].rss_kb.max(a.max_rss_kb);
            t[k].del.push(ms(p.run("DEL", &id, &pod.path()).took));
            if !churn {
                used.push(pod);
            }
        }
    }
    t
}

/// `n` ADDs spawned at once: (total wall, per-op p50, per-op p99, failures, distinct addresses); then DELs.
fn concurrent(p: &Plugin, n: usize, tag: &str) -> (f64, f64, f64, usize, usize) {
    let pods: Vec<Ns> = (0..n).map(|i| Ns::new(format!("{tag}-{i}"))).collect();
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
    for (i, pod) in pods.iter().enumerate() {
        p.run("DEL", &format!("conc{i}"), &pod.path());
    }
    (wall, pct(&lat, 50), pct(&lat, 99), failures, ips.len())
}

/// Live pods of one node, added until there are `level`; each plugin of the node adds every other one.
struct Filled<'a> {
    plugins: Vec<&'a Plugin<'a>>,
    pods: Vec<Ns>,
}

impl Filled<'_> {
    fn fill_to(&mut self, level: usize, tag: &str) {
        while self.pods.len() < level {
            let i = self.pods.len();
            let pod = Ns::new(format!("{tag}-{i}"));
            self.plugins[i % self.plugins.len()].run("ADD", &format!("live{i}"), &pod.path());
            self.pods.push(pod);
        }
    }
}

/// Lets the node settle before a measured phase: writes the fill's files out and gives the kernel time for
/// the work a burst of pods leaves behind (ext4's journal and writeback of ~3 files per pod, the cleanup of
/// deleted namespaces). Measured without it, every step that writes a file took +0.5 ms right after
/// filling 1,000 pods and veth creation 4-7 ms instead of 1, for a few seconds, whatever the pod count: the
/// growth then said more about the fill than about the node. All plugins measured get the same pause.
fn settle(secs: f64) {
    nix::unistd::sync();
    std::thread::sleep(std::time::Duration::from_secs_f64(secs));
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "missed"
    }
}

/// A markdown row: the nftables figure against the reference with its target, iptables beside it.
fn row(name: &str, nft: f64, ipt: f64, reference: f64, target: Option<f64>) -> Value {
    let ratio = nft / reference;
    let (t, v) = target.map_or((String::new(), ""), |t| (format!("≤ {t}"), verdict(ratio <= t)));
    let ipt_cell = if ipt.is_nan() { "-".to_string() } else { format!("{ipt:.2}") };
    println!("| {name} | {nft:.2} | {ipt_cell} | {reference:.2} | {ratio:.2} | {t} | {v} |");
    json!({"metric": name, "nftables": nft, "iptables": if ipt.is_nan() { Value::Null } else { json!(ipt) }, "reference": reference, "ratio": ratio, "target": target,
           "met": target.map(|t| ratio <= t)})
}

fn main() {
    let iterations: usize = arg("--iterations", "40").parse().unwrap();
    let concurrency: usize = arg("--concurrency", "100").parse().unwrap();
    let scale_iterations: usize = arg("--scale-iterations", "20").parse().unwrap();
    let settle_secs: f64 = arg("--settle", "5").parse().unwrap();
    let levels: Vec<usize> = arg("--levels", "0,250,1000").split(',').filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    let tag = format!("wb{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    // The runDir is tmpfs on a node (/run); here a temp dir of our own on /dev/shm, removed at the end.
    let run = tempfile::tempdir_in("/dev/shm").unwrap();
    let hook = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/wasmcni_test_hook.wasm");
    assert!(hook.is_file(), "build the test hook first (scripts/bench.sh does)");
    // `--plugin PATH`: the build measured as "wasmcni" (scripts/bench.sh passes the static build, which is
    // what ships); this bench's own build (glibc, dynamic) then runs beside it as a row of its own.
    let own_build = PathBuf::from(env!("CARGO_BIN_EXE_wasmcni"));
    let plugin_arg = opt_arg("--plugin").map(PathBuf::from);
    let binary = plugin_arg.clone().unwrap_or_else(|| own_build.clone());
    // One state per node: the plain and the hooked plugin of a node are one network, as on a real node.
    let ours_conf = |node: &str, backend: &str, hooks: bool| {
        let d = dir.path().join(node);
        let mut c = json!({"cniVersion": "1.0.0", "name": "bench", "type": "wasmcni", "ipMasq": true, "firewallBackend": backend,
            "stateDir": d.join("state"), "runDir": run.path().join(node),
            "ipam": {"type": "builtin", "subnet": SUBNET, "dataDir": d.join("ipam")}});
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
    let (nft_node, ipt_node, ref_node, br_node) =
        (Ns::node(format!("{tag}-nft")), Ns::node(format!("{tag}-ipt")), Ns::node(format!("{tag}-ref")), Ns::node(format!("{tag}-br")));
    let ours = |label, node: &'static str, ns, backend, hooks| Plugin { label, binary: binary.clone(), conf: ours_conf(node, backend, hooks), node: ns };
    let nft = ours("wasmcni nftables", "nft", &nft_node, "nftables", false);
    let nft_hooks = ours("wasmcni nftables + 3 hooks", "nft", &nft_node, "nftables", true);
    let ipt = ours("wasmcni iptables", "ipt", &ipt_node, "iptables", false);
    let ipt_hooks = ours("wasmcni iptables + 3 hooks", "ipt", &ipt_node, "iptables", true);
    let reference = Plugin {
        label: "bridge+host-local",
        binary: PathBuf::from(REF_DIR).join("bridge"),
        conf: json!({"cniVersion": "1.0.0", "name": "bench", "type": "bridge", "bridge": "cnibench0",
            "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "subnet": SUBNET, "dataDir": dir.path().join("ipam-ref")}}),
        node: &ref_node,
    };
    // Bridge mode against the reference bridge plugin: the same topology on both sides.
    let mut bridge_conf = ours_conf("br", "nftables", false);
    bridge_conf["mode"] = json!("bridge");
    bridge_conf["bridge"] = json!("wcbench0");
    bridge_conf["isGateway"] = json!(true);
    let bridged = Plugin { label: "wasmcni bridge", binary: binary.clone(), conf: bridge_conf, node: &br_node };

    // Warm-up: page cache, the reference's bridge, our hook cache, the nftables table. Not measured.
    // `--baseline PATH`: an earlier wasmcni build beside the rest, for a before/after in one run. It gets its
    // own default backend (`auto`, which picks nftables on a kernel with nf_tables; iptables in builds
    // older than the backend choice) and no hooks: its contract may differ.
    let base_binary = opt_arg("--baseline").map(PathBuf::from);
    let base_node = base_binary.as_ref().map(|_| Ns::node(format!("{tag}-base")));
    let baseline = base_binary.zip(base_node.as_ref()).map(|(binary, node)| {
        let mut conf = ours_conf("base", "iptables", false);
        conf.as_object_mut().unwrap().remove("firewallBackend");
        Plugin { label: "baseline", binary, conf, node }
    });
    let glibc_node = plugin_arg.as_ref().map(|_| Ns::node(format!("{tag}-gl")));
    let glibc: Vec<Plugin> = glibc_node
        .iter()
        .flat_map(|node| {
            [("glibc build, nftables", false), ("glibc build, nftables + 3 hooks", true)]
                .map(|(label, hooks)| Plugin { label, binary: own_build.clone(), conf: ours_conf("gl", "nftables", hooks), node })
        })
        .collect();
    let mut all = vec![&nft, &nft_hooks, &ipt, &ipt_hooks, &reference, &bridged];
    all.extend(baseline.as_ref());
    let first_glibc = all.len();
    all.extend(glibc.iter());
    for (k, p) in all.iter().enumerate() {
        let pod = Ns::new(format!("{tag}-warm{k}"));
        p.run("ADD", "warm", &pod.path());
        p.run("DEL", "warm", &pod.path());
    }

    println!("\n{iterations} interleaved iterations on an empty node, {concurrency} concurrent ADDs, {} cores\n", num_cpus());
    settle(settle_secs);
    let t = interleaved(&all, iterations, &format!("{tag}-e"));
    let [t_nft, t_nft_h, t_ipt, t_ipt_h, t_ref, t_br] = [0, 1, 2, 3, 4, 5].map(|k| t[k].clone());
    let t_base = baseline.as_ref().map(|_| t[6].clone());
    let t_glibc: Vec<Times> = t[first_glibc..].to_vec();
    let conc_nft = concurrent(&nft, concurrency, &format!("{tag}-cn"));
    let conc_ipt = concurrent(&ipt, concurrency, &format!("{tag}-ci"));
    let conc_ref = concurrent(&reference, concurrency, &format!("{tag}-cr"));

    println!("| metric (ms) | wasmcni nftables | wasmcni iptables | bridge+host-local | ratio (nftables) | target | |");
    println!("|---|---|---|---|---|---|---|");
    let r = t_ref.clone();
    let mut results = vec![
        row("ADD median", median(&t_nft.add), median(&t_ipt.add), median(&r.add), Some(0.15)),
        row("ADD p99", pct(&t_nft.add, 99), pct(&t_ipt.add, 99), pct(&r.add, 99), None),
        row("DEL median", median(&t_nft.del), median(&t_ipt.del), median(&r.del), Some(0.35)),
        row("DEL p99", pct(&t_nft.del, 99), pct(&t_ipt.del, 99), pct(&r.del, 99), None),
        row("ADD with 3 cached hooks, median", median(&t_nft_h.add), median(&t_ipt_h.add), median(&r.add), Some(0.25)),
        row("ADD with 3 cached hooks, p99", pct(&t_nft_h.add, 99), pct(&t_ipt_h.add, 99), pct(&r.add, 99), None),
        row("DEL with 3 hooks' rules, median", median(&t_nft_h.del), median(&t_ipt_h.del), median(&r.del), Some(0.35)),
        row("bridge mode (nftables): ADD median", median(&t_br.add), f64::NAN, median(&r.add), None),
        row("bridge mode (nftables): DEL median", median(&t_br.del), f64::NAN, median(&r.del), None),
        row(&format!("{concurrency} concurrent ADDs, total wall"), conc_nft.0, conc_ipt.0, conc_ref.0, Some(0.2)),
        row(&format!("{concurrency} concurrent ADDs, per-op p50"), conc_nft.1, conc_ipt.1, conc_ref.1, None),
        row(&format!("{concurrency} concurrent ADDs, per-op p99"), conc_nft.2, conc_ipt.2, conc_ref.2, None),
    ];
    let mb = |kb: i64| kb as f64 / 1024.0;
    println!("\n| | nftables | nftables + 3 hooks | iptables | iptables + 3 hooks | bridge+host-local |\n|---|---|---|---|---|---|");
    println!(
        "| peak RSS of one ADD (MB) | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        mb(t_nft.rss_kb),
        mb(t_nft_h.rss_kb),
        mb(t_ipt.rss_kb),
        mb(t_ipt_h.rss_kb),
        mb(t_ref.rss_kb)
    );
    println!("| concurrent ADDs: failures / distinct addresses | {} / {} | - | {} / {} | - | {} / {} |", conc_nft.3, conc_nft.4, conc_ipt.3, conc_ipt.4, conc_ref.3, conc_ref.4);
    println!("\npeak RSS of one ADD with 3 hooks (nftables) ≤ 15 MB: {}", verdict(t_nft_h.rss_kb <= 15 * 1024));
    results.push(json!({"metric": "peak RSS of one ADD (kB)", "nftables": t_nft.rss_kb, "nftables_hooks": t_nft_h.rss_kb,
        "iptables": t_ipt.rss_kb, "iptables_hooks": t_ipt_h.rss_kb, "reference": t_ref.rss_kb, "target_hooks_kb": 15 * 1024,
        "met": t_nft_h.rss_kb <= 15 * 1024}));
    results.push(json!({"metric": "concurrent failures", "nftables": conc_nft.3, "iptables": conc_ipt.3, "reference": conc_ref.3,
        "distinct": [conc_nft.4, conc_ipt.4, conc_ref.4]}));

    if let [plain, hooked] = t_glibc.as_slice() {
        println!("\nThe same commit's glibc (dynamic) build beside it, same run: medians (ms) and their ratio to the reference; measured above = {}\n", binary.display());
        println!("| | measured build, nftables | glibc build, nftables | bridge+host-local |\n|---|---|---|---|");
        let cell = |ms: f64, reference: f64| format!("{ms:.2} ({:.2})", ms / reference);
        let (ra, rd) = (median(&t_ref.add), median(&t_ref.del));
        println!("| ADD | {} | {} | {ra:.2} |", cell(median(&t_nft.add), ra), cell(median(&plain.add), ra));
        println!("| ADD with 3 cached hooks | {} | {} | {ra:.2} |", cell(median(&t_nft_h.add), ra), cell(median(&hooked.add), ra));
        println!("| DEL | {} | {} | {rd:.2} |", cell(median(&t_nft.del), rd), cell(median(&plain.del), rd));
        println!("| peak RSS of one ADD with 3 hooks (MB) | {:.1} | {:.1} | {:.1} |", t_nft_h.rss_kb as f64 / 1024.0, hooked.rss_kb as f64 / 1024.0, t_ref.rss_kb as f64 / 1024.0);
        results.push(json!({"metric": "glibc build ADD / ADD with hooks / DEL median", "glibc": [median(&plain.add), median(&hooked.add), median(&plain.del)]}));
    }

    if let (Some(b), Some(p)) = (&t_base, &baseline) {
        println!("\nBefore and after, same run: medians (ms) and their ratio to the reference; baseline = {}\n", p.binary.display());
        println!("| | baseline (its default backend) | wasmcni iptables | wasmcni nftables | bridge+host-local |\n|---|---|---|---|---|");
        for (what, f) in [("ADD", (|t: &Times| median(&t.add)) as fn(&Times) -> f64), ("DEL", |t: &Times| median(&t.del))] {
            let rf = f(&t_ref);
            println!("| {what} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.2} ({:.2}) | {rf:.2} |", f(b), f(b) / rf, f(&t_ipt), f(&t_ipt) / rf, f(&t_nft), f(&t_nft) / rf);
        }
        results.push(json!({"metric": "baseline ADD/DEL median", "baseline": [median(&b.add), median(&b.del)]}));
    }

    let empty = step_timings(&nft_hooks, dir.path(), &format!("{tag}-dbg0"), "nftables, 3 cached hooks, empty node");

    let trace_log = dir.path().join("scale-trace.log");
    let mut traced_conf = nft.conf.clone();
    traced_conf["logLevel"] = json!("debug");
    traced_conf["logFile"] = json!(trace_log);
    let traced = Plugin { label: "wasmcni nftables, traced", binary: binary.clone(), conf: traced_conf, node: &nft_node };
    let (scale, nodes) = scale_run(&[&ipt, &ipt_hooks, &nft, &nft_hooks, &reference], (&traced, &trace_log), &levels, scale_iterations, &tag, settle_secs);
    let full_what = format!("nftables, 3 cached hooks, {} live pods", nodes[1].pods.len());
    let full = step_timings(&nft_hooks, dir.path(), &format!("{tag}-dbg1"), &full_what);
    drop(nodes);
    let timings = json!({"empty": empty, "full": full});

    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench/cni-bench.json");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let raw = json!({"nftables": [t_nft.add, t_nft.del], "nftables_hooks": [t_nft_h.add, t_nft_h.del], "iptables": [t_ipt.add, t_ipt.del],
        "iptables_hooks": [t_ipt_h.add, t_ipt_h.del], "reference": [t_ref.add, t_ref.del], "bridge": [t_br.add, t_br.del]});
    let doc = json!({"iterations": iterations, "concurrency": concurrency, "raw_ms_add_del": raw, "results": results,
        "scale": scale, "debug_timings": timings});
    std::fs::write(&out, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    println!("\nJSON: {}", out.display());
}

/// One ADD and one DEL of `p`'s kind at debug level, on its node as it is: the log's per-step milliseconds.
fn step_timings(p: &Plugin, dir: &Path, tag: &str, what: &str) -> Value {
    let log = dir.join(format!("{tag}.log"));
    let mut conf = p.conf.clone();
    conf["logLevel"] = json!("debug");
    conf["logFile"] = json!(log);
    let dbg = Plugin { label: "debug", binary: p.binary.clone(), conf, node: p.node };
    let pod = Ns::new(format!("{tag}-p"));
    dbg.run("ADD", tag, &pod.path());
    dbg.run("DEL", tag, &pod.path());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    println!("\nOne ADD and its DEL ({what}), debug log:\n```");
    // Each line: "<RFC 3339 time> wasmcni[pid] +X.XXXms level: message"; the time and pid say nothing here.
    let lines: Vec<String> = text.lines().filter_map(|l| l.split_once(" +").map(|(_, rest)| format!("+{rest}"))).collect();
    for l in &lines {
        println!("{l}");
    }
    println!("```");
    json!(lines)
}

/// The traced plugin's own medians per level: ADD's steps, then the ADD and DEL totals.
/// One level's trace: the steps with their medians, the in-process ADD and DEL totals, and the same
/// invocations' wall medians (spawn to reaped).
type Trace = ((Vec<(String, f64)>, f64, f64), (f64, f64));

fn print_traces(levels: &[usize], traces: &[Trace]) {
    println!("\nWhere the time goes (nftables, plain: the plugin's debug log, medians in ms of the same iterations; wall time adds the process start and exit)\n");
    let head: Vec<String> = levels.iter().map(|l| format!("{l} pods")).collect();
    println!("| ADD step | {} |\n|---|{}", head.join(" | "), "---|".repeat(levels.len()));
    for (i, (step, _)) in traces.first().map(|t| t.0 .0.clone()).unwrap_or_default().iter().enumerate() {
        let cells: Vec<String> = traces.iter().map(|t| t.0 .0.get(i).map(|(_, ms)| format!("{ms:.3}")).unwrap_or_default()).collect();
        println!("| {step} | {} |", cells.join(" | "));
    }
    let totals = |f: fn(&Trace) -> f64| traces.iter().map(|t| format!("{:.2}", f(t))).collect::<Vec<_>>().join(" | ");
    println!("| ADD in-process total (main to exit) | {} |", totals(|t| t.0 .1));
    println!("| ADD wall, same invocations (spawn to reaped) | {} |", totals(|t| t.1 .0));
    println!("| DEL in-process total (main to exit, the netfilter socket's close included) | {} |", totals(|t| t.0 .2));
    println!("| DEL wall, same invocations | {} |", totals(|t| t.1 .1));
}

/// ADD and DEL medians with `levels` live pods on each node, the levels in increasing order; wasmcni's
/// plain and hooked plugins of a backend share their node (and its live pods).
/// `traced` (nftables, plain, logging at debug level to `trace_log`) runs in the same interleaving: its
/// log says where the time goes at each level.
fn scale_run<'a>(plugins: &[&'a Plugin<'a>; 5], traced: (&Plugin, &Path), levels: &[usize], n: usize, tag: &str, settle_secs: f64) -> (Value, [Filled<'a>; 3]) {
    let [ipt, ipt_h, nft, nft_h, reference] = *plugins;
    // Without the reference: its pods' namespaces each carry sysctls it set, and a /proc/sys lookup walks
    // them all (performance.md), which a node running only wasmcni never has.
    let with_reference = !flag("--scale-without-reference");
    let mut traces = Vec::new();
    let mut nodes = [
        Filled { plugins: vec![ipt, ipt_h], pods: Vec::new() },
        Filled { plugins: vec![nft, nft_h], pods: Vec::new() },
        Filled { plugins: vec![reference], pods: Vec::new() },
    ];
    let mut table: Vec<(usize, Vec<(f64, f64)>)> = Vec::new();
    for &level in levels {
        for (k, node) in nodes.iter_mut().enumerate().filter(|(k, _)| with_reference || *k != 2) {
            node.fill_to(level, &format!("{tag}-l{k}"));
        }
        settle(settle_secs);
        let _ = std::fs::remove_file(traced.1);
        let mut all: Vec<&Plugin> = plugins.iter().copied().filter(|p| with_reference || !std::ptr::eq(*p, reference)).collect();
        all.push(traced.0);
        let mut t = interleaved(&all, n, &format!("{tag}-s{level}"));
        let traced_wall = t.pop().map(|w| (median(&w.add), median(&w.del))).unwrap_or((f64::NAN, f64::NAN));
        if !with_reference {
            t.push(Times { add: vec![f64::NAN], del: vec![f64::NAN], rss_kb: 0 });
        }
        traces.push((trace::summary(&std::fs::read_to_string(traced.1).unwrap_or_default()), traced_wall));
        table.push((level, t.iter().map(|t| (median(&t.add), median(&t.del))).collect()));
    }
    let without = if with_reference { "" } else { ", without the reference (wasmcni's pods only on the machine)" };
    println!("\nScale: ADD / DEL medians (ms) with N live pods on the node, {n} interleaved iterations per level, each after {settle_secs} s to settle{without}\n");
    println!("| live pods | iptables | iptables + 3 hooks | nftables | nftables + 3 hooks | bridge+host-local | nftables DEL / reference DEL (plain, hooks) |");
    println!("|---|---|---|---|---|---|---|");
    for (level, m) in &table {
        let cells: Vec<String> = m.iter().map(|(a, d)| if a.is_nan() { "-".into() } else { format!("{a:.2} / {d:.2}") }).collect();
        let ratios = if with_reference { format!("{:.2}, {:.2}", m[2].1 / m[4].1, m[3].1 / m[4].1) } else { "-".into() };
        println!("| {level} | {} | {ratios} |", cells.join(" | "));
    }
    let mut out = json!({"iterations": n, "levels": table.iter().map(|(l, m)| json!({"live": l, "add_del_medians": m})).collect::<Vec<_>>(),
        "in_process": traces.iter().map(|((steps, a, d), (wa, wd))| json!({"add": a, "del": d, "add_steps": steps, "wall_add": wa, "wall_del": wd})).collect::<Vec<_>>()});
    if let (Some(first), Some(last)) = (table.first(), table.last()) {
        if first.0 != last.0 {
            let g: Vec<String> = (0..5)
                .map(|k| (last.1[k].0 / first.1[k].0, last.1[k].1 / first.1[k].1))
                .map(|(a, d)| if a.is_nan() { "-".into() } else { format!("{a:.2}× / {d:.2}×") })
                .collect();
            println!("| growth {} → {} | {} | |", first.0, last.0, g.join(" | "));
            let nft_growth = [last.1[2].0 / first.1[2].0, last.1[2].1 / first.1[2].1];
            let del_ratio_ok = table.iter().all(|(_, m)| m[2].1 / m[4].1 <= 0.35 && m[3].1 / m[4].1 <= 0.35);
            let del_ratio = if with_reference { verdict(del_ratio_ok) } else { "not measured (no reference in this run)" };
            println!(
                "\nnftables ADD and DEL at {} live pods ≤ 1.2× their own {}-pod median: {} ({:.2}×, {:.2}×); DEL ≤ 0.35× the reference at every level, with and without hook rules: {}",
                last.0,
                first.0,
                verdict(nft_growth.iter().all(|g| *g <= 1.2)),
                nft_growth[0],
                nft_growth[1],
                del_ratio
            );
            out["nftables_growth"] = json!(nft_growth);
            out["del_ratio_met"] = json!(del_ratio_ok);
        }
    }
    print_traces(levels, &traces);
    (out, nodes)
}
