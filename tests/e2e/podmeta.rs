//! Hooks that decide by the pod's labels, from the files the node agent keeps (written by hand here, as the
//! agent would), and hooks whose config is refused before any pod.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/example-hooks/{name}.wasm"))
}

fn conf(node: &Node, wait_ms: u64, on_error: &str) -> Value {
    let mut c = node.conf("1.1.0");
    c["podMetadataDir"] = json!(node.dir.path().join("pods"));
    c["hooks"] = json!([{"name": "by-label", "module": example("egress-by-label"), "stages": ["post-add"],
        "needs": ["pod-metadata"], "pod_metadata_wait_ms": wait_ms, "on_error": on_error,
        "config": {"allow": ["10.0.0.0/8"]}}]);
    c
}

/// The agent's file for default/<name>.
fn write_meta(node: &Node, name: &str, labels: Value) {
    let dir = node.dir.path().join("pods/default");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, json!({"uid": "", "labels": labels, "annotations": {}, "serviceAccount": "default"}).to_string()).unwrap();
    std::fs::rename(tmp, dir.join(format!("{name}.json"))).unwrap();
}

fn add(node: &Node, conf: &Value, pod: &Ns, id: &str, name: &str) -> Reply {
    let mut env = cni_env("ADD", id, Some(&pod.path()), "eth0");
    env.insert("CNI_ARGS", format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}"));
    node.spawn_cni(&env, conf).wait()
}

fn del(node: &Node, conf: &Value, pod: &Ns, id: &str, name: &str) {
    let mut env = cni_env("DEL", id, Some(&pod.path()), "eth0");
    env.insert("CNI_ARGS", format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={name}"));
    node.spawn_cni(&env, conf).wait().succeeded();
}

#[test]
fn egress_follows_the_pods_label() {
    let node = Node::new("10.34.0.0/24");
    let (allowed, denied) = (Ns::new("allowed"), Ns::new("denied"));
    let conf = conf(&node, 1000, "fail");
    write_meta(&node, "web-allowed", json!({"egress": "allowed"}));
    write_meta(&node, "web-denied", json!({"app": "web"}));
    add(&node, &conf, &allowed, "a", "web-allowed").ok();
    add(&node, &conf, &denied, "d", "web-denied").ok();
    let up = node.upstream.within(|| TcpListener::bind((UPSTREAM_IP, 0)).unwrap());
    let addr: SocketAddr = up.local_addr().unwrap();
    let reaches = |pod: &Ns| pod.within(|| TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok());
    assert!(reaches(&allowed), "egress=allowed reaches upstream");
    assert!(!reaches(&denied), "an unlabelled pod does not");
    del(&node, &conf, &allowed, "a", "web-allowed");
    del(&node, &conf, &denied, "d", "web-denied");
    node.assert_clean();
}

#[test]
fn add_waits_a_moment_for_the_agent_then_fails_or_goes_on_per_on_error() {
    let node = Node::new("10.35.0.0/24");
    let pod = Ns::new("pod");
    // Seen by the agent 150 ms after the sandbox started: ADD waits for it.
    let late = {
        let dir = node.dir.path().to_path_buf();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let d = dir.join("pods/default");
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("late.json"), json!({"labels": {"egress": "allowed"}}).to_string()).unwrap();
        })
    };
    let t = Instant::now();
    add(&node, &conf(&node, 2000, "fail"), &pod, "late", "late").ok();
    assert!(t.elapsed() >= Duration::from_millis(150), "ADD waited for the metadata");
    late.join().unwrap();
    del(&node, &conf(&node, 2000, "fail"), &pod, "late", "late");

    // Never seen: after the wait the hook fails ADD, or is skipped with on_error = "ignore".
    let e = add(&node, &conf(&node, 100, "fail"), &pod, "never", "never").err().clone();
    assert_eq!(e["code"], 104, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("hook by-label failed in post-add: could not run: it needs the pod's labels") && msg.contains("within 100 ms"), "{msg}");
    node.assert_clean();
    add(&node, &conf(&node, 100, "ignore"), &pod, "never", "never").ok();
    del(&node, &conf(&node, 100, "ignore"), &pod, "never", "never");
    node.assert_clean();
}

#[test]
fn a_config_the_hook_refuses_is_caught_by_status_and_hook_check_before_any_pod() {
    let node = Node::new("10.36.0.0/24");
    let mut c = conf(&node, 100, "fail");
    c["hooks"][0]["config"] = json!({"allow": ["10.0.0.0/33"]});
    let e = node.cni("STATUS", &c, "", None, "").err().clone();
    assert_eq!(e["code"], 50, "{e}");
    assert!(e["msg"].as_str().unwrap().contains("hook by-label: its config is refused: returned an error: field allow[0]"), "{e}");
    let manifest = node.dir.path().join("hooks.toml");
    std::fs::write(
        &manifest,
        format!(
            "[[hooks]]\nname = \"by-label\"\nmodule = \"{}\"\nstages = [\"post-add\"]\n[hooks.config]\nallow = [\"ten\"]\n\n\
             [[hooks]]\nname = \"fine\"\nmodule = \"{}\"\nstages = [\"post-add\"]\n",
            example("egress-by-label").display(),
            example("egress-guard").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(BIN).args(["hook", "check"]).arg(&manifest).args(["--state-dir", node.state_dir().to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok    hook fine: contract 0.2.0"), "{stdout}");
    assert!(stderr.lines().last().unwrap().contains("hook by-label: its config is refused: returned an error: field allow[0]"), "{stderr}");
}
