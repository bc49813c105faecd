//! WebAssembly hooks in the kernel: what a pre-ADD hook picks is what the pod gets, post-ADD rules really
//! drop packets, and every failure mode ends the way the hook's policy says, leaving nothing behind.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fw::{self, Fw};
use crate::support::*;

/// Built for wasm32-wasip2 by scripts/test.sh before the tests run.
pub fn test_hook() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/wasmcni_test_hook.wasm");
    assert!(
        p.is_file(),
        "{} is missing: build it with `cargo build -p wasmcni-test-hook --target wasm32-wasip2 --release` \
         (scripts/test.sh does)",
        p.display()
    );
    p
}

fn hook(name: &str, stages: &[&str], config: Value) -> Value {
    json!({"name": name, "module": test_hook(), "stages": stages, "config": config})
}

fn conf_with(node: &Node, hooks: Vec<Value>) -> Value {
    let mut conf = node.conf("1.0.0");
    conf["hooks"] = Value::Array(hooks);
    conf
}

fn add(node: &Node, conf: &Value, pod: &Ns, id: &str) -> Reply {
    node.cni("ADD", conf, id, Some(&pod.path()), "eth0")
}

fn del(node: &Node, conf: &Value, pod: &Ns, id: &str) {
    node.cni("DEL", conf, id, Some(&pod.path()), "eth0").succeeded();
}

/// Hook rules of any attachment, in either backend.
fn hook_chains(node: &Node) -> Vec<String> {
    let mut out: Vec<String> = node.ns.iptables_save().lines().filter(|l| l.contains("WCNI-")).map(String::from).collect();
    out.extend(node.nft_table().lines().filter(|l| l.contains(" hook ") && l.contains("comment \"wasmcni ")).map(String::from));
    out
}

#[test]
fn pre_add_hook_chooses_the_pods_address() {
    let node = Node::new("10.80.0.0/24");
    let pod = Ns::new("pod");
    let conf = conf_with(&node, vec![hook("static", &["pre-add"], json!({"behavior": "set-ip", "ip": "10.80.0.77"}))]);
    let res = add(&node, &conf, &pod, "static1").ok().clone();
    assert_eq!(pod_ip(&res), "10.80.0.77");
    assert!(pod.ip(&["-o", "addr", "show", "dev", "eth0"]).contains("inet 10.80.0.77/24"));
    assert_eq!(node.reserved_ips(), vec!["10.80.0.77"]);
    assert!(pod.ping("10.80.0.1"));
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    assert!(log.contains("hook static pre-add: pod Some(\"test\") gets [\"10.80.0.77\"]"), "hook log import, attributed: {log}");
    assert!(log.contains("hook static pre-add stdout: pre-add for static1"), "hook stdout goes to our log: {log}");
    del(&node, &conf, &pod, "static1");
    node.assert_clean();
}

#[test]
fn out_of_range_address_from_a_hook_is_rejected() {
    let node = Node::new("10.81.0.0/24");
    let pod = Ns::new("pod");
    let conf = conf_with(&node, vec![hook("bad-ip", &["pre-add"], json!({"behavior": "set-ip", "ip": "10.99.0.5"}))]);
    let err = add(&node, &conf, &pod, "oor").err().clone();
    assert_eq!(err["code"], 104, "{err}");
    let msg = err["msg"].as_str().unwrap();
    assert!(msg.contains("hook bad-ip") && msg.contains("field ips[0]") && msg.contains("outside"), "{msg}");
    node.assert_clean();
}

/// Upstream listens on two ports; returns them and a closure that says whether the pod can connect to one.
fn two_listeners(node: &Node) -> (u16, u16, Vec<TcpListener>) {
    let l1 = node.upstream.within(|| TcpListener::bind((UPSTREAM_IP, 0)).unwrap());
    let l2 = node.upstream.within(|| TcpListener::bind((UPSTREAM_IP, 0)).unwrap());
    (l1.local_addr().unwrap().port(), l2.local_addr().unwrap().port(), vec![l1, l2])
}

fn connects(pod: &Ns, port: u16) -> bool {
    let addr: SocketAddr = format!("{UPSTREAM_IP}:{port}").parse().unwrap();
    pod.within(|| TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok())
}

