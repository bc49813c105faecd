//! docs/errors.md's table of malformed input, row by row, through the same entry point a runtime uses: the
//! exact code, the shape of the message, and no Rust Debug output in it. (Rows that need a kernel, such as a
//! netns that is a plain file or a full pool, are kernel tests: failures.rs, lifecycle.rs, hooks.rs.)

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::ops::dispatch::handle;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn attachment() -> HashMap<String, String> {
    env(&[("CNI_CONTAINERID", "ctr1"), ("CNI_IFNAME", "eth0"), ("CNI_NETNS", "/var/run/netns/none-such"), ("CNI_PATH", "/usr/lib/cni")])
}

fn conf(tmp: &std::path::Path, extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.1.0", "name": "net", "type": "wasmcni", "stateDir": tmp.join("state"),
        "runDir": tmp.join("run"), "ipam": {"type": "builtin", "subnet": "10.0.0.0/24", "dataDir": tmp.join("ipam")}});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// What a message must never look like: Rust's Debug output of options, JSON values, structs or errors.
fn assert_no_debug(msg: &str) {
    for tell in crate::error::DEBUG_TELLS {
        assert!(!msg.contains(tell), "Debug output ({tell}) in: {msg}");
    }
}

#[test]
fn every_malformed_input_class_has_its_code_and_a_message_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let mut with_env = attachment();
    with_env.insert("CNI_ARGS".into(), "novalue".into());
    let mut relative_netns = attachment();
    relative_netns.insert("CNI_NETNS".into(), "pods/p1".into());
    let mut no_id = attachment();
    no_id.remove("CNI_CONTAINERID");
    let manifest = t.join("hooks.toml");
    std::fs::write(&manifest, "[[hooks]]\nname = \"h\"\nmodule = \"h.wasm\"\nstages = [\"pre-add\"]\ntimeout_ms = 0\n").unwrap();
    std::fs::write(t.join("h.wasm"), b"\0asm").unwrap();
    // (row, command, env, stdin, code, words the message holds)
    let rows: Vec<(&str, &str, HashMap<String, String>, String, u64, Vec<&str>)> = vec![
        ("empty stdin", "ADD", attachment(), String::new(), 7, vec!["no network configuration on stdin"]),
        ("not JSON", "ADD", attachment(), "{oops".into(), 6, vec!["failed to decode network config", "key must be a string"]),
        ("a conflist", "ADD", attachment(), json!({"name": "n", "plugins": []}).to_string(), 7, vec!["got a conflist"]),
        ("missing field", "ADD", attachment(), conf(t, json!({"type": null})).to_string(), 7, vec!["missing field `type`"]),
        ("wrong type", "ADD", attachment(), conf(t, json!({"mtu": "1450"})).to_string(), 7, vec!["field mtu: invalid type: string \"1450\", expected u32"]),
        ("bad CIDR", "ADD", attachment(), conf(t, json!({"ipam": {"type": "builtin", "subnet": "10.88.0.0/33"}})).to_string(), 7,
            vec!["field ipam.subnet: invalid IP address syntax (got \"10.88.0.0/33\")"]),
        ("bad range", "ADD", attachment(), conf(t, json!({"ipam": {"type": "builtin", "subnet": "10.0.0.0/24", "rangeStart": "10.1.0.5"}})).to_string(), 7,
            vec!["range 10.0.0.0/24: rangeStart 10.1.0.5 is outside the subnet"]),
        ("bad MTU", "ADD", attachment(), conf(t, json!({"mtu": 20})).to_string(), 7, vec!["mtu 20 is outside 68-65535"]),
        ("unknown cniVersion", "ADD", attachment(), conf(t, json!({"cniVersion": "7.0.0"})).to_string(), 1,
            vec!["incompatible CNI version 7.0.0", "1.1.0"]),
        ("unsupported reference option", "ADD", attachment(), conf(t, json!({"vlan": 100})).to_string(), 2, vec!["field vlan", "not support"]),
        ("bridge key on ptp", "ADD", attachment(), conf(t, json!({"hairpinMode": true})).to_string(), 7, vec!["\"hairpinMode\" applies to \"mode\": \"bridge\" only"]),
        ("unknown command", "FROB", attachment(), conf(t, json!({})).to_string(), 4, vec!["CNI_COMMAND", "unknown command \"FROB\""]),
        ("missing env", "ADD", no_id, conf(t, json!({})).to_string(), 4, vec!["CNI_CONTAINERID", "is required"]),
        ("bad CNI_ARGS", "ADD", with_env, conf(t, json!({})).to_string(), 4, vec!["CNI_ARGS", "\"novalue\" is not KEY=VALUE"]),
        ("relative CNI_NETNS", "ADD", relative_netns, conf(t, json!({})).to_string(), 4, vec!["CNI_NETNS", "is not an absolute path"]),
        ("missing netns", "ADD", attachment(), conf(t, json!({})).to_string(), 3, vec!["netns /var/run/netns/none-such does not exist"]),
        ("bad name", "ADD", attachment(), conf(t, json!({"name": ".."})).to_string(), 7, vec!["field name: the network name \"..\" must start with"]),
        ("bad manifest", "ADD", attachment(), conf(t, json!({"hooksManifest": manifest})).to_string(), 7,
            vec!["hooks manifest", "hooks.toml", "hook \"h\"", "field timeout_ms: 0 is outside 1-60000"]),
        ("missing IPAM plugin", "ADD", attachment(), conf(t, json!({"ipam": {"type": "built-in", "subnet": "10.0.0.0/24"}})).to_string(), 7,
            vec!["no IPAM plugin \"built-in\" in CNI_PATH (/usr/lib/cni)", "did you mean \"builtin\"?"]),
        ("GC without its list", "GC", env(&[]), conf(t, json!({})).to_string(), 7, vec!["GC needs \"cni.dev/valid-attachments\""]),
        ("CHECK of nothing", "CHECK", attachment(), conf(t, json!({})).to_string(), 105, vec!["no attachment record for container ctr1"]),
        ("CHECK before 0.4.0", "CHECK", attachment(), conf(t, json!({"cniVersion": "0.3.1"})).to_string(), 1, vec!["0.4.0 and later for CHECK"]),
    ];
    for (row, command, env, stdin, code, words) in rows {
        let out = handle(command, &env, stdin.as_bytes(), "wasmcni");
        let e = out.stdout.unwrap_or_else(|| panic!("{row}: succeeded"));
        assert_eq!(out.exit_code, 1, "{row}");
        assert_eq!(e["code"], code, "{row}: {e}");
        let msg = e["msg"].as_str().unwrap();
        for w in words {
            assert!(msg.contains(w), "{row}: {w:?} not in {msg:?}");
        }
        assert_no_debug(msg);
        assert!(e["cniVersion"].is_string(), "{row}");
    }
}

#[test]
fn an_unknown_key_is_a_warning_not_an_error() {
    // The answer of a successful STATUS is nothing on stdout; the warning goes to the log.
    let tmp = tempfile::tempdir().unwrap();
    let out = handle("STATUS", &env(&[]), conf(tmp.path(), json!({"ipMasqq": true})).to_string().as_bytes(), "wasmcni");
    assert_eq!(out.exit_code, 0, "{:?}", out.stdout);
    let w = crate::cni::fields::unknown_keys(&conf(tmp.path(), json!({"ipMasqq": true})), true);
    assert_eq!(w, vec!["unknown key ipMasqq is ignored (did you mean ipMasq?)"]);
}
