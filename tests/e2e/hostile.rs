//! Hostile hooks: whatever a hook returns, logs or does, the plugin's answer stays bounded and says why,
//! the log stays the plugin's, and ADD unwinds.

use std::path::Path;

use serde_json::{json, Value};

use crate::hooks::test_hook;
use crate::support::*;

fn conf_with(node: &Node, stage: &str, behavior: &str, module: &Path) -> Value {
    let mut conf = node.conf("1.0.0");
    conf["hooks"] = json!([{"name": "hostile", "module": module, "stages": [stage], "timeout_ms": 5000,
                            "config": {"behavior": behavior}}]);
    conf
}

fn add(node: &Node, conf: &Value, pod: &Ns, id: &str) -> (Reply, usize) {
    let out = node.cni("ADD", conf, id, Some(&pod.path()), "eth0");
    let size = out.json.as_ref().map(|j| j.to_string().len()).unwrap_or_default();
    (out, size)
}

fn log(node: &Node) -> String {
    std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap_or_default()
}

#[test]
fn a_ten_megabyte_error_message_gives_a_small_cni_error() {
    let node = Node::new("10.55.0.0/24");
    let pod = Ns::new("pod");
    let (out, size) = add(&node, &conf_with(&node, "pre-add", "huge-error", &test_hook()), &pod, "huge");
    let e = out.err();
    assert_eq!(e["code"], 104);
    assert!(e["msg"].as_str().unwrap().contains("hook hostile failed in pre-add: returned an error: EEEE"), "{}", &e["msg"].as_str().unwrap()[..200]);
    assert!(e["msg"].as_str().unwrap().contains("more bytes cut"));
    assert!(size < 8 * 1024, "the whole reply is {size} bytes");
    assert!(log(&node).len() < 64 * 1024, "the log holds {} bytes", log(&node).len());
    node.assert_clean();
}