#[test]
fn post_add_drop_rule_blocks_one_port_and_del_removes_its_chain() {
    let node = Node::new("10.82.0.0/24");
    let pod = Ns::new("pod");
    let (blocked, open, _keep) = two_listeners(&node);
    let cfg = json!({"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": blocked});
    let conf = conf_with(&node, vec![hook("guard", &["post-add"], cfg)]);
    add(&node, &conf, &pod, "guard1").ok();
    assert!(connects(&pod, open), "the other port must still work");
    assert!(!connects(&pod, blocked), "the hook's drop rule did not stop traffic");
    // The rules are this pod's: another pod of the network, ADDed without the hook, still reaches the port.
    let other = Ns::new("other");
    node.add(&other, "unguarded").ok();
    assert!(connects(&other, blocked), "a hook rule of one pod reached another pod");
    node.del(&other, "unguarded").succeeded();
    let rules = node.hook_rules_of("guard1", "guard");
    assert!(rules.iter().any(|l| fw::drops_port(l, blocked)), "{rules:?}");
    let mut check = conf.clone();
    check["cniVersion"] = json!("1.1.0");
    node.cni("CHECK", &check, "guard1", Some(&pod.path()), "eth0").succeeded();
    del(&node, &conf, &pod, "guard1");
    assert!(hook_chains(&node).is_empty(), "hook chains left: {:?}", hook_chains(&node));
    node.assert_clean();
}

#[test]
fn monitor_mode_applies_nothing() {
    let node = Node::new("10.83.0.0/24");
    let pod = Ns::new("pod");
    let (blocked, _, _keep) = two_listeners(&node);
    let mut h = hook("watch", &["post-add"], json!({"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": blocked}));
    h["mode"] = json!("monitor");
    let conf = conf_with(&node, vec![h]);
    add(&node, &conf, &pod, "mon").ok();
    assert!(connects(&pod, blocked), "monitor mode must not block");
    assert!(hook_chains(&node).is_empty(), "{:?}", hook_chains(&node));
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    assert!(log.contains("monitor mode, not applied"), "{log}");
    del(&node, &conf, &pod, "mon");
    node.assert_clean();
}

#[test]
fn an_endless_hook_is_stopped_at_its_timeout() {
    let node = Node::new("10.84.0.0/24");
    let pod = Ns::new("pod");
    let mut h = hook("spin", &["pre-add"], json!({"behavior": "loop"}));
    h["timeout_ms"] = json!(50);
    let conf = conf_with(&node, vec![h]);
    add(&node, &conf, &pod, "warm-cache").err(); // first call also compiles; time the second
    let start = Instant::now();
    let err = add(&node, &conf, &pod, "spin").err().clone();
    let took = start.elapsed();
    assert!(err["msg"].as_str().unwrap().contains("hook spin failed in pre-add: timed out after 50 ms"), "{err}");
    // A generous bound: the point is that it stops at all, near its deadline rather than never.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    node.assert_clean();
}

#[test]
fn a_hook_growing_past_its_memory_limit_is_stopped() {
    let node = Node::new("10.85.0.0/24");
    let pod = Ns::new("pod");
    let mut h = hook("hog", &["post-add"], json!({"behavior": "grow"}));
    h["memory_mb"] = json!(16);
    h["timeout_ms"] = json!(5000);
    let conf = conf_with(&node, vec![h]);
    let err = add(&node, &conf, &pod, "hog").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("exceeded its memory limit of 16 MiB"), "{err}");
    node.assert_clean();
    assert!(!pod.links().contains("eth0"), "a post-add failure must unwind the wiring too");
}

#[test]
fn a_trapping_hook_fails_add_or_is_skipped_by_policy() {
    let node = Node::new("10.86.0.0/24");
    let pod = Ns::new("pod");
    let fail = conf_with(&node, vec![hook("crash", &["pre-add", "post-add"], json!({"behavior": "trap"}))]);
    let err = add(&node, &fail, &pod, "trap").err().clone();
    assert_eq!(err["code"], 104);
    assert!(err["msg"].as_str().unwrap().contains("hook crash failed in pre-add: trapped"), "{err}");
    node.assert_clean();

    let mut h = hook("crash", &["pre-add", "post-add"], json!({"behavior": "trap"}));
    h["on_error"] = json!("ignore");
    let ignore = conf_with(&node, vec![h]);
    add(&node, &ignore, &pod, "trap").ok();
    assert!(pod.ping("10.86.0.1"), "ignored failures must not affect the pod");
    del(&node, &ignore, &pod, "trap");
    node.assert_clean();
}

