//! Delegated IPAM: the reference host-local and static plugins from Debian's containernetworking-plugins,
//! exec'd from CNI_PATH as the spec's delegation protocol says.

use serde_json::json;

use crate::support::*;

fn delegated(node: &Node, ipam: serde_json::Value) -> serde_json::Value {
    let mut conf = node.conf("1.0.0");
    conf["ipam"] = ipam;
    conf
}

fn host_local_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("10.")).collect())
        .unwrap_or_default()
}

#[test]
fn host_local_reserves_and_del_releases() {
    assert!(std::path::Path::new("/usr/lib/cni/host-local").is_file(), "install containernetworking-plugins");
    let node = Node::new("10.96.0.0/24");
    let pod = Ns::new("pod");
    let data = node.dir.path().join("host-local");
    let conf = delegated(&node, json!({"type": "host-local", "subnet": "10.96.0.0/24", "dataDir": data, "routes": [{"dst": "192.168.0.0/16"}]}));
    let res = node.cni("ADD", &conf, "hl", Some(&pod.path()), "eth0").ok().clone();
    let ip = pod_ip(&res);
    assert_eq!(res["ips"][0]["gateway"], "10.96.0.1");
    assert_eq!(host_local_files(&data.join(&node.network)), vec![ip.clone()], "host-local holds the address");
    assert!(pod.ip(&["route"]).contains("192.168.0.0/16 via 10.96.0.1"), "the plugin's routes reach the pod");
    assert!(pod.ping("10.96.0.1"));
    assert!(node.upstream_sees(&pod).ip().to_string() == NODE_UPLINK_IP);
    node.cni("DEL", &conf, "hl", Some(&pod.path()), "eth0").succeeded();
    assert!(host_local_files(&data.join(&node.network)).is_empty(), "DEL must call the plugin's DEL");
    node.assert_clean();
}

#[test]
fn a_failed_add_calls_the_plugins_del() {
    let node = Node::new("10.97.0.0/24");
    let pod = Ns::new("pod");
    let data = node.dir.path().join("host-local");
    let conf = delegated(&node, json!({"type": "host-local", "subnet": "10.97.0.0/24", "dataDir": data}));
    node.ns.ip(&["route", "add", "blackhole", "10.97.0.2/32"]);
    let err = node.cni("ADD", &conf, "hlfail", Some(&pod.path()), "eth0").err().clone();
    assert_eq!(err["code"], 100, "{err}");
    assert!(host_local_files(&data.join(&node.network)).is_empty(), "the reservation must be released");
    node.assert_clean();
}

#[test]
fn static_ipam_and_plugin_errors_pass_through() {
    let node = Node::new("10.98.0.0/24");
    let pod = Ns::new("pod");
    let conf = delegated(&node, json!({"type": "static", "addresses": [{"address": "10.98.0.77/24", "gateway": "10.98.0.1"}]}));
    assert_eq!(pod_ip(node.cni("ADD", &conf, "st", Some(&pod.path()), "eth0").ok()), "10.98.0.77");
    assert!(pod.ping("10.98.0.1"));
    node.cni("DEL", &conf, "st", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();

    let missing = delegated(&node, json!({"type": "no-such-ipam"}));
    let err = node.cni("ADD", &missing, "st2", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("no IPAM plugin \"no-such-ipam\" in CNI_PATH"), "{err}");
    assert_eq!(err["code"], 7, "a missing IPAM plugin is a config error");
    let bad = delegated(&node, json!({"type": "static", "addresses": [{"address": "not-an-ip"}]}));
    let err = node.cni("ADD", &bad, "st3", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("IPAM plugin static failed"), "{err}");
    node.assert_clean();
}

#[test]
fn check_is_forwarded_to_the_ipam_plugin() {
    let node = Node::new("10.99.0.0/24");
    let pod = Ns::new("pod");
    let data = node.dir.path().join("host-local");
    let mut conf = delegated(&node, json!({"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": data}));
    conf["cniVersion"] = json!("1.0.0");
    let res = node.cni("ADD", &conf, "hlchk", Some(&pod.path()), "eth0").ok().clone();
    let mut check = conf.clone();
    check["prevResult"] = res.clone();
    node.cni("CHECK", &check, "hlchk", Some(&pod.path()), "eth0").succeeded();
    // Only host-local knows its reservation: a failing CHECK proves it was asked.
    std::fs::remove_file(data.join(&node.network).join(pod_ip(&res))).unwrap();
    let err = node.cni("CHECK", &check, "hlchk", Some(&pod.path()), "eth0").err().clone();
    assert!(err["msg"].as_str().unwrap().contains("IPAM plugin host-local failed"), "{err}");
    node.cni("DEL", &conf, "hlchk", Some(&pod.path()), "eth0").succeeded();
    node.assert_clean();
}

/// An IPAM plugin that speaks 1.1 (Debian's reference plugins stop at 1.0.0): it logs every command, its
/// STATUS fails with 51 while a FULL file exists, and its DEL of container "stuck" always fails.
fn fake_ipam_1_1(dir: &std::path::Path) -> std::path::PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/bin/sh
d={d}
echo "$CNI_COMMAND" >> $d/calls
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"1.1.0","supportedVersions":["1.0.0","1.1.0"]}}' ;;
ADD) case "$CNI_CONTAINERID" in stuck) ip=10.91.0.5 ;; *) ip=10.91.0.6 ;; esac
    echo '{{"cniVersion":"1.1.0","ips":[{{"address":"'$ip'/24","gateway":"10.91.0.1"}}]}}' ;;