#[test]
fn a_hook_cannot_forge_log_lines_or_flood_the_log() {
    let node = Node::new("10.56.0.0/24");
    let pod = Ns::new("pod");
    let (out, _) = add(&node, &conf_with(&node, "pre-add", "forge-log", &test_hook()), &pod, "forge");
    out.ok();
    let text = log(&node);
    assert!(!text.contains('\u{1b}'), "escape sequences reach the log");
    // The forged text is on a line of its own that says whose it is.
    let forged: Vec<&str> = text.lines().filter(|l| l.contains("forged by a hook")).collect();
    assert_eq!(forged.len(), 1, "{text}");
    assert!(forged[0].contains("error: hook hostile pre-add: wasmcni[1] +0.001ms error: ADD failed: forged by a hook"), "{}", forged[0]);
    assert!(text.contains("hook hostile pre-add: \\u{1b}[2J\\u{1b}[31mred"), "{text}");
    node.cni("DEL", &conf_with(&node, "pre-add", "forge-log", &test_hook()), "forge", Some(&pod.path()), "eth0").succeeded();

    let flood = conf_with(&node, "pre-add", "flood-log", &test_hook());
    let before = log(&node).len();
    let (out, _) = add(&node, &flood, &pod, "flood");
    out.ok();
    let grown = log(&node).len() - before;
    assert!(grown < 64 * 1024, "20 MB of hook log grew the log by {grown} bytes");
    assert!(log(&node).contains("log output past"), "the cut is said once");
    node.cni("DEL", &flood, "flood", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn traps_say_why() {
    let node = Node::new("10.57.0.0/24");
    let pod = Ns::new("pod");
    let msg = |behavior: &str| {
        let (out, _) = add(&node, &conf_with(&node, "pre-add", behavior, &test_hook()), &pod, "trap");
        let m = out.err()["msg"].as_str().unwrap().to_string();
        node.assert_clean();
        m
    };
    let panic = msg("trap");
    assert!(panic.contains("trapped: panicked: test hook asked to trap"), "{panic}");
    assert!(!panic.contains("RUST_BACKTRACE") && !panic.contains("wasm backtrace"), "{panic}");
    let stack = msg("recurse");
    assert!(stack.contains("overflowed its stack"), "{stack}");
    let bare = msg("unreachable");
    assert!(bare.contains("trapped: reached unreachable code"), "{bare}");
    assert!(!bare.contains("wasm backtrace") && !bare.contains("panicked"), "{bare}");
}

#[test]
fn a_hook_returning_ten_thousand_routes_is_refused() {
    let node = Node::new("10.58.0.0/24");
    let pod = Ns::new("pod");
    let (out, _) = add(&node, &conf_with(&node, "pre-add", "many-routes", &test_hook()), &pod, "routes");
    let m = out.err()["msg"].as_str().unwrap().to_string();
    assert!(m.contains("field routes: 10000 entries is more than the limit of 32"), "{m}");
    node.assert_clean();
}

#[test]
fn a_component_of_another_contract_version_is_refused_naming_both() {
    let node = Node::new("10.59.0.0/24");
    let pod = Ns::new("pod");
    // The test hook with its contract import renamed to another major version: signatures still match.
    let bytes = std::fs::read(test_hook()).unwrap();
    let (from, to) = (b"wasmcni:hook/types@0.2.0".as_slice(), b"wasmcni:hook/types@9.2.0".as_slice());
    let mut patched = bytes.clone();
    let mut n = 0;
    let mut i = 0;
    while let Some(at) = patched[i..].windows(from.len()).position(|w| w == from) {
        patched[i + at..i + at + from.len()].copy_from_slice(to);
        i += at + from.len();
        n += 1;
    }
    assert!(n > 0, "the import name is in the component");
    let module = node.dir.path().join("other-major.wasm");
    std::fs::write(&module, patched).unwrap();
    let (out, _) = add(&node, &conf_with(&node, "pre-add", "set-ip", &module), &pod, "major");
    let m = out.err()["msg"].as_str().unwrap().to_string();
    assert!(m.contains("built against wasmcni:hook@9.2.0") && m.contains("this plugin speaks wasmcni:hook@0.2.0 (and still runs @0.1.0)"), "{m}");
    node.assert_clean();
}

/// The plugin's threads named as tokio names its workers ("tokio-rt-worker", "tokio-runtime-worker" in
/// older releases; comm keeps 15 bytes), at this moment.
fn runtime_workers(pid: u32) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default();
    tasks.iter().filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("tokio-rt-worker") || c.starts_with("tokio-runtime-w"))).count()
}

#[test]
fn a_hook_that_prints_costs_one_runtime_thread_not_one_per_core() {
    let node = Node::new("10.57.0.0/24");
    // The test hook prints in pre-add (WASI stdout: wasmtime-wasi starts its runtime then); the post-add one
    // spins until its timeout, which leaves time to count the plugin's threads.
    let mut conf = node.conf("1.0.0");
    conf["hooks"] = json!([
        {"name": "talk", "module": test_hook(), "stages": ["pre-add"]},
        {"name": "spin", "module": test_hook(), "stages": ["post-add"], "timeout_ms": 1500, "on_error": "ignore",
         "config": {"behavior": "loop"}}
    ]);
    let warm = Ns::new("warm");
    node.cni("ADD", &conf, "warm", Some(&warm.path()), "eth0").ok(); // compiles once, outside the counted part
    let pod = Ns::new("pod");
    let adding = node.spawn_cni(&cni_env("ADD", "counted", Some(&pod.path()), "eth0"), &conf);
    let start = std::time::Instant::now();
    let mut most = 0;
    while start.elapsed() < std::time::Duration::from_millis(1200) {
        most = most.max(runtime_workers(adding.pid()));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    adding.wait().ok();
    assert!(most >= 1, "the printing hook ran without the runtime: this test counts nothing");
    assert_eq!(most, 1, "tokio worker threads in one ADD (this machine has {:?} cores)", std::thread::available_parallelism());
}