#[test]
fn hook_errors_in_del_never_fail_del() {
    let node = Node::new("10.87.0.0/24");
    let pod = Ns::new("pod");
    let mut slow = hook("slowpoke", &["del"], json!({"behavior": "loop"}));
    slow["timeout_ms"] = json!(50);
    let conf = conf_with(&node, vec![hook("grumpy", &["del"], json!({"behavior": "error"})), slow]);
    add(&node, &conf, &pod, "grumpy").ok();
    del(&node, &conf, &pod, "grumpy");
    node.assert_clean();
    // Both were told (and failed): an error and a timeout, each logged, neither failing DEL.
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    assert!(log.contains("hook grumpy failed in del (ignored, DEL goes on): returned an error: test hook asked to fail"), "{log}");
    assert!(log.contains("hook slowpoke failed in del (ignored, DEL goes on): timed out after 50 ms"), "{log}");
}

#[test]
fn sha256_pin_mismatch_is_refused() {
    let node = Node::new("10.88.0.0/24");
    let pod = Ns::new("pod");
    let mut h = hook("pinned", &["pre-add"], json!({}));
    h["sha256"] = json!("0".repeat(64));
    let err = add(&node, &conf_with(&node, vec![h]), &pod, "pin").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("sha256 mismatch"), "{err}");
    node.assert_clean();
}

#[test]
fn a_corrupted_cache_entry_is_rebuilt() {
    let node = Node::new("10.89.0.0/24");
    let (a, b) = (Ns::new("pa"), Ns::new("pb"));
    let conf = conf_with(&node, vec![hook("cached", &["pre-add"], json!({}))]);
    add(&node, &conf, &a, "cache-a").ok();
    let cache = node.state_dir().join("hook-cache");
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .expect("a cache entry");
    let good = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, b"this is not a compiled component").unwrap();
    add(&node, &conf, &b, "cache-b").ok();
    assert_eq!(std::fs::read(&entry).unwrap().len(), good.len(), "the entry was not rebuilt");
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    assert!(log.contains("discarding unusable cache entry"), "{log}");
    del(&node, &conf, &a, "cache-a");
    del(&node, &conf, &b, "cache-b");
    node.assert_clean();
}

/// A pod's engine starts without a compiler and loads what an engine with one cached: the node's first pod
/// compiles, the next ones do not, and neither does a pod after `hook compile`.
#[test]
fn pods_after_the_first_load_hooks_without_a_compiler() {
    let node = Node::new("10.87.0.0/24");
    let (a, b) = (Ns::new("ca"), Ns::new("cb"));
    let conf = conf_with(&node, vec![hook("cached", &["pre-add"], json!({}))]);
    let log = || std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap_or_default();
    let compiler_starts = || log().matches("starting the engine with its compiler").count();
    add(&node, &conf, &a, "first").ok();
    assert_eq!(compiler_starts(), 1, "the first pod compiles: {}", log());
    let cached = std::fs::read_dir(node.state_dir().join("hook-cache")).unwrap().count();
    add(&node, &conf, &b, "second").ok();
    assert_eq!(compiler_starts(), 1, "the second pod must load from the cache without a compiler: {}", log());
    assert_eq!(std::fs::read_dir(node.state_dir().join("hook-cache")).unwrap().count(), cached, "nothing new cached");
    assert!(b.links().contains("eth0"));
    let mut status = conf.clone();
    status["cniVersion"] = json!("1.1.0");
    node.cni("STATUS", &status, "", None, "").succeeded();
    assert_eq!(compiler_starts(), 1, "STATUS must check cached hooks without a compiler: {}", log());
    del(&node, &conf, &b, "second");

    // `hook compile` fills the cache for the pods' engine.
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["hook", "compile", test_hook().to_str().unwrap(), "--state-dir", other.path().to_str().unwrap()])
        .env_remove("CNI_COMMAND")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut precompiled = conf.clone();
    precompiled["stateDir"] = json!(other.path());
    add(&node, &precompiled, &b, "precompiled").ok();
    assert_eq!(compiler_starts(), 1, "a pod after `hook compile` must not compile: {}", log());
    del(&node, &precompiled, &b, "precompiled");
    del(&node, &conf, &a, "first");
    node.assert_clean();
}

