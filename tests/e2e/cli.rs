//! The debugging path: the CLI runs the same code as a runtime call, and says what is wrong.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::support::*;

fn cli(node: &Node, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", node.ns.path().display()))
        .arg(BIN)
        .args(args)
        .env_remove("CNI_COMMAND")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn exec_with_a_conflist_and_the_classic_positional_form() {
    let node = Node::new("10.76.0.0/24");
    let pod = Ns::new("pod");
    let mut plugin = node.conf("1.0.0");
    let conf_text = plugin.to_string();
    plugin.as_object_mut().unwrap().remove("cniVersion");
    plugin.as_object_mut().unwrap().remove("name");
    let conflist = json!({"cniVersion": "1.0.0", "name": node.network, "plugins": [plugin, {"type": "portmap"}]});
    let file = node.dir.path().join("net.conflist");
    std::fs::write(&file, conflist.to_string()).unwrap();
    let netns = pod.path().display().to_string();

    let (code, out, err) = cli(&node, &["exec", "add", "--netns", &netns, "--config", file.to_str().unwrap()], "");
    assert_eq!(code, 0, "{out}{err}");
    let res: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(pod.ping(res["ips"][0]["gateway"].as_str().unwrap()));
    let (code, out, err) = cli(&node, &["exec", "del", "--netns", &netns, "--config", file.to_str().unwrap()], "");
    assert_eq!(code, 0, "{out}{err}");
    node.assert_clean();

    let (code, out, err) = cli(&node, &["exec", "add", "--netns", &netns, "--args", "IP=10.76.0.50", "--config", file.to_str().unwrap()], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("10.76.0.50/24"), "--args reaches the plugin as CNI_ARGS: {out}");
    let (code, _, err) = cli(&node, &["exec", "del", "--netns", &netns, "--config", file.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli(&node, &["exec", "version"], "{\"cniVersion\": \"0.4.0\"}");
    assert_eq!(code, 0);
    assert!(out.contains("\"supportedVersions\"") && out.contains("\"cniVersion\": \"0.4.0\""), "{out}");

    let (code, out, err) = cli(&node, &["ADD", &netns], &conf_text);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = cli(&node, &["DEL", &netns], &conf_text);
    assert_eq!(code, 0, "{err}");
    node.assert_clean();
}

#[test]
fn cli_explains_common_mistakes() {
    let node = Node::new("10.77.0.0/24");
    let pod = Ns::new("pod");
    let netns = pod.path().display().to_string();
    let (code, _, err) = cli(&node, &["exec", "add", "--netns", &netns], r#"{"name":"n","plugins":[{"type":"bridge"}]}"#);
    assert_ne!(code, 0);
    assert!(err.contains("no valid plugins found"), "{err}");

    let mut wrong_type = node.conf("1.0.0");
    wrong_type["type"] = json!("mycni");
    let (code, out, err) = cli(&node, &["exec", "add", "--netns", &netns], &wrong_type.to_string());
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("differs from this binary's name") && err.contains("no valid plugins found"), "{err}");
    let (code, _, _) = cli(&node, &["exec", "del", "--netns", &netns], &wrong_type.to_string());
    assert_eq!(code, 0);

    let (code, out, _) = cli(&node, &["exec", "add", "--netns", &netns], "");
    assert_ne!(code, 0);
    assert!(out.contains("no network configuration on stdin"), "{out}");
    node.assert_clean();
}

#[test]
fn exec_check_honours_the_lists_disable_check() {
    let node = Node::new("10.77.0.0/24");
    let pod = Ns::new("pod");
    let mut plugin = node.conf("1.1.0");
    plugin.as_object_mut().unwrap().remove("cniVersion");
    plugin.as_object_mut().unwrap().remove("name");
    let netns = pod.path().display().to_string();
    let mut list = json!({"cniVersion": "1.1.0", "name": node.network, "plugins": [plugin]});
    // Nothing was added: CHECK fails when it runs...
    let (code, _, _) = cli(&node, &["exec", "check", "--netns", &netns], &list.to_string());
    assert_ne!(code, 0);
    // ...and is not run at all when the list opts out, as a runtime would do.
    list["disableCheck"] = json!(true);
    let (code, out, err) = cli(&node, &["exec", "check", "--netns", &netns], &list.to_string());
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty() && err.contains("disableCheck"), "{out} {err}");
}

#[test]
fn exec_and_status_say_which_keys_are_unknown_and_what_was_meant() {
    let node = Node::new("10.77.0.0/24");
    let pod = Ns::new("pod");
    let mut conf = node.conf("1.1.0");
    conf["ipMasqq"] = json!(true);
    let file = node.dir.path().join("typo.conf");
    std::fs::write(&file, conf.to_string()).unwrap();
    let netns = pod.path().display().to_string();
    let (code, out, err) = cli(&node, &["exec", "status", "--config", file.to_str().unwrap()], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("ipMasqq") && err.contains("did you mean ipMasq?"), "STATUS says nothing of the typo: {err}");
    let (code, out, err) = cli(&node, &["exec", "add", "--netns", &netns, "--config", file.to_str().unwrap()], "");
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("ipMasqq") && err.contains("did you mean ipMasq?"), "exec add says nothing of the typo: {err}");
    let (code, _, err) = cli(&node, &["exec", "del", "--netns", &netns, "--config", file.to_str().unwrap()], "");
    assert_eq!(code, 0, "{err}");
    node.assert_clean();
}
