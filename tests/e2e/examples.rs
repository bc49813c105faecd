//! The example hooks as a platform team would deploy them: a manifest, the real components, a pod in the
//! kernel. Built by example-hooks/build.sh (scripts/test.sh runs it first).

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

fn example(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/example-hooks/{name}.wasm"));
    assert!(p.is_file(), "{} is missing: run example-hooks/build.sh (scripts/test.sh does)", p.display());
    p
}

#[test]
fn static_ip_and_egress_guard_on_a_real_pod() {
    let node = Node::new("10.92.0.0/24");
    let pod = Ns::new("pod");
    node.upstream.ip(&["addr", "add", "198.51.100.10/32", "dev", "lo"]);
    let manifest = node.dir.path().join("hooks.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"
[[hooks]]
name = "static-ip"
module = "{}"
stages = ["pre-add"]
[hooks.config]
pods = [{{ namespace = "default", name = "test", ip = "10.92.0.42" }}]

[[hooks]]
name = "egress-guard"
module = "{}"
stages = ["post-add"]
[hooks.config]
blocked = ["203.0.113.0/24"]
"#,
            example("static-ip").display(),
            example("egress-guard").display()
        ),
    )
    .unwrap();
    let mut conf = node.conf("1.0.0");
    conf["hooksManifest"] = json!(manifest);
    let res = node.cni("ADD", &conf, "examples", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(pod_ip(&res), "10.92.0.42", "static-ip pins default/test");
    assert!(pod.ip(&["-o", "addr", "show", "dev", "eth0"]).contains("inet 10.92.0.42/24"));

    let listen = |ip: &str| node.upstream.within(|| TcpListener::bind((ip, 0)).unwrap());
    let (blocked, allowed) = (listen(UPSTREAM_IP), listen("198.51.100.10"));
    let connect = |addr: SocketAddr| pod.within(|| TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok());
    assert!(connect(allowed.local_addr().unwrap()), "traffic outside the blocked range must pass");
    assert!(!connect(blocked.local_addr().unwrap()), "egress-guard must drop traffic to 203.0.113.0/24");

    // DNS is allowed before the drops, even to a blocked range.
    let dns = node.upstream.within(|| UdpSocket::bind((UPSTREAM_IP, 53)).unwrap());
    dns.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    pod.within(|| UdpSocket::bind("0.0.0.0:0").unwrap().send_to(b"query", (UPSTREAM_IP, 53)).unwrap());
    let mut buf = [0u8; 16];
    assert_eq!(dns.recv_from(&mut buf).expect("the DNS datagram arrives").0, 5);

    node.cni("DEL", &conf, "examples", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn a_wrong_fixture_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("wrong.toml");
    std::fs::write(
        &fixture,
        "description = \"expects port 8443\"\nstage = \"post-add\"\n[config]\nports = [443]\n[expect]\nrules = [\n\
         { direction = \"ingress\", protocol = \"tcp\", ports = 8443, action = \"accept\" },\n\
         { direction = \"ingress\", action = \"drop\" },\n]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["hook", "test", fixture.to_str().unwrap(), "--module", example("ingress-allowlist").to_str().unwrap()])
        .args(["--cache-dir", dir.path().join("cache").to_str().unwrap()])
        .env_remove("CNI_COMMAND")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL") && stdout.contains("0 passed, 1 failed"), "{stdout}");
    assert!(stdout.contains("-    \"ports\": \"8443\",") && stdout.contains("+    \"ports\": \"443\","), "{stdout}");
}

#[test]
fn every_example_passes_its_fixtures_through_the_test_helper() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../example-hooks");
    let mut ran = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if !dir.join("fixtures").is_dir() {
            continue;
        }
        let n = wasmcni::hooks::fixture::test_component(&example(&name), &dir.join("fixtures")).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert!(n > 0, "{name} has no fixtures");
        ran += 1;
    }
    assert_eq!(ran, 7, "seven example hooks (Rust, C, Python, JavaScript), each with fixtures");
}