#[test]
fn a_bad_manifest_fails_add_and_status_naming_file_hook_and_field() {
    let node = Node::new("10.90.0.0/24");
    let pod = Ns::new("pod");
    let manifest = node.dir.path().join("hooks.toml");
    std::fs::write(
        &manifest,
        format!("[[hooks]]\nname = \"guard\"\nmodule = \"{}\"\nstages = [\"post-add\"]\ntimeout_ms = 999999\n", test_hook().display()),
    )
    .unwrap();
    let mut conf = node.conf("1.1.0");
    conf["hooksManifest"] = json!(manifest);
    for reply in [add(&node, &conf, &pod, "manifest"), node.cni("STATUS", &conf, "", None, "")] {
        let msg = reply.err()["msg"].as_str().unwrap().to_string();
        assert!(msg.contains("hooks.toml") && msg.contains("hook \"guard\"") && msg.contains("timeout_ms"), "{msg}");
    }
    node.assert_clean();
}

#[test]
fn gc_removes_hook_chains_of_stale_attachments() {
    let node = Node::new("10.91.0.0/24");
    let (keep, stale) = (Ns::new("keep"), Ns::new("stale"));
    let cfg = json!({"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": 9});
    let conf = conf_with(&node, vec![hook("guard", &["post-add"], cfg)]);
    add(&node, &conf, &keep, "keep").ok();
    add(&node, &conf, &stale, "stale").ok();
    assert!(!node.hook_rules_of("stale", "guard").is_empty());
    let mut gc = conf.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    node.cni("GC", &gc, "", None, "").succeeded();
    assert!(node.rules_of("stale").is_empty(), "{:?}", node.rules_of("stale"));
    assert!(!node.hook_rules_of("keep", "guard").is_empty(), "GC must keep live hook rules: {:?}", node.rules_of("keep"));
    del(&node, &conf, &keep, "keep");
    node.assert_clean();
}

#[test]
fn gc_finds_chains_veths_and_addresses_that_have_no_record() {
    let node = Node::new("10.92.0.0/24");
    let (keep, leaked) = (Ns::new("keep"), Ns::new("leak"));
    let cfg = json!({"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": 9});
    let conf = conf_with(&node, vec![hook("guard", &["post-add"], cfg)]);
    add(&node, &conf, &keep, "keep").ok();
    let leaked_ip = pod_ip(add(&node, &conf, &leaked, "leaked").ok());
    // What a crash before the record, or an older plugin, leaves: everything but the record.
    let record = node.records().into_iter().find(|p| p.to_string_lossy().contains("leaked")).expect("record");
    std::fs::remove_file(record).unwrap();
    assert!(node.masquerades("leaked", &leaked_ip) && !node.hook_rules_of("leaked", "guard").is_empty());
    assert_eq!(node.host_veths().len(), 2);

    let mut gc = conf.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    node.cni("GC", &gc, "", None, "").succeeded();
    assert!(node.rules_of("leaked").is_empty(), "leaked rules left: {:?}", node.rules_of("leaked"));
    assert_eq!(node.host_veths().len(), 1, "leaked veth left: {:?}", node.host_veths());
    assert!(!leaked.links().contains("eth0"));
    assert!(!node.reserved_ips().contains(&leaked_ip));
    assert!(keep.ping("10.92.0.1"), "GC must leave the live attachment working");
    assert!(!node.hook_rules_of("keep", "guard").is_empty(), "{:?}", node.rules_of("keep"));
    del(&node, &conf, &keep, "keep");
    node.assert_clean();
}

#[test]
fn hook_compile_fills_the_cache_ahead_of_time() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let module = test_hook();
    let run = || {
        let out = std::process::Command::new(BIN)
            .args(["hook", "compile", module.to_str().unwrap(), "--state-dir", state])
            .env_remove("CNI_COMMAND")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(run().contains("compiled in"));
    assert!(run().contains("already cached"));
    let entries: Vec<_> = std::fs::read_dir(dir.path().join("hook-cache")).unwrap().filter_map(|e| e.ok()).collect();
    assert!(entries.iter().any(|e| e.path().extension().is_some_and(|x| x == "cwasm")));
}

