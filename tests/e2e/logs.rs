//! The plugin's log as people and collectors read it: RFC 3339 times, values rather than Rust Debug, and
//! `logFormat: json` as one object per line carrying the command and the attachment.

use serde_json::{json, Value};

use crate::support::*;

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 24
        && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':' && b[19] == b'.' && b[23] == b'Z'
        && s.chars().enumerate().all(|(i, c)| [4, 7, 10, 13, 16, 19, 23].contains(&i) || c.is_ascii_digit())
}

#[test]
fn text_log_lines_start_with_rfc3339_times_and_show_values() {
    let node = Node::new("10.71.0.0/24");
    let pod = Ns::new("pod");
    node.add(&pod, "logs-text").ok();
    node.del(&pod, "logs-text").succeeded();
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    assert!(log.lines().count() >= 4, "{log}");
    for line in log.lines() {
        assert!(is_rfc3339_utc(&line[..24.min(line.len())]), "not an RFC 3339 time: {line}");
        assert!(line[24..].starts_with(" wasmcni["), "{line}");
        // The shared Debug tells, a bare `None` (an unset option printed as is) and the commands' Debug names.
        for dump in wasmcni::error::DEBUG_TELLS.iter().chain(&["None", "Add ", "Del "]) {
            assert!(!line.contains(dump), "Rust Debug output {dump:?} in {line}");
        }
    }
    let netns = pod.path().display().to_string();
    assert!(log.contains(&format!("info: ADD container=logs-text ifname=eth0 netns={netns}")), "{log}");
    assert!(log.contains("info: DEL container=logs-text ifname=eth0"), "{log}");
    node.assert_clean();
}

#[test]
fn json_log_is_one_object_per_line_with_the_attachment() {
    let node = Node::new("10.72.0.0/24");
    let pod = Ns::new("pod");
    let mut conf = node.conf("1.1.0");
    conf["logFormat"] = json!("json");
    node.cni("ADD", &conf, "logs-json", Some(&pod.path()), "eth0").ok();
    node.cni("DEL", &conf, "logs-json", Some(&pod.path()), "eth0").succeeded();
    let log = std::fs::read_to_string(node.dir.path().join("wasmcni.log")).unwrap();
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    assert!(lines.len() >= 4, "{log}");
    for l in &lines {
        assert!(is_rfc3339_utc(l["time"].as_str().unwrap()), "{l}");
        assert!(["error", "warn", "info", "debug"].contains(&l["level"].as_str().unwrap()), "{l}");
        assert!(l["pid"].is_u64() && l["elapsedMs"].is_number() && l["msg"].is_string(), "{l}");
    }
    let commands: Vec<&str> = lines.iter().filter_map(|l| l["command"].as_str()).collect();
    assert!(commands.contains(&"ADD") && commands.contains(&"DEL"), "{log}");
    let attached = lines.iter().filter(|l| l["containerID"] == "logs-json" && l["ifname"] == "eth0" && l["network"] == node.network);
    assert!(attached.count() >= 2, "{log}");

    // A format it does not know is a config error naming the field.
    conf["logFormat"] = json!("yaml");
    let err = node.cni("ADD", &conf, "logs-bad", Some(&pod.path()), "eth0").err().clone();
    assert_eq!(err["code"], 7, "{err}");
    assert!(err["msg"].as_str().unwrap().contains("field logFormat: \"yaml\" is not one of text, json"), "{err}");
    node.assert_clean();
}
