//! One CNI invocation from start to finish: parse, dispatch, and turn the outcome into exactly one JSON
//! document on stdout (or none, for a successful DEL/CHECK/STATUS/GC) plus an exit code.

use serde_json::{json, Value};

use super::conf::{read_stdin, Stdin};
use super::request::{Command, Env, Request};
use super::result::CniResult;
use super::version::{Version, SUPPORTED};
use crate::cni::reply::ErrorReply;
use crate::error::{Error, Result};
use crate::hooks::manifest::Stage;
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
        .unwrap_or_else(|p| Err(Error::Internal(ops::panic_message(&p))));
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
    crate::logging::configure(req.conf.log_file.as_deref(), req.conf.log_level.as_deref());
    if !binary_name.is_empty() && req.conf.plugin_type != binary_name {
        log::warn!(
            "netconf type {:?} differs from this binary's name {binary_name:?}: runtimes look the plugin up by \
             type and will report \"no valid plugins found\"",
            req.conf.plugin_type
        );
    }
    log::info!("{command:?} container={} ifname={} netns={:?}", req.container_id, req.ifname, req.netns);
    match command {
        Command::Add => {
            let result: CniResult = if crate::hooks::configured(&req) {
                // Load hooks (engine, cache) on a second core while ADD opens the namespaces.
                std::thread::scope(|s| {
                    let loading = s.spawn(|| crate::hooks::load(&req, &[Stage::PreAdd, Stage::PostAdd]));
                    ops::add::run(&req, || loading.join().unwrap_or_else(|p| Err(Error::Internal(ops::panic_message(&p)))))
                })?
            } else {
                ops::add::run(&req, || Ok(Box::new(crate::hooks::NoHooks)))?
            };
            Ok(Some(result.to_json(&req.version)))
        }
        Command::Del => {
            // Hooks only get told about DEL; a hook that cannot even load must not keep the pod's resources.
            let hooks = crate::hooks::load(&req, &[Stage::Del]).unwrap_or_else(|e| {
                log::warn!("hooks not loaded for DEL (cleanup goes on without them): {e}");
                Box::new(crate::hooks::NoHooks)
            });
            ops::del::run(&req, hooks.as_ref()).map(|_| None)
        }
        Command::Check => {
            if !req.version.at_least("0.4.0") {
                return Err(Error::IncompatibleVersion {
                    requested: req.version.as_str().into(),
                    supported: "0.4.0 and later for CHECK".into(),
                });
            }
            ops::check::run(&req).map(|_| None)
        }
        Command::Status => ops::status::run(&req).map(|_| None),
        Command::Gc => ops::gc::run(&req).map(|_| None),
        Command::Version => unreachable!("answered above"),
    }
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
