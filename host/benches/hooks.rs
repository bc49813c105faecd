//! Hook overhead: engine start, cold compile, cache load, and the per-pod cost of a cached hook (load from
//! the cache by mmap, pre-instantiate, instantiate in a fresh store, call), per stage, in a warm process and in fresh ones.
//! Run with scripts/bench-hooks.sh (it builds the test hook first). Not a test: it asserts nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use wasmcni::hooks::cache::Cache;
use wasmcni::hooks::manifest::{HookSpec, Stage};
use wasmcni::hooks::engine::{wit, HookEngine};

fn spec(module: PathBuf) -> HookSpec {
    let mut spec = HookSpec::new("bench", module, vec![Stage::PreAdd, Stage::PostAdd, Stage::Del]);
    spec.config = Some(serde_json::json!({"behavior": "drop-port", "peer": "203.0.113.0/24", "port": 8080}));
    spec
}

/// The budgets for a cached hook, per pod: compiled languages (issue #6), and components that carry an
/// interpreter (Python, JavaScript; issue #14).
const PER_POD_TARGET_MS: f64 = 0.2;
const INTERPRETED_TARGET_MS: f64 = 1.0;

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    u.ru_minflt
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[(v.len() * 99 / 100).min(v.len() - 1)]))
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect()
}

fn main() {
    if let (Some(m), Some(c)) = (std::env::var_os("WASMCNI_HOOKBENCH_FRESH"), std::env::var_os("WASMCNI_HOOKBENCH_CACHE")) {
        return fresh_child(m.into(), c.into());
    }
    let module = std::env::args().skip(1).find(|a| !a.starts_with("--")).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/wasmcni_test_hook.wasm")
    });
    let size = std::fs::metadata(&module).expect("build the test hook first (scripts/bench-hooks.sh)").len();
    // The engine a pod starts has no compiler; `rt` below compiles (the cold figures) and fills the cache.
    let t = Instant::now();
    let pod = HookEngine::cached_only().expect("engine");
    let engine_start = t.elapsed();
    // Again in a warm process: the first one above also pays the page faults of wasmtime's code.
    let engine_again = time(20, || HookEngine::cached_only().expect("engine"));
    let rt = HookEngine::new().expect("engine");
    let bytes = std::fs::read(&module).unwrap();
    let cold = time(3, || rt.engine().precompile_component(&bytes).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::open(dir.path().join("hook-cache"), rt.cache_key());
    rt.load(spec(module.clone()), &cache).unwrap(); // fills the cache
    let load = time(200, || pod.load(spec(module.clone()), &cache).unwrap());

    let hook = pod.load(spec(module.clone()), &cache).unwrap();
    let (att, plan, result) = inputs(hook.spec.config_json());
    let pre = time(2000, || hook.pre_add(&att, &plan).unwrap());
    let post = time(2000, || hook.post_add(&att, &result).unwrap());
    let del = time(2000, || hook.del(&att).unwrap());
    let full = time(500, || {
        let h = pod.load(spec(module.clone()), &cache).unwrap();
        h.post_add(&att, &result).unwrap()
    });

    let examples = examples(&rt, &pod, &cache, &dir.path().join("hook-cache"), &att, &plan, &result);
    println!("hook component: {} ({} KiB)\n", module.display(), size / 1024);
    println!("| what | median ms | p99 ms |\n|---|---|---|");
    println!("| engine without a compiler + watchdog, the linker started on its own thread (once per process) | {:.3} | - |", engine_start.as_secs_f64() * 1e3);
    for (name, v) in [
        ("the same, again in a warm process", engine_again),
        ("cold compile (cranelift)", cold),
        ("load: hash index + trust checks + mmap + pre-instantiate", load),
        ("call pre-add (fresh store + instantiate + call)", pre),
        ("call post-add (returns 1 rule)", post),
        ("call del", del),
        ("cached hook per pod: load + instantiate + call", full),
    ] {
        let (p50, p99) = stats(v);
        println!("| {name} | {p50:.3} | {p99:.3} |");
    }
    println!("{examples}");
}

/// What every call gets: an attachment with pod metadata, an empty plan and an empty result.
fn inputs(config: String) -> (wit::Attachment, wit::Plan, wit::AddResult) {
    let att = wit::Attachment {
        container_id: "bench".into(),
        ifname: "eth0".into(),
        netns: "/var/run/netns/bench".into(),
        network: "net".into(),
        pod_namespace: Some("default".into()),
        pod_name: Some("web".into()),
        pod_uid: None,
        args: vec![],
        runtime_config: "{}".into(),
        config,
        pod_labels: vec![("app".into(), "web".into())],
        pod_annotations: vec![],
        service_account: Some("default".into()),
    };
    let dns = wit::Dns { nameservers: vec![], domain: None, search: vec![], options: vec![] };
    let plan = wit::Plan { ips: vec![], routes: vec![], mtu: None, mac: None, dns: dns.clone() };
    let result = wit::AddResult { interfaces: vec![], ips: vec![], routes: vec![], dns };
    (att, plan, result)
}

