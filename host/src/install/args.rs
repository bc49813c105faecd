//! The command lines: `wasmcni install ...`, `wasmcni uninstall ...`, mapped onto a `Request`.

use std::path::PathBuf;

use anyhow::Context;
use ipnet::IpNet;

use super::paths::{self, Paths};
use super::{conflist, HookLibrary, InstallError, Outcome, RealDisk, Request};

#[derive(clap::Args, Debug)]
pub struct PathArgs {
    /// Where the node's filesystem is mounted (tests: a temp dir; a container: where the host is mounted).
    /// Files are written under it; the conflist keeps the node's own paths.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// The plugin's state dir: attachment records, the hook cache, and the install record (install.json).
    #[arg(long, default_value = paths::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    paths: PathArgs,
    #[arg(long, default_value = paths::DEFAULT_BIN_DIR)]
    bin_dir: PathBuf,
    #[arg(long, default_value = paths::DEFAULT_CONF_DIR)]
    conf_dir: PathBuf,
    /// The conflist's file name; the runtime takes the first config in name order.
    #[arg(long, default_value = paths::DEFAULT_CONFLIST)]
    conflist_name: String,
    #[arg(long, default_value = paths::DEFAULT_HOOK_DIR)]
    hook_dir: PathBuf,
    /// The binary to install (default: this one).
    #[arg(long)]
    source_bin: Option<PathBuf>,
    /// A conflist to start from (default: cniVersion 1.1.0, one wasmcni plugin, ipMasq, builtin IPAM).
    #[arg(long)]
    template: Option<PathBuf>,
    /// The node's pod range; repeat for dual-stack (one per family).
    #[arg(long = "pod-cidr")]
    pod_cidrs: Vec<IpNet>,
    /// A cluster-wide pod range masquerade leaves alone (written as nonMasqueradeCIDRs); repeatable.
    #[arg(long = "cluster-cidr")]
    cluster_cidrs: Vec<IpNet>,
    #[arg(long)]
    mtu: Option<u16>,
    /// A directory holding hooks.toml and its modules: compiled, then copied into the hook dir.
    #[arg(long, conflicts_with = "hooks_manifest")]
    hooks: Option<PathBuf>,
    /// Name this manifest in the conflist without copying anything (its keeper, e.g. the node agent,
    /// validates and compiles it).
    #[arg(long)]
    hooks_manifest: Option<PathBuf>,
    /// Binary (and hooks) only; the conflist comes later, once the node's pod CIDR is known.
    #[arg(long)]
    no_conflist: bool,
    /// Replace files changed by hand or not written by install.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    #[command(flatten)]
    paths: PathArgs,
    /// Remove recorded files even when they were changed since install.
    #[arg(long)]
    force: bool,
}

impl InstallArgs {
    pub fn into_request(self) -> anyhow::Result<Request> {
        let source_bin = match self.source_bin {
            Some(p) => p,
            None => std::env::current_exe().context("cannot find this binary to install it; pass --source-bin")?,
        };
        let template = match &self.template {
            Some(t) => Some(std::fs::read(t).with_context(|| format!("reading the template {}", t.display()))?),
            None => None,
        };
        Ok(Request {
            paths: Paths {
                root: self.paths.root,
                bin_dir: self.bin_dir,
                conf_dir: self.conf_dir,
                conflist_name: self.conflist_name,
                hook_dir: self.hook_dir,
                state_dir: self.paths.state_dir,
            },
            source_bin,
            template,
            settings: conflist::Settings {
                pod_cidrs: self.pod_cidrs,
                cluster_cidrs: self.cluster_cidrs,
                mtu: self.mtu,
                ..Default::default()
            },
            hooks_src: self.hooks,
            hooks_manifest: self.hooks_manifest,
            write_conflist: !self.no_conflist,
            force: self.force,
        })
    }
}

/// `wasmcni install`: 0 done (or nothing to do), 1 refused (files changed by hand).
pub fn run_install(args: InstallArgs) -> anyhow::Result<i32> {
    let req = args.into_request()?;
    report(super::install(&req, &RealDisk, &HookLibrary), "installed", false)
}

pub fn run_uninstall(args: UninstallArgs) -> anyhow::Result<i32> {
    let p = Paths { root: args.paths.root, state_dir: args.paths.state_dir, ..Paths::default() };
    report(super::uninstall(&p, args.force, &RealDisk), "uninstalled", true)
}

/// `kept_fails`: for uninstall, a file it had to keep means it did not finish.
fn report(result: Result<Outcome, InstallError>, done: &str, kept_fails: bool) -> anyhow::Result<i32> {
    match result {
        Ok(out) => {
            for l in &out.lines {
                println!("{l}");
            }
            for w in &out.warnings {
                eprintln!("wasmcni: warning: {w}");
            }
            if out.changed == 0 {
                println!("nothing changed: already {done}");
            } else {
                println!("{done}: {} file(s) changed", out.changed);
            }
            Ok(if kept_fails && !out.warnings.is_empty() { 1 } else { 0 })
        }
        Err(e @ InstallError::Conflicts(_)) => {
            eprintln!("wasmcni: {e}");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}
