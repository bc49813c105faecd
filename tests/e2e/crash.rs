//! kill -9 at every step of ADD (the binary's test-only crash points), then DEL as a runtime retries, or GC
//! with nothing valid: nothing of the attachment is left, and a fresh ADD of the same id then works.

use serde_json::{json, Value};

use crate::hooks::test_hook;
use crate::support::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    Del,
    Gc,
}

fn conf(node: &Node, bridge: bool, hooks: bool) -> Value {
    let mut c = node.conf("1.1.0");
    if bridge {
        c["mode"] = json!("bridge");
        c["bridge"] = json!("wckill0");
        c["isDefaultGateway"] = json!(true);
    }
    if hooks {
        c["hooks"] = json!([
            {"name": "pick", "module": test_hook(), "stages": ["pre-add"], "config": {}},
            {"name": "guard", "module": test_hook(), "stages": ["post-add", "del"],
             "config": {"behavior": "drop-port", "peer": format!("{UPSTREAM_IP}/32"), "port": 9}},
        ]);
    }
    c
}

/// Everything of any attachment on the node, as lines (empty when clean). The bridge and its gateway are
/// the network's and stay, like the reference plugin's.
fn leftovers(node: &Node, pod: &Ns) -> Vec<String> {
    let mut left: Vec<String> = node.host_veths();
    left.extend(node.reserved_ips().into_iter().map(|f| format!("reservation file {f}")));
    left.extend(node.records().into_iter().map(|p| format!("record file {}", p.display())));
    left.extend(node.attachment_rules());
    left.extend(pod.links().lines().filter(|l| !l.contains(" lo:")).map(|l| format!("pod link {l}")));
    left
}

fn kill_after_every_step(bridge: bool, hooks: bool, subnet: &str) {
    let node = Node::new(subnet);
    let pod = Ns::new("kpod");
    let conf = conf(&node, bridge, hooks);
    let mut summary = Vec::new();
    for then in [Then::Del, Then::Gc] {
        for step in wasmcni::ops::crash::ADD_STEPS {
            let id = format!("k-{}", step.replace('-', ""));
            let mut env = cni_env("ADD", &id, Some(&pod.path()), "eth0");
            env.insert("WASMCNI_CRASH_AFTER", step.to_string());
            let killed = node.spawn_cni(&env, &conf).wait();
            assert_eq!(killed.code, -1, "ADD was to be killed after {step}: {:?}\n{}", killed.json, killed.stderr);
            assert!(killed.json.is_none(), "a killed ADD prints nothing");
            match then {
                Then::Del => node.cni("DEL", &conf, &id, Some(&pod.path()), "eth0").succeeded(),
                Then::Gc => {
                    let mut gc = conf.clone();
                    gc["cni.dev/valid-attachments"] = json!([]);
                    node.cni("GC", &gc, "", None, "").succeeded();
                }
            }
            let left = leftovers(&node, &pod);
            assert!(left.is_empty(), "killed after {step}, then {then:?} (bridge {bridge}, hooks {hooks}): left {left:#?}");
            // The same attachment can be made again, and works.
            let res = node.cni("ADD", &conf, &id, Some(&pod.path()), "eth0").ok().clone();
            let gw = res["ips"][0]["gateway"].as_str().unwrap().to_string();
            assert!(pod.ping(&gw), "after {step}: the fresh pod reaches its gateway");
            node.cni("DEL", &conf, &id, Some(&pod.path()), "eth0").succeeded();
            assert!(leftovers(&node, &pod).is_empty(), "after {step}: the fresh ADD's DEL left {:?}", leftovers(&node, &pod));
            summary.push(format!("{then:?}/{step}"));
        }
    }
    assert_eq!(summary.len(), 2 * wasmcni::ops::crash::ADD_STEPS.len());
}

#[test]
fn kill_at_every_add_step_ptp() {
    kill_after_every_step(false, false, "10.40.0.0/24");
}

#[test]
fn kill_at_every_add_step_ptp_with_hooks() {
    kill_after_every_step(false, true, "10.41.0.0/24");
}

#[test]
fn kill_at_every_add_step_bridge() {
    kill_after_every_step(true, false, "10.42.0.0/24");
}

#[test]
fn kill_at_every_add_step_bridge_with_hooks() {
    kill_after_every_step(true, true, "10.43.0.0/24");
}
