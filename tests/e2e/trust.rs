//! Native code (the hook cache) and hook files are used only when nobody but root could have written them.
//! Files "planted by a non-root user" are made by chown'ing them to nobody (uid 65534).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::hooks::test_hook;
use crate::support::*;

const NOBODY: u32 = 65534;

fn probe_hook() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/wasm32-wasip2/release/wasmcni_probe_hook.wasm");
    assert!(p.is_file(), "{} is missing: build it (scripts/test.sh does)", p.display());
    p
}

fn sha256(path: &Path) -> String {
    run("sha256sum", &[path.to_str().unwrap()]).split_whitespace().next().unwrap().to_string()
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid)).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn conf_with(node: &Node, hooks: Vec<Value>) -> Value {
    let mut conf = node.conf("1.0.0");
    conf["hooks"] = Value::Array(hooks);
    conf
}

fn set_ip(module: &Path, ip: &str) -> Value {
    json!({"name": "pick", "module": module, "stages": ["pre-add"], "config": {"behavior": "set-ip", "ip": ip}})
}

fn log(node: &Node) -> String {
    std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap_or_default()
}

/// The node's cache entry for `module` (one engine: one entry per module).
fn cache_entry(node: &Node, module: &Path) -> PathBuf {
    let sha = sha256(module);
    let dir = node.state_dir().join("hook-cache");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&sha))
        .unwrap_or_else(|| panic!("no cache entry for {} in {}", module.display(), dir.display()))
}

