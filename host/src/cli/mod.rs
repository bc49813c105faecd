//! The face for people: run a CNI command by hand against a netns, through the same code path a runtime
//! takes (`wasmcni exec add --netns /var/run/netns/x --config net.conflist`, or the classic
//! `wasmcni ADD /var/run/netns/x < conf.json`).

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::ops::dispatch;

mod hook;
mod scaffold;
use crate::install;

#[derive(Parser)]
#[command(name = "wasmcni", version, about = "CNI plugin with WebAssembly hooks. Runtimes exec it with CNI_COMMAND set; \
without it, this CLI runs the same code by hand.")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a CNI command against a network namespace exactly as a runtime would.
    Exec(ExecArgs),
    /// Print the CNI versions this binary speaks.
    Version,
    /// Hook tools: check a manifest, precompile, run fixtures, call a stage, scaffold a hook project.
    #[command(subcommand)]
    Hook(hook::HookCmd),
    /// Put the plugin on this node: binary, hooks, hook cache, then the conflist last (atomically).
    Install(install::args::InstallArgs),
    /// Remove exactly what install wrote (per its record).
    Uninstall(install::args::UninstallArgs),
}

#[derive(clap::Args)]
struct ExecArgs {
    /// add, del, check, status, gc or version.
    #[arg(value_parser = |v: &str| crate::cni::request::Command::parse(v).map(|_| v.to_ascii_uppercase()).map_err(|_| "expected add, del, check, status, gc or version"))]
    verb: String,
    /// Path of the pod's network namespace (CNI_NETNS), e.g. /var/run/netns/x.
    #[arg(long)]
    netns: Option<PathBuf>,
    /// Interface name inside the pod (CNI_IFNAME).
    #[arg(long, default_value = "eth0")]
    ifname: String,
    /// Container ID (CNI_CONTAINERID); defaults to one derived from the netns name.
    #[arg(long)]
    container_id: Option<String>,
    /// CNI_ARGS, e.g. 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=web'.
    #[arg(long, default_value = "")]
    args: String,
    /// Netconf or conflist file; '-' reads stdin (the default).
    #[arg(long, default_value = "-")]
    config: String,
    /// CNI_PATH for delegated plugins.
    #[arg(long, default_value = "/opt/cni/bin")]
    cni_path: String,
    /// GC: an attachment to keep, CONTAINER_ID or CONTAINER_ID/IFNAME (default ifname: --ifname); repeat it
    /// for every pod that still exists. Becomes the config's cni.dev/valid-attachments.
    #[arg(long = "keep", value_name = "ID[/IFNAME]")]
    keep: Vec<String>,
    /// GC: keep nothing (every attachment of the network is removed). Needed when --keep is not given and
    /// the config holds no cni.dev/valid-attachments, so that an empty list is never an accident.
    #[arg(long, conflicts_with = "keep")]
    keep_nothing: bool,
}

/// Runs the CLI; returns the process exit code.
pub fn main(argv: Vec<String>, binary_name: &str) -> i32 {
    // The seed article's form: `wasmcni ADD /var/run/netns/x < conf.json`.
    let argv = match argv.get(1).map(|s| s.as_str()) {
        Some(v @ ("ADD" | "DEL" | "CHECK" | "STATUS" | "GC" | "VERSION")) => {
            let mut a = vec![argv[0].clone(), "exec".into(), v.to_ascii_lowercase()];
            if let Some(ns) = argv.get(2) {
                a.extend(["--netns".into(), ns.clone()]);
            }
            a.extend(argv[3.min(argv.len())..].iter().cloned());
            a
        }
        _ => argv,
    };
    let cli = Cli::parse_from(argv);
    let result = match cli.command {
        Cmd::Exec(args) => exec(args, binary_name),
        Cmd::Hook(cmd) => hook::run(cmd),
        Cmd::Install(args) => install::args::run_install(args),
        Cmd::Uninstall(args) => install::args::run_uninstall(args),
        Cmd::Version => {
            println!("wasmcni {} (CNI {})", env!("CARGO_PKG_VERSION"), crate::cni::version::SUPPORTED.join(", "));
            Ok(0)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("wasmcni: {e:#}");
        2
    })
}

fn exec(a: ExecArgs, binary_name: &str) -> anyhow::Result<i32> {
    let verb = a.verb.as_str();
    let mut raw = Vec::new();
    if a.config == "-" {
        std::io::stdin().read_to_end(&mut raw).context("reading the config from stdin")?;
    } else {
        raw = std::fs::read(&a.config).with_context(|| format!("reading {}", a.config))?;
    }
    if let Some(key) = disabled_by_list(&raw, verb) {
        // What a runtime does: the list opts out, so the plugin is never called and the answer is success.
        eprintln!("wasmcni: the conflist sets {key}: a runtime would not call {verb}; nothing run, exit 0");
        return Ok(0);
    }
    let mut stdin = plugin_config(&raw, binary_name)?;
    if verb == "GC" {
        stdin = with_valid_attachments(&stdin, &a.keep, a.keep_nothing, &a.ifname)?;
    }
    let mut env = HashMap::new();
    env.insert("CNI_COMMAND".to_string(), verb.to_string());
    env.insert("CNI_IFNAME".into(), a.ifname);
    env.insert("CNI_ARGS".into(), a.args);
    env.insert("CNI_PATH".into(), a.cni_path);
    if let Some(ns) = &a.netns {
        env.insert("CNI_NETNS".into(), ns.display().to_string());
    }
    let id = a.container_id.unwrap_or_else(|| default_container_id(a.netns.as_deref()));
    env.insert("CNI_CONTAINERID".into(), id);
    let out = dispatch::handle(verb, &env, &stdin, binary_name);
    if let Some(v) = out.stdout {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    eprintln!("wasmcni: {verb} exited with {}", out.exit_code);
    Ok(out.exit_code)
}

/// The spec's list-level opt-outs: `disableCheck` (CHECK) and, since 1.1, `disableGC` (GC).
fn disabled_by_list(raw: &[u8], verb: &str) -> Option<&'static str> {
    let v: Value = serde_json::from_slice(raw).ok()?;
    v.get("plugins")?;
    let key = match verb {
        "CHECK" => "disableCheck",
        "GC" => "disableGC",
        _ => return None,
    };
    // Older runtimes wrote the flag as a string.
    matches!(v.get(key), Some(Value::Bool(true))).then_some(key).or_else(|| (v.get(key)?.as_str()? == "true").then_some(key))
}

