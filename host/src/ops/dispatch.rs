//! One CNI invocation from start to finish: parse, dispatch, and turn the outcome into exactly one JSON
//! document on stdout (or none, for a successful DEL/CHECK/STATUS/GC) plus an exit code.

use serde_json::{json, Value};

use super::Deps;
use crate::cni::conf::{read_stdin, Stdin};
use crate::cni::reply::ErrorReply;
use crate::cni::request::{Command, Env, Request};
use crate::cni::result::CniResult;
use crate::cni::version::{Version, SUPPORTED};
use crate::error::{panic_message, Error, Result};
use crate::firewall::NodeFirewalls;
use crate::hooks::manifest::Stage;
use crate::netlink::RtnlKernel;
use crate::ops;

#[derive(Debug)]
pub struct Outcome {
    pub stdout: Option<Value>,
    pub exit_code: i32,
}

/// `binary_name` is the file name we were exec'd as, to warn when the netconf's `type` differs from it.
pub fn handle(command: &str, env: &dyn Env, stdin: &[u8], binary_name: &str) -> Outcome {
    let stdin = read_stdin(stdin);
    // The version for an error reply: the requested one if we speak it, else our latest.
    let requested = stdin
        .as_ref()
        .and_then(|r| r.as_ref().ok())
        .and_then(|v| v.get("cniVersion").and_then(Value::as_str))
        .and_then(|v| Version::parse(v).ok())
        .unwrap_or_else(Version::latest);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(command, env, stdin, binary_name)))
        .unwrap_or_else(|p| Err(Error::Internal(panic_message(&p))));
    match outcome {
        Ok(stdout) => Outcome { stdout, exit_code: 0 },
        Err(e) => {
            log::error!("{command} failed: {e}");
            let reply = ErrorReply::new(requested.as_str(), &e);
            Outcome { stdout: Some(serde_json::to_value(reply).expect("error reply serializes")), exit_code: 1 }
        }
    }
}

fn dispatch(command: &str, env: &dyn Env, stdin: Stdin, binary_name: &str) -> Result<Option<Value>> {
    let command = Command::parse(command)?;
    if command == Command::Version {
        return version(stdin).map(Some);
    }
    let req = Request::from_stdin(command, env, stdin)?;
    let format = req.conf.log_format.as_deref().and_then(crate::logging::Format::parse);
    crate::logging::configure(req.conf.log_file.as_deref(), req.conf.log_level.as_deref(), format);
    let mut context = vec![("command", command.as_str().to_string()), ("network", req.conf.name.clone())];
    if !req.container_id.is_empty() {
        context.extend([("containerID", req.container_id.clone()), ("ifname", req.ifname.clone())]);
    }
    crate::logging::set_context(context);
    if !binary_name.is_empty() && req.conf.plugin_type != binary_name {
        log::warn!(
            "netconf type {:?} differs from this binary's name {binary_name:?}: runtimes look the plugin up by \
             type and will report \"no valid plugins found\"",
            req.conf.plugin_type
        );
    }
    // A misspelled key is not an error (runtimes and other tools add their own), but it is said, with
    // the key it was probably meant to be.
    for warning in crate::cni::fields::unknown_keys(&req.raw_conf, req.conf.ipam_type() == Some("builtin")) {
        log::warn!("{warning}");
    }
    let netns = req.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into());
    log::info!("{} container={} ifname={} netns={netns}", command.as_str(), req.container_id, req.ifname);
    // ADD's hooks: the manifest is checked before anything is touched; the engine and the cache then load
    // on a helper thread, on another CPU, while ADD connects, locks and starts.
    let loading = match command {
        Command::Add if crate::hooks::configured(&req) => {
            let specs = crate::hooks::specs(&req, &[Stage::PreAdd, Stage::PostAdd])?;
            let owned = req.clone();
            let loading = crate::threads::spawn("hook-loader", move || crate::hooks::instantiate(&owned, specs))
                .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
            Some(loading)
        }
        _ => None,
    };
    let kernel = RtnlKernel::connect()?;
    let firewalls = NodeFirewalls::new(&req.conf.run_dir());
    let deps = Deps { kernel: &kernel, firewalls: &firewalls };
    match command {
        Command::Add => {
            let result: CniResult = match loading {
                Some(loading) => {
                    let joined = || loading.join().unwrap_or_else(|p| Err(Error::Internal(panic_message(&p)))).map(kept_to_exit);
                    ops::add::run(&req, &deps, joined)?
                }
                None => ops::add::run(&req, &deps, || Ok(&crate::hooks::NoHooks))?,
            };
            Ok(Some(result.to_json(&req.version)))
        }
        Command::Del => {
            // Hooks only get told about DEL; a hook that cannot even load must not keep the pod's resources.
            let hooks = crate::hooks::load(&req, &[Stage::Del]).unwrap_or_else(|e| {
                log::warn!("hooks not loaded for DEL (cleanup goes on without them): {e}");
                Box::new(crate::hooks::NoHooks)
            });
            ops::del::run(&req, &deps, kept_to_exit(hooks)).map(|_| None)
        }
        Command::Check => {
            if !req.version.at_least("0.4.0") {
                return Err(Error::IncompatibleVersion {
                    requested: req.version.as_str().into(),
                    supported: "0.4.0 and later for CHECK".into(),
                });
            }
            ops::check::run(&req, &deps).map(|_| None)
        }
        Command::Status => ops::status::run(&req, &deps).map(|_| None),
        Command::Gc => ops::gc::run(&req, &deps).map(|_| None),
        Command::Version => unreachable!("answered above"),
    }
}