/// An example hook as the bench loads it: its own defaults for config, memory enough for the interpreters.
fn example_spec(module: PathBuf) -> HookSpec {
    let mut s = spec(module);
    s.config = None;
    s.memory_mb = 128;
    s
}

/// A per-pod process in miniature: start the engine, load one cached hook, call pre-add once. Prints the
/// milliseconds of each, from this process's own start, for `fresh` below.
fn fresh_child(module: PathBuf, cache_dir: PathBuf) {
    let t = Instant::now();
    let rt = HookEngine::cached_only().expect("engine");
    let engine = t.elapsed();
    let cache = Cache::open(cache_dir, rt.cache_key());
    let h = rt.load(example_spec(module), &cache).expect("a cached hook");
    let load = t.elapsed() - engine;
    let (att, plan, _) = inputs("{}".into());
    let _ = h.pre_add(&att, &plan);
    let call = t.elapsed() - engine - load;
    println!("{} {} {}", engine.as_secs_f64() * 1e3, load.as_secs_f64() * 1e3, call.as_secs_f64() * 1e3);
}

/// Medians of engine start, load and first call, each in a fresh process (what a pod pays: no code of
/// wasmtime's or of the component is mapped yet), over `n` processes.
fn fresh(module: &std::path::Path, cache_dir: &std::path::Path, n: usize) -> (f64, f64, f64) {
    let mut runs: Vec<[f64; 3]> = Vec::new();
    for _ in 0..n {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .env("WASMCNI_HOOKBENCH_FRESH", module)
            .env("WASMCNI_HOOKBENCH_CACHE", cache_dir)
            .output()
            .expect("the bench binary re-run");
        assert!(out.status.success(), "fresh process for {}: {}", module.display(), String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Vec<f64> = text.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        if let [e, l, c] = v[..] {
            runs.push([e, l, c]);
        }
    }
    let med = |i: usize| {
        let mut v: Vec<f64> = runs.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    (med(0), med(1), med(2))
}

/// Cold compile vs cache load, and a call of each stage, for every built example hook
/// (target/example-hooks, from example-hooks/build.sh).
fn examples(rt: &HookEngine, pod: &HookEngine, cache: &Cache, cache_dir: &std::path::Path, att: &wit::Attachment, plan: &wit::Plan, result: &wit::AddResult) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/example-hooks");
    let Ok(entries) = std::fs::read_dir(&dir) else { return String::new() };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.extension().is_some_and(|x| x == "wasm")).collect();
    paths.sort();
    let mut out = String::from(
        "\n| example hook | size KiB | cold compile ms | cache load ms: mmap + deserialize / hash, checks, pre-instantiate | pre-add / post-add / del call ms (p50) | page faults per call | per pod: load + one call | target | in a fresh process: engine / load / first call |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in paths {
        let bytes = std::fs::read(&p).unwrap();
        let n = if bytes.len() > 4 << 20 { 1 } else { 3 };
        let (cold, _) = stats(time(n, || rt.engine().precompile_component(&bytes).unwrap()));
        let s = example_spec(p.clone());
        rt.load(s.clone(), cache).unwrap();
        let (load, _) = stats(time(50, || pod.load(s.clone(), cache).unwrap()));
        let sha = cache.module_sha256(&p).unwrap();
        let (deser, _) = stats(time(50, || cache.load_cached(pod.engine(), &sha).unwrap()));
        let h = pod.load(s, cache).unwrap();
        let faults = minor_faults();
        let (pre, _) = stats(time(50, || h.pre_add(att, plan).is_ok()));
        let (post, _) = stats(time(50, || h.post_add(att, result).is_ok()));
        let (del, _) = stats(time(50, || h.del(att).is_ok()));
        let faults = (minor_faults() - faults) / 150;
        let name = p.file_stem().unwrap().to_string_lossy();
        // What one pod pays for a cached hook: its load from the cache and one stage call.
        let per_pod = load + pre.max(post).max(del);
        let target = if bytes.len() > 4 << 20 { INTERPRETED_TARGET_MS } else { PER_POD_TARGET_MS };
        let verdict = if per_pod <= target { "met" } else { "missed" };
        let (f_engine, f_load, f_call) = fresh(&p, cache_dir, 11);
        out += &format!(
            "| {name} | {} | {cold:.1} | {deser:.3} / {:.3} | {pre:.3} / {post:.3} / {del:.3} | {faults} | {per_pod:.3} | ≤ {target} ms: {verdict} | {f_engine:.2} / {f_load:.2} / {f_call:.2} |\n",
            bytes.len() / 1024,
            (load - deser).max(0.0),
        );
    }
    out
}