#[test]
fn del_without_a_record_removes_hook_chains_by_name() {
    let node = Node::new("10.94.0.0/24");
    let pod = Ns::new("pod");
    let cfg = json!({"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": 9});
    // A copy of the module, removed before DEL: the names in the manifest are all DEL needs.
    let module = node.dir.path().join("guard.wasm");
    std::fs::copy(test_hook(), &module).unwrap();
    let mut h = hook("guard", &["post-add"], cfg);
    h["module"] = json!(module);
    let conf = conf_with(&node, vec![h]);
    add(&node, &conf, &pod, "norec").ok();
    for r in node.records() {
        std::fs::remove_file(r).unwrap();
    }
    std::fs::remove_file(&module).unwrap();
    del(&node, &conf, &pod, "norec");
    assert!(hook_chains(&node).is_empty(), "{:?}", hook_chains(&node));
    node.assert_clean();
    // ADD with the module gone fails naming it, with nothing left behind.
    let err = add(&node, &conf, &pod, "nomod").err().clone();
    assert_eq!(err["code"], 7, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("guard.wasm does not exist"), "{err}");
    node.assert_clean();
}

#[test]
fn one_restore_per_add_and_per_del_and_del_loads_only_del_hooks() {
    // The speed design of ADD (no process per rule) and DEL (one restore and no save; nftables: one
    // transaction), shown by what the plugin logs at debug level: every iptables-restore it runs, with
    // its input, and every nftables transaction that changes rules.
    let node = Node::new("10.79.0.0/24");
    let (warm, pod) = (Ns::new("warm"), Ns::new("pod"));
    let cfg = |port: u16| json!({"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": port});
    let mut conf = conf_with(&node, vec![hook("guard-a", &["post-add"], cfg(25)), hook("guard-b", &["post-add"], cfg(465))]);
    add(&node, &conf, &warm, "warm").ok(); // creates the node's shared chain (iptables) or table (nftables)
    let log = node.dir.path().join("measured.log");
    conf["logFile"] = json!(log);
    let marker = match fw::under_test() {
        Fw::Iptables => "iptables-restore --noflush <<EOF",
        Fw::Nftables => "changes in one transaction",
    };
    let restores = || std::fs::read_to_string(&log).unwrap().matches(marker).count();
    add(&node, &conf, &pod, "measured").ok();
    assert_eq!(restores(), 1, "masquerade and two hooks' chains must go in one iptables-restore or transaction");
    let before_del = std::fs::read_to_string(&log).unwrap().len();
    del(&node, &conf, &pod, "measured");
    assert_eq!(restores(), 2, "DEL removes every rule of the attachment with one iptables-restore or transaction");
    let del_log = std::fs::read_to_string(&log).unwrap()[before_del..].to_string();
    assert!(!del_log.contains("hooks loaded"), "no hook has a del stage: DEL must not load any\n{del_log}");
    // Its cost does not grow with the node: DEL undoes what the record says without reading the ruleset.
    assert!(!del_log.contains("iptables-save") && !del_log.contains("ip6tables-save"), "DEL read the tables\n{del_log}");
    assert!(!del_log.contains("transaction refused"), "DEL had the kernel abort a transaction (~10 ms)\n{del_log}");
    del(&node, &conf, &warm, "warm");
    node.assert_clean();
}

#[test]
fn post_add_drop_rule_works_for_a_bridged_pod_matched_by_address() {
    let node = Node::new("10.84.0.0/24");
    let pod = Ns::new("brpod");
    let (blocked, open, _keep) = two_listeners(&node);
    let cfg = json!({"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": blocked});
    let mut conf = conf_with(&node, vec![hook("guard", &["post-add"], cfg)]);
    conf["mode"] = json!("bridge");
    conf["bridge"] = json!("wcbr0");
    conf["isDefaultGateway"] = json!(true);
    let res = add(&node, &conf, &pod, "brguard").ok().clone();
    assert!(connects(&pod, open), "the other port must still work");
    assert!(!connects(&pod, blocked), "the hook's drop rule did not stop a bridged pod's traffic");
    // Routed traffic of a bridged pod enters FORWARD from the bridge: the rules match its address.
    let ip = pod_ip(&res);
    assert!(node.dispatched_by_address("brguard", &ip), "{:?}", node.rules_of("brguard"));
    del(&node, &conf, &pod, "brguard");
    assert!(hook_chains(&node).is_empty(), "hook chains left: {:?}", hook_chains(&node));
    node.assert_clean();
}

