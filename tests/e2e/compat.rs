//! Components built against contract 0.1.0 (the example hooks as they were released, frozen in
//! tests/compat/v0.1) load and run unchanged on a host that speaks 0.2.0.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

fn frozen(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/compat/v0.1/{name}.wasm"))
}

#[test]
fn hooks_built_against_0_1_still_load_and_run() {
    let node = Node::new("10.33.0.0/24");
    let pod = Ns::new("pod");
    let mut conf = node.conf("1.1.0");
    conf["hooks"] = json!([
        {"name": "clamp", "module": frozen("mtu-clamp-c"), "stages": ["pre-add"],
         "config": {"namespaces": ["default"], "mtu": 1300}},
        {"name": "guard", "module": frozen("egress-guard"), "stages": ["post-add"],
         "config": {"blocked": ["203.0.113.0/24"]}},
    ]);
    let res = node.cni("ADD", &conf, "old", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(res["interfaces"][1]["mtu"], 1300, "the C hook (0.1.0) clamped the MTU");
    assert!(pod.ip(&["link", "show", "eth0"]).contains("mtu 1300"));
    let blocked = node.upstream.within(|| TcpListener::bind((UPSTREAM_IP, 0)).unwrap());
    let addr: SocketAddr = blocked.local_addr().unwrap();
    assert!(!pod.within(|| TcpStream::connect_timeout(&addr, Duration::from_millis(700)).is_ok()), "the Rust hook (0.1.0) drops it");
    // STATUS loads them too: a 0.1.0 hook has no validate-config, so its config passes.
    node.cni("STATUS", &conf, "", None, "").succeeded();
    node.cni("DEL", &conf, "old", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
    let check = std::process::Command::new(BIN)
        .args(["hook", "check"])
        .arg({
            let m = node.dir.path().join("hooks.toml");
            std::fs::write(&m, format!("[[hooks]]\nname = \"guard\"\nmodule = \"{}\"\nstages = [\"post-add\"]\n", frozen("egress-guard").display())).unwrap();
            m
        })
        .args(["--state-dir", node.state_dir().to_str().unwrap()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && out.contains("hook guard: contract 0.1.0"), "{out}{}", String::from_utf8_lossy(&check.stderr));
}