DEL) if [ "$CNI_CONTAINERID" = stuck ]; then echo '{{"cniVersion":"1.1.0","code":11,"msg":"store busy"}}'; exit 1; fi ;;
STATUS) if [ -e $d/FULL ]; then echo '{{"cniVersion":"1.1.0","code":51,"msg":"fake pool full"}}'; exit 1; fi ;;
GC) cat > $d/gc-stdin ;;
esac
"#,
        d = dir.display()
    );
    let path = bin.join("fake-ipam");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

#[test]
fn status_and_gc_are_forwarded_to_an_ipam_plugin_that_speaks_1_1_and_skipped_for_older_ones() {
    let node = Node::new("10.91.0.0/24");
    let bin = fake_ipam_1_1(node.dir.path());
    let mut conf = delegated(&node, json!({"type": "fake-ipam"}));
    conf["cniVersion"] = json!("1.1.0");
    let run = |command: &str, conf: &serde_json::Value| {
        let mut env = cni_env(command, "", None, "");
        env.insert("CNI_PATH", format!("{}:/usr/lib/cni", bin.display()));
        node.spawn_cni(&env, conf).wait()
    };
    let calls = || std::fs::read_to_string(node.dir.path().join("calls")).unwrap_or_default();
    run("STATUS", &conf).succeeded();
    assert!(calls().contains("STATUS"), "STATUS was not forwarded: {}", calls());
    std::fs::write(node.dir.path().join("FULL"), b"").unwrap();
    let err = run("STATUS", &conf).err().clone();
    assert_eq!(err["code"], 51, "the plugin's code is passed on: {err}");
    assert!(err["msg"].as_str().unwrap().contains("fake pool full"), "{err}");

    conf["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    run("GC", &conf).succeeded();
    let gc_in = std::fs::read_to_string(node.dir.path().join("gc-stdin")).expect("GC forwarded");
    assert!(gc_in.contains("\"keep\""), "the plugin gets the valid attachments: {gc_in}");

    // Debian's host-local stops at 1.0.0: STATUS and GC are not forwarded (it would fail them as unknown).
    let mut hl = delegated(&node, json!({"type": "host-local", "subnet": "10.91.0.0/24", "dataDir": node.dir.path().join("hl")}));
    hl["cniVersion"] = json!("1.1.0");
    run("STATUS", &hl).succeeded();
    hl["cni.dev/valid-attachments"] = json!([]);
    run("GC", &hl).succeeded();
}

#[test]
fn gc_keeps_going_past_a_failing_step_and_keeps_that_record_for_a_retry() {
    let node = Node::new("10.91.0.0/24");
    let bin = fake_ipam_1_1(node.dir.path());
    let mut conf = delegated(&node, json!({"type": "fake-ipam"}));
    conf["cniVersion"] = json!("1.1.0");
    let env = |command: &str, id: &str, pod: Option<&Ns>| {
        let mut env = cni_env(command, id, pod.map(|p| p.path()).as_deref(), "eth0");
        env.insert("CNI_PATH", format!("{}:/usr/lib/cni", bin.display()));
        env
    };
    let (stuck, fine) = (Ns::new("stuck"), Ns::new("fine"));
    node.spawn_cni(&env("ADD", "stuck", Some(&stuck)), &conf).wait().ok();
    node.spawn_cni(&env("ADD", "fine", Some(&fine)), &conf).wait().ok();
    conf["cni.dev/valid-attachments"] = json!([]);
    let err = node.spawn_cni(&env("GC", "", None), &conf).wait().err().clone();
    assert_eq!(err["code"], 11, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("store busy"), "{err}");
    // The failing attachment did not stop the other one: everything of "fine" is gone.
    assert!(!fine.links().contains("eth0"));
    let records: Vec<String> = node.records().iter().map(|p| p.display().to_string()).collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(records[0].contains("stuck"), "the failed attachment keeps its record for the retry: {records:?}");
    assert!(node.host_veths().is_empty(), "both veths go (only the IPAM step failed)");
}

/// Debian's host-local speaks up to 1.0.0: a 1.1.0 network calls it in 1.0.0 and converts its result.
#[test]
fn a_1_1_network_speaks_1_0_to_host_local() {
    let node = Node::new("10.99.0.0/24");
    let pod = Ns::new("pod");
    let data = node.dir.path().join("host-local");
    let mut conf = delegated(&node, json!({"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": data}));
    conf["cniVersion"] = json!("1.1.0");
    let res = node.cni("ADD", &conf, "hl11", Some(&pod.path()), "eth0").ok().clone();
    assert_eq!(res["cniVersion"], "1.1.0", "the runtime gets the version it asked for");
    assert!(res["interfaces"][0].get("mtu").is_some(), "in 1.1.0's shape");
    assert!(pod.ping("10.99.0.1"));
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    assert!(log.contains("IPAM plugin host-local speaks up to 1.0.0; calling it in 1.0.0"), "{log}");
    node.cni("CHECK", &conf, "hl11", Some(&pod.path()), "eth0").succeeded();
    node.cni("DEL", &conf, "hl11", Some(&pod.path()), "eth0").succeeded();
    assert!(host_local_files(&data.join(&node.network)).is_empty());
    node.assert_clean();
}

#[test]
fn a_misspelled_ipam_type_is_a_config_error_with_a_suggestion() {
    let node = Node::new("10.100.0.0/24");
    let pod = Ns::new("pod");
    let conf = delegated(&node, json!({"type": "built-in", "subnet": "10.100.0.0/24"}));
    let e = node.cni("ADD", &conf, "typo", Some(&pod.path()), "eth0").err().clone();
    assert_eq!(e["code"], 7, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("no IPAM plugin \"built-in\" in CNI_PATH (/usr/lib/cni)") && msg.contains("did you mean \"builtin\"?"), "{msg}");
    assert!(!msg.contains("Some(") && !msg.contains("Invocation"), "no Debug output: {msg}");
    node.assert_clean();
}

#[test]
fn a_failed_ipam_add_says_it_reserved_nothing_and_no_rollback_failed() {
    let node = Node::new("10.101.0.0/24");
    let pod = Ns::new("pod");
    // host-local refuses a range outside its subnet: its ADD fails before it reserves.
    let conf = delegated(&node, json!({"type": "host-local", "subnet": "10.101.0.0/24", "rangeStart": "10.200.0.5",
        "dataDir": node.dir.path().join("host-local")}));
    let e = node.cni("ADD", &conf, "hlbad", Some(&pod.path()), "eth0").err().clone();
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("IPAM plugin host-local failed") && msg.contains("it reserved nothing"), "{msg}");
    assert!(!msg.contains("rollback also failed") && e.get("details").is_none(), "{e}");
    node.assert_clean();
}

#[test]
fn an_ipam_plugin_failing_without_an_error_object_is_999_with_its_exit_status_and_stderr() {
    let node = Node::new("10.102.0.0/24");
    let pod = Ns::new("pod");
    let bin = node.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = "#!/bin/sh\ncase \"$CNI_COMMAND\" in\nVERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"1.0.0\"]}' ;;\n*) echo 'disk on fire' >&2; exit 3 ;;\nesac\n";
    let path = bin.join("mute-ipam");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = delegated(&node, json!({"type": "mute-ipam"}));
    let mut env = cni_env("ADD", "mute", Some(&pod.path()), "eth0");
    env.insert("CNI_PATH", bin.display().to_string());
    let e = node.spawn_cni(&env, &conf).wait().err().clone();
    assert_eq!(e["code"], 999, "{e}");
    let msg = e["msg"].as_str().unwrap();
    assert!(msg.contains("IPAM plugin mute-ipam failed") && msg.contains("it printed no CNI error object"), "{msg}");
    assert!(msg.contains("exit status: 3") && msg.contains("disk on fire"), "{msg}");
    node.assert_clean();
}