#[test]
fn gc_waits_for_an_add_in_flight_and_never_sees_it_half_made() {
    let node = Node::new("10.93.0.0/24");
    let pod = Ns::new("slow");
    // A post-add hook that spins until its 1.5 s timeout (ignored): the address is reserved, the record not
    // written yet, for that long.
    let mut h = hook("slow", &["post-add"], json!({"behavior": "loop"}));
    h["timeout_ms"] = json!(1500);
    h["on_error"] = json!("ignore");
    let conf = conf_with(&node, vec![h]);
    let warm = Ns::new("warm");
    add(&node, &conf, &warm, "warm-cache").ok(); // compiles once, outside the timed part
    let adding = node.spawn_cni(&cni_env("ADD", "slow", Some(&pod.path()), "eth0"), &conf);
    // Wait until the slow ADD holds its address (its hook spins 1.5 s from then on).
    let polling = Instant::now();
    while node.reserved_ips().len() < 2 {
        assert!(polling.elapsed() < Duration::from_secs(10), "the slow ADD never reserved its address");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut gc = conf.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "warm-cache", "ifname": "eth0"}]);
    let start = Instant::now();
    node.cni("GC", &gc, "", None, "").succeeded();
    assert!(start.elapsed() > Duration::from_millis(400), "GC did not wait for the ADD in flight");
    adding.wait().ok();
    // GC ran after the ADD finished: it removed the whole attachment, not half of it.
    assert_eq!(node.records().len(), 1, "{:?}", node.records());
    assert_eq!(node.reserved_ips().len(), 1);
    assert_eq!(node.host_veths().len(), 1);
    assert!(!pod.links().contains("eth0"));
}

#[test]
fn hooks_get_no_files_no_environment_no_sockets_and_a_fresh_instance_per_call() {
    let node = Node::new("10.95.0.0/24");
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/wasmcni_probe_hook.wasm");
    assert!(module.is_file(), "{} is missing: build it (scripts/test.sh does)", module.display());
    let conf = conf_with(&node, vec![json!({"name": "probe", "module": module, "stages": ["pre-add"]})]);
    let (a, b) = (Ns::new("pa"), Ns::new("pb"));
    add(&node, &conf, &a, "probe-a").ok();
    add(&node, &conf, &b, "probe-b").ok();
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    let probes: Vec<&str> = log.lines().filter(|l| l.contains("hook probe pre-add: probe:")).collect();
    assert_eq!(probes.len(), 2, "{log}");
    for p in probes {
        // A counter kept in the instance starts again at 1: no state carries from one call to the next.
        assert!(p.ends_with("probe: file=denied env=0 tcp=denied calls=1"), "{p}");
    }
    del(&node, &conf, &a, "probe-a");
    del(&node, &conf, &b, "probe-b");
    node.assert_clean();
}

#[test]
fn a_v6_peer_rule_goes_to_ip6tables_and_drops_only_v6_traffic() {
    let node = Node::new("10.96.0.0/24");
    let pod = Ns::new("pod6");
    // One upstream port, listening on both families.
    let l6 = node.upstream.within(|| TcpListener::bind((UPSTREAM_IP6.parse::<std::net::IpAddr>().unwrap(), 0)).unwrap());
    let port = l6.local_addr().unwrap().port();
    let _l4 = node.upstream.within(|| TcpListener::bind((UPSTREAM_IP, port)).unwrap());
    let cfg = json!({"behavior": "drop-port", "peer": format!("{UPSTREAM_IP6}/128"), "port": port});
    let mut conf = conf_with(&node, vec![hook("guard6", &["post-add"], cfg)]);
    conf["ipam"] = json!({"type": "builtin", "dataDir": node.ipam_dir(), "ranges": [[{"subnet": "10.96.0.0/24"}], [{"subnet": "fd00:96::/64"}]]});
    add(&node, &conf, &pod, "guard6").ok();
    // One rule, for IPv6 only (in ip6tables, or matching nfproto ipv6): a v6 peer has no IPv4 rule.
    let rules = node.hook_rules_of("guard6", "guard6");
    assert!(rules.len() == 1 && rules[0].contains(UPSTREAM_IP6) && fw::drops_port(&rules[0], port), "{rules:?}");
    let reach = |ip: &str| {
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        pod.within(|| TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok())
    };
    assert!(!reach(UPSTREAM_IP6), "the v6 drop rule did not stop IPv6 traffic");
    assert!(reach(UPSTREAM_IP), "IPv4 to the same port must still work");
    del(&node, &conf, &pod, "guard6");
    node.assert_clean();
}