#[test]
fn a_cache_entry_swapped_by_another_user_is_never_mapped() {
    let node = Node::new("10.60.0.0/24");
    let pod = Ns::new("pod");
    let test = test_hook();
    // Fill the cache with both components, then put the probe's native code where the test hook's entry is,
    // owned by nobody: what a local user who could write there would do.
    let probe = json!({"name": "probe", "module": probe_hook(), "stages": ["pre-add"]});
    node.cni("ADD", &conf_with(&node, vec![probe.clone()]), "fill1", Some(&pod.path()), "eth0").ok();
    node.cni("DEL", &conf_with(&node, vec![probe]), "fill1", Some(&pod.path()), "eth0").succeeded();
    let conf = conf_with(&node, vec![set_ip(&test, "10.60.0.77")]);
    node.cni("ADD", &conf, "fill2", Some(&pod.path()), "eth0").ok();
    node.cni("DEL", &conf, "fill2", Some(&pod.path()), "eth0").succeeded();
    let victim = cache_entry(&node, &test);
    std::fs::copy(cache_entry(&node, &probe_hook()), &victim).unwrap();
    chown(&victim, NOBODY);
    std::fs::write(node.dir.path().join("wasmcni.log"), "").unwrap();

    let res = node.cni("ADD", &conf, "swapped", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(pod_ip(&res), "10.60.0.77", "the test hook ran, not the planted code");
    let log = log(&node);
    assert!(!log.contains("probe:"), "the planted native code ran: {log}");
    assert!(log.contains(&format!("not mapping hook cache entry {}", victim.display())) && log.contains("owned by uid 65534"), "{log}");
    // Compiled again and stored as root's own.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
    node.cni("DEL", &conf, "swapped", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn a_cache_dir_others_can_write_is_not_used() {
    let node = Node::new("10.61.0.0/24");
    let pod = Ns::new("pod");
    let cache = node.state_dir().join("hook-cache");
    std::fs::create_dir_all(&cache).unwrap();
    chmod(&cache, 0o777);
    let conf = conf_with(&node, vec![set_ip(&test_hook(), "10.61.0.77")]);
    let res = node.cni("ADD", &conf, "open", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(pod_ip(&res), "10.61.0.77");
    assert!(log(&node).contains("not using the hook cache") && log(&node).contains("writable by everyone"), "{}", log(&node));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0, "nothing may be written to an untrusted cache");
    node.cni("DEL", &conf, "open", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

#[test]
fn hook_modules_and_manifests_others_could_write_are_refused_as_root() {
    let node = Node::new("10.62.0.0/24");
    let pod = Ns::new("pod");
    let dir = node.dir.path().join("hooks");
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("hook.wasm");
    std::fs::copy(test_hook(), &module).unwrap();
    let refused = |conf: &Value, needle: &str| {
        let e = node.cni("ADD", conf, "refused", Some(&pod.path()), "eth0").err().clone();
        assert_eq!(e["code"], 104, "{e}");
        let msg = e["msg"].as_str().unwrap();
        assert!(msg.contains("refusing") && msg.contains(needle), "{msg}");
        node.assert_clean();
    };
    let conf = conf_with(&node, vec![set_ip(&module, "10.62.0.77")]);
    chown(&module, NOBODY);
    refused(&conf, "owned by uid 65534, not by root");
    chown(&module, 0);
    chmod(&module, 0o666);
    refused(&conf, "writable by everyone");
    chmod(&module, 0o644);
    chmod(&dir, 0o777);
    refused(&conf, "writable by everyone");
    chmod(&dir, 0o755);
    // A manifest its group can write.
    let manifest = dir.join("hooks.toml");
    std::fs::write(&manifest, "[[hooks]]\nname = \"pick\"\nmodule = \"hook.wasm\"\nstages = [\"pre-add\"]\n").unwrap();
    chmod(&manifest, 0o664);
    let mut by_manifest = node.conf("1.0.0");
    by_manifest["hooksManifest"] = json!(manifest);
    refused(&by_manifest, "the hooks manifest");
    chmod(&manifest, 0o644);
    node.cni("ADD", &by_manifest, "fine", Some(&pod.path()), "eth0").ok();
    node.cni("DEL", &by_manifest, "fine", Some(&pod.path()), "eth0").succeeded();

    // The development opt-out lets the same files run.
    chown(&module, NOBODY);
    let mut dev = conf.clone();
    dev["insecureHookFiles"] = json!(true);
    let res = node.cni("ADD", &dev, "dev", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(pod_ip(&res), "10.62.0.77");
    node.cni("DEL", &dev, "dev", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

/// `hook test` as a non-root user: its cache is its own, and a cache dir another user planted is refused.
#[test]
fn hook_test_never_trusts_a_cache_dir_someone_else_made() {
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o755);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    chown(&home, NOBODY);
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../example-hooks/static-ip/fixtures");
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/example-hooks/static-ip.wasm");
    assert!(module.is_file(), "{} is missing (scripts/test.sh builds the examples)", module.display());
    let fixture = fixtures.join("pinned-pod.toml");
    let hook_test = |extra: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", BIN, "hook", "test"])
            .arg(&fixture)
            .arg("--module")
            .arg(&module)
            .args(extra)
            .env_clear()
            .env("HOME", &home)
            .env("PATH", "/usr/bin:/bin");
        c.output().unwrap()
    };
    let out = hook_test(&[]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let own = home.join(".cache/wasmcni/hook-cache");
    assert_eq!(std::fs::metadata(&own).unwrap().permissions().mode() & 0o777, 0o700, "the user's cache is private");
    assert!(std::fs::read_dir(&own).unwrap().any(|e| e.unwrap().path().extension().is_some_and(|x| x == "cwasm")));
    // A directory another user (root here) made and others may write: used by nobody but its maker.
    let planted = tmp.path().join("planted");
    std::fs::create_dir_all(&planted).unwrap();
    chmod(&planted, 0o777);
    let out = hook_test(&["--cache-dir", planted.to_str().unwrap()]);
    assert!(out.status.success(), "the fixture still passes, compiled in memory");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not using the hook cache") && stderr.contains("writable by everyone"), "{stderr}");
    assert_eq!(std::fs::read_dir(&planted).unwrap().count(), 0);
}