#[test]
fn one_pods_accept_does_not_bypass_another_pods_ingress_rules() {
    // Both hooks apply to both pods. a's egress-guard accepts DNS; b's ingress-allowlist admits only port 80.
    // a -> b:53 must be dropped by b's rules whichever pod was added first.
    let node = Node::new("10.95.0.0/24");
    let (a, b) = (Ns::new("pa"), Ns::new("pb"));
    let hooks = json!([
        {"name": "egress-guard", "module": example("egress-guard"), "stages": ["post-add"]},
        {"name": "ingress-allowlist", "module": example("ingress-allowlist"), "stages": ["post-add"], "config": {"ports": [80]}},
    ]);
    let mut conf = node.conf("1.0.0");
    conf["hooks"] = hooks;
    node.cni("ADD", &conf, "a", Some(&a.path()), "eth0").ok();
    let ip_b = pod_ip(node.cni("ADD", &conf, "b", Some(&b.path()), "eth0").ok());
    let listen = |port: u16| b.within(|| TcpListener::bind((ip_b.as_str(), port)).unwrap());
    let (web, dns) = (listen(80), listen(53));
    let connect = |l: &TcpListener| {
        let addr = l.local_addr().unwrap();
        a.within(|| TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok())
    };
    assert!(connect(&web), "port 80 is allowed into b");
    assert!(!connect(&dns), "a's DNS accept must not let traffic past b's ingress drop");
    for (id, pod) in [("a", &a), ("b", &b)] {
        node.cni("DEL", &conf, id, Some(&pod.path()), "eth0").succeeded();
    }
    node.assert_clean();
}

#[test]
fn hook_run_prints_a_stage_answer_with_the_stage_and_pod_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    // The input's own stage is del: --stage overrides it, --namespace/--name give the pod.
    let input = dir.path().join("input.toml");
    std::fs::write(&input, "stage = \"del\"\n[network]\nsubnet = \"10.20.0.0/24\"\n").unwrap();
    let out = Command::new(BIN)
        .args(["hook", "run", "--module", example("static-ip").to_str().unwrap(), "--stage", "pre-add"])
        .args(["--input", input.to_str().unwrap(), "--namespace", "default", "--name", "db"])
        .args(["--config", r#"{"pods": [{"namespace": "default", "name": "db", "ip": "10.20.0.50"}]}"#])
        .args(["--cache-dir", dir.path().join("cache").to_str().unwrap()])
        .env_remove("CNI_COMMAND")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["ips"], json!(["10.20.0.50"]), "{answer}");
}

#[test]
fn pre_add_hooks_run_in_order_each_on_the_previous_plan_and_the_plan_reaches_the_kernel() {
    let node = Node::new("10.93.0.0/24");
    let pod = Ns::new("pod");
    // Listed second but ordered first: mtu-clamp (C) sets the MTU, then static-ip (Rust) pins the address
    // on the plan it got, which must still carry the MTU.
    let mut conf = node.conf("1.0.0");
    conf["hooks"] = json!([
        {"name": "static-ip", "module": example("static-ip"), "stages": ["pre-add"], "order": 2,
         "config": {"pods": [{"namespace": "default", "name": "test", "ip": "10.93.0.42"}]}},
        {"name": "mtu-clamp", "module": example("mtu-clamp-c"), "stages": ["pre-add"], "order": 1,
         "config": {"namespaces": ["default"], "mtu": 1300}},
    ]);
    let res = node.cni("ADD", &conf, "ordered", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(pod_ip(&res), "10.93.0.42");
    assert!(pod.ip(&["link", "show", "eth0"]).contains("mtu 1300"), "{}", pod.ip(&["link", "show", "eth0"]));
    let host = res["interfaces"][0]["name"].as_str().unwrap();
    assert!(node.ns.ip(&["link", "show", host]).contains("mtu 1300"));
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    let (clamp, pin) = (log.find("hook mtu-clamp changed the plan").unwrap(), log.find("hook static-ip changed the plan").unwrap());
    assert!(clamp < pin, "mtu-clamp (order 1) must run before static-ip (order 2): {log}");
    node.cni("DEL", &conf, "ordered", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}