/// A conflist is reduced to our plugin's entry with the list's `cniVersion` and `name` merged in, which is
/// what a runtime would send; a single plugin config passes through.
fn plugin_config(raw: &[u8], binary_name: &str) -> anyhow::Result<Vec<u8>> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(raw.to_vec());
    }
    let v: Value = serde_json::from_slice(raw).context("the config is not valid JSON")?;
    let Some(plugins) = v.get("plugins").and_then(Value::as_array) else { return Ok(raw.to_vec()) };
    let Some(mut ours) = plugins
        .iter()
        .find(|p| p.get("type").and_then(Value::as_str).is_some_and(|t| t == binary_name || t == "wasmcni"))
        .cloned()
    else {
        bail!("the conflist has no plugin of type {binary_name:?}; runtimes would report \"no valid plugins found\"")
    };
    for key in ["cniVersion", "name"] {
        if let Some(val) = v.get(key) {
            ours[key] = val.clone();
        }
    }
    Ok(serde_json::to_vec(&ours)?)
}

/// GC's list of attachments to keep, from --keep (or --keep-nothing), unless the config already has one.
fn with_valid_attachments(stdin: &[u8], keep: &[String], keep_nothing: bool, ifname: &str) -> anyhow::Result<Vec<u8>> {
    let mut v: Value = serde_json::from_slice(stdin).context("the config is not valid JSON")?;
    let has_list = v.get("cni.dev/valid-attachments").is_some() || v.get("cni.dev/attachments").is_some();
    if has_list && (keep_nothing || !keep.is_empty()) {
        bail!("the config already lists cni.dev/valid-attachments: drop --keep/--keep-nothing, or the list");
    }
    if has_list {
        return Ok(stdin.to_vec());
    }
    if keep.is_empty() && !keep_nothing {
        bail!("GC removes every attachment not kept: name the pods that still exist with --keep ID[/IFNAME] (repeat it), or say --keep-nothing");
    }
    let list: Vec<Value> = keep
        .iter()
        .map(|k| {
            let (id, ifname) = k.split_once('/').unwrap_or((k, ifname));
            serde_json::json!({"containerID": id, "ifname": ifname})
        })
        .collect();
    v["cni.dev/valid-attachments"] = Value::Array(list);
    Ok(serde_json::to_vec(&v)?)
}

fn default_container_id(netns: Option<&std::path::Path>) -> String {
    let base = netns.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let clean: String = base.chars().filter(|c| crate::naming::is_safe_char(*c)).collect();
    format!("debug-{clean}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_is_reduced_to_our_entry() {
        let list = br#"{"cniVersion":"1.0.0","name":"podnet","plugins":[{"type":"wasmcni","ipMasq":true},{"type":"portmap"}]}"#;
        let v: Value = serde_json::from_slice(&plugin_config(list, "wasmcni").unwrap()).unwrap();
        assert_eq!(v["name"], "podnet");
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["ipMasq"], true);
        let err = plugin_config(br#"{"name":"x","plugins":[{"type":"bridge"}]}"#, "wasmcni").unwrap_err();
        assert!(err.to_string().contains("no valid plugins found"));
    }

    #[test]
    fn disable_check_and_disable_gc_skip_those_verbs_only() {
        let list = br#"{"cniVersion":"1.1.0","name":"n","disableCheck":true,"disableGC":"true","plugins":[{"type":"wasmcni"}]}"#;
        assert_eq!(disabled_by_list(list, "CHECK"), Some("disableCheck"));
        assert_eq!(disabled_by_list(list, "GC"), Some("disableGC"));
        assert_eq!(disabled_by_list(list, "ADD"), None);
        assert_eq!(disabled_by_list(br#"{"name":"n","plugins":[]}"#, "CHECK"), None);
        // A single plugin config has no list-level flags.
        assert_eq!(disabled_by_list(br#"{"name":"n","type":"wasmcni","disableCheck":true}"#, "CHECK"), None);
    }

    #[test]
    fn gc_keeps_what_it_is_told_and_never_an_accidental_empty_list() {
        let conf = br#"{"name":"n","type":"wasmcni"}"#;
        let out = with_valid_attachments(conf, &["a".into(), "b/net1".into()], false, "eth0").unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["cni.dev/valid-attachments"], serde_json::json!([{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "net1"}]));
        let none: Value = serde_json::from_slice(&with_valid_attachments(conf, &[], true, "eth0").unwrap()).unwrap();
        assert_eq!(none["cni.dev/valid-attachments"], serde_json::json!([]));
        assert!(with_valid_attachments(conf, &[], false, "eth0").unwrap_err().to_string().contains("--keep"));
        let listed = br#"{"name":"n","type":"wasmcni","cni.dev/valid-attachments":[]}"#;
        assert_eq!(with_valid_attachments(listed, &[], false, "eth0").unwrap(), listed.to_vec());
    }

    #[test]
    fn default_container_id_is_valid() {
        assert_eq!(default_container_id(Some(std::path::Path::new("/var/run/netns/my pod"))), "debug-mypod");
    }
}