/// The hooks of this invocation, which ends the process: their engine and components are left for the kernel
/// to reclaim at exit, not freed allocation by allocation and unmapped while helper threads run (~0.5 ms of
/// an ADD with 3 hooks, docs/performance.md).
fn kept_to_exit(hooks: Box<dyn crate::hooks::Hooks>) -> &'static dyn crate::hooks::Hooks {
    Box::leak(hooks)
}

/// VERSION: stdin holds `{"cniVersion": ...}` (or nothing); answer with every version we speak.
fn version(stdin: Stdin) -> Result<Value> {
    let requested = match stdin {
        None => Version::latest(),
        Some(v) => {
            let v = v.map_err(|source| Error::Decode { what: "VERSION input", source })?;
            Version::parse(v.get("cniVersion").and_then(Value::as_str).unwrap_or_default()).unwrap_or_else(|_| Version::latest())
        }
    };
    Ok(json!({ "cniVersion": requested.as_str(), "supportedVersions": SUPPORTED }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env() -> HashMap<String, String> {
        HashMap::new()
    }

    #[test]
    fn version_lists_all_and_echoes_the_request() {
        let out = handle("VERSION", &env(), br#"{"cniVersion":"0.4.0"}"#, "wasmcni");
        assert_eq!(out.exit_code, 0);
        let v = out.stdout.unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 7);
        assert_eq!(handle("VERSION", &env(), b"", "wasmcni").stdout.unwrap()["cniVersion"], "1.1.0");
    }

    /// Every file under `dir` with its size and modification time, and every directory.
    fn tree(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64, std::time::SystemTime)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                // A directory's own times change when probes come and go; its entries are what count.
                out.extend(tree(&e.path()));
                out.push((e.path(), 0, std::time::UNIX_EPOCH));
            } else {
                out.push((e.path(), m.len(), m.modified().unwrap()));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn names_that_could_become_paths_outside_their_dirs_are_refused_by_every_command() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let data = root.join("data");
        std::fs::create_dir_all(data.join("ipam").join("net")).unwrap();
        std::fs::create_dir_all(data.join("state")).unwrap();
        std::fs::create_dir_all(data.join("run").join("attachment-locks")).unwrap();
        // What DEL with the network name ".." released before: a file beside the data dir naming the container.
        std::fs::write(data.join("ipam").join("10.0.0.2"), "victim\r\neth0").unwrap();
        std::fs::write(data.join("10.0.0.3"), "victim\r\neth0").unwrap();
        // A valid network may use its own dirs (STATUS checks they are writable); nothing else may change.
        let outside = |root: &std::path::Path| {
            let mut t = tree(root);
            let own = [data.join("state"), data.join("ipam").join("net"), data.join("run").join("attachment-locks").join("net")];
            t.retain(|(p, ..)| !own.iter().any(|d| p.starts_with(d)));
            t
        };
        let before = outside(root);
        let conf = |name: &str, hook: &str| {
            let mut c = json!({"cniVersion": "1.1.0", "name": name, "type": "wasmcni",
                "stateDir": data.join("state"), "runDir": data.join("run"), "cni.dev/valid-attachments": [],
                "ipam": {"type": "builtin", "subnet": "10.0.0.0/24", "dataDir": data.join("ipam")}});
            if !hook.is_empty() {
                c["hooks"] = json!([{"name": hook, "module": root.join("h.wasm"), "stages": ["pre-add"]}]);
            }
            c.to_string()
        };
        let env = |id: &str, ifname: &str| -> HashMap<String, String> {
            [("CNI_CONTAINERID", id), ("CNI_IFNAME", ifname), ("CNI_NETNS", "/var/run/netns/none"), ("CNI_PATH", "/nonexistent")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // (what, network, container id, ifname, hook, code, words the message must hold)
        let cases = [
            ("network .", ".", "victim", "eth0", "", 7, "field name"),
            ("network ..", "..", "victim", "eth0", "", 7, "field name"),
            ("network with /", "a/b", "victim", "eth0", "", 7, "field name"),
            ("network -x", "-x", "victim", "eth0", "", 7, "field name"),
            ("network too long", &"n".repeat(65), "victim", "eth0", "", 7, "more than 64"),
            ("container ..", "net", "..", "eth0", "", 4, "CNI_CONTAINERID"),
            ("container ../x", "net", "../x", "eth0", "", 4, "CNI_CONTAINERID"),
            ("container .hidden", "net", ".x", "eth0", "", 4, "CNI_CONTAINERID"),
            ("ifname ..", "net", "victim", "..", "", 4, "CNI_IFNAME"),
            ("ifname with /", "net", "victim", "a/b", "", 4, "CNI_IFNAME"),
            ("ifname too long", "net", "victim", "abcdefghijklmnop", "", 4, "CNI_IFNAME"),
            ("ifname with a newline", "net", "victim", "eth\n0", "", 4, "CNI_IFNAME"),
        ];
        for command in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
            for (what, net, id, ifname, hook, code, needle) in &cases {
                // STATUS and GC take no attachment: only the network name applies to them.
                if matches!(command, "GC" | "STATUS") && *code == 4 {
                    continue;
                }
                let out = handle(command, &env(id, ifname), conf(net, hook).as_bytes(), "wasmcni");
                let e = out.stdout.unwrap_or_else(|| panic!("{command} {what}: succeeded"));
                assert_eq!(e["code"], *code, "{command} {what}: {e}");
                let msg = e["msg"].as_str().unwrap();
                assert!(msg.contains(needle), "{command} {what}: {msg}");
            }
        }
        // Hook names become chain names and comments: ADD and STATUS, which load hooks, refuse them.
        std::fs::write(root.join("h.wasm"), b"\0asm").unwrap();
        for command in ["ADD", "STATUS"] {
            for hook in ["..", "../x", "a b", &"h".repeat(25)] {
                let out = handle(command, &env("victim", "eth0"), conf("net", hook).as_bytes(), "wasmcni");
                let e = out.stdout.unwrap();
                assert_eq!(e["code"], if command == "ADD" { 7 } else { 50 }, "{command} hook {hook}: {e}");
                assert!(e["msg"].as_str().unwrap().contains("field name"), "{command} {hook}: {e}");
            }
        }
        // DEL, CHECK and GC name chains from the record, not from the config: a bad hook name in the config
        // must not reach a path either (the tree check below), whether they refuse or succeed.
        for command in ["DEL", "CHECK", "GC"] {
            for hook in ["..", "../x", "a b", &"h".repeat(25)] {
                let out = handle(command, &env("victim", "eth0"), conf("net", hook).as_bytes(), "wasmcni");
                if let Some(e) = out.stdout.filter(|v| v.get("code").is_some()) {
                    let msg = e["msg"].as_str().unwrap();
                    assert!(!crate::error::DEBUG_TELLS.iter().any(|t| msg.contains(t)), "{command} hook {hook}: {msg}");
                }
            }
        }
        std::fs::remove_file(root.join("h.wasm")).unwrap();
        assert_eq!(outside(root), before, "a refused command touched files outside its network's directories");
    }

    #[test]
    fn errors_are_spec_objects_with_codes() {
        let out = handle("ADD", &env(), br#"{"cniVersion":"0.3.1","name":"n","type":"wasmcni"}"#, "wasmcni");
        assert_eq!(out.exit_code, 1);
        let e = out.stdout.unwrap();
        assert_eq!(e["cniVersion"], "0.3.1");
        assert_eq!(e["code"], 4);
        assert!(e["msg"].as_str().unwrap().contains("CNI_CONTAINERID"));

        let e = handle("ADD", &env(), br#"{"cniVersion":"7.0.0","name":"n","type":"wasmcni"}"#, "wasmcni").stdout.unwrap();
        assert_eq!(e["code"], 1);
        assert_eq!(e["cniVersion"], "1.1.0");
        let e = handle("ADD", &env(), b"{oops", "wasmcni").stdout.unwrap();
        assert_eq!(e["code"], 6);
        let e = handle("BOGUS", &env(), b"{}", "wasmcni").stdout.unwrap();
        assert_eq!(e["code"], 4);
    }
}
