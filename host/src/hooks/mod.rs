//! WebAssembly hooks at pre-ADD, post-ADD and DEL. The host calls the stage points of `Hooks`; `WasmHooks`
//! runs the components a netconf lists, applies each hook's `on_error` policy and validates what it returns.

pub mod cache;
pub mod call;
mod contract;
mod convert;
pub mod engine;
mod error;
pub mod fixture;
pub mod manifest;
mod sanitize;
pub mod validate;

pub use error::Error;

use call::{Failure, LoadedHook};
use engine::HookEngine;
use manifest::{Mode, OnError, Stage};

use crate::cni::request::Request;
use crate::cni::result::CniResult;
use crate::firewall::HookChain;
use crate::ipam::IpamConfig;
use crate::plan::Plan;

type Result<T, E = crate::error::Error> = std::result::Result<T, E>;

pub trait Hooks: Send + Sync {
    /// pre-ADD: before IPAM; may change the addressing plan. Each hook's answer is validated against the
    /// network's ranges (None: a delegated IPAM whose config has no ranges we can read) before the next hook
    /// sees it.
    fn pre_add(&self, req: &Request, plan: Plan, ipam: Option<&IpamConfig>) -> Result<Plan>;
    /// post-ADD: after the pod is wired; returns validated rules per hook for the host to apply.
    fn post_add(&self, req: &Request, result: &CniResult) -> Result<Vec<HookChain>>;
    /// DEL: a notification; it can never make DEL fail.
    fn del(&self, req: &Request);
}

pub struct NoHooks;

impl Hooks for NoHooks {
    fn pre_add(&self, _req: &Request, plan: Plan, _ipam: Option<&IpamConfig>) -> Result<Plan> {
        Ok(plan)
    }

    fn post_add(&self, _req: &Request, _result: &CniResult) -> Result<Vec<HookChain>> {
        Ok(Vec::new())
    }

    fn del(&self, _req: &Request) {}
}

pub struct WasmHooks {
    hooks: Vec<LoadedHook>,
    /// Lives as long as the hooks it runs (its watchdog ends their calls).
    _engine: HookEngine,
}

pub fn configured(req: &Request) -> bool {
    req.conf.hooks_manifest.is_some() || req.conf.hooks.as_ref().is_some_and(|h| h.as_array().is_none_or(|a| !a.is_empty()))
}

/// The hooks a request's netconf asks for, loaded (compiled once, then from the cache) and ready to call.
/// Only hooks that run at one of `stages` are loaded: a DEL does not start the engine for hooks without a
/// `del` stage. The whole manifest is still validated.
pub fn load(req: &Request, stages: &[Stage]) -> Result<Box<dyn Hooks>> {
    instantiate(req, specs(req, stages)?)
}

/// The hooks of `stages`, validated (manifest, names, modules present and trusted) without starting the
/// engine: cheap, so ADD does it before it touches anything.
pub fn specs(req: &Request, stages: &[Stage]) -> Result<Vec<manifest::HookSpec>> {
    let mut specs = manifest::load(req.conf.hooks_manifest.as_deref(), req.conf.hooks.as_ref())?;
    specs.retain(|s| stages.iter().any(|st| s.runs_at(*st)));
    for spec in &specs {
        spec.check_module()?;
    }
    if !specs.is_empty() {
        check_trust(req, &specs)?;
    }
    Ok(specs)
}

/// Starts the engine and loads `specs` through the node's cache; hooks that share a module map and link it
/// once.
pub fn instantiate(req: &Request, specs: Vec<manifest::HookSpec>) -> Result<Box<dyn Hooks>> {
    if specs.is_empty() {
        return Ok(Box::new(NoHooks));
    }
    let engine = HookEngine::new()?;
    let cache = engine.node_cache(&req.conf.state_dir());
    let mut hooks: Vec<LoadedHook> = Vec::new();
    for spec in specs {
        let twin = hooks.iter().find(|h| h.spec.module == spec.module);
        let hook = match twin {
            Some(t) => t.with_spec(spec),
            None => {
                let name = spec.name.clone();
                engine.load(spec, &cache).map_err(|e| Error::Hook { hook: name, source: Box::new(e) })?
            }
        };
        hooks.push(hook);
    }
    log::debug!("step: {} hooks loaded", hooks.len());
    Ok(Box::new(WasmHooks { hooks, _engine: engine }))
}

/// As root, a hook's manifest and module are run only when nobody but root could have written them (or a
/// directory above them): anyone who could would be running code, and rules, as root on every pod.
/// `insecureHookFiles` turns this off, for development only.
fn check_trust(req: &Request, specs: &[manifest::HookSpec]) -> Result<()> {
    if !crate::trust::Owners::current().is_root() || req.conf.insecure_hook_files {
        return Ok(());
    }
    let refuse = |what: String, source: crate::trust::Untrusted| Error::Untrusted { what, source };
    if let Some(m) = &req.conf.hooks_manifest {
        crate::trust::check_file(m, crate::trust::Owners::root_only()).map_err(|e| refuse("the hooks manifest".into(), e))?;
    }
    for spec in specs {
        crate::trust::check_file(&spec.module, crate::trust::Owners::root_only())
            .map_err(|e| refuse(format!("hook {}'s module", spec.name), e))?;
    }
    Ok(())
}

impl WasmHooks {
    fn at(&self, stage: Stage) -> impl Iterator<Item = &LoadedHook> {
        self.hooks.iter().filter(move |h| h.spec.runs_at(stage))
    }
}

/// `on_error = "fail"` turns a failure into the ADD's error; `ignore` logs it and carries on.
fn policy(hook: &LoadedHook, stage: &'static str, failure: Failure) -> Result<()> {
    let err = Error::Failed { hook: hook.spec.name.clone(), stage, failure };
    match hook.spec.on_error {
        OnError::Fail => Err(err.into()),
        OnError::Ignore => {
            log::warn!("{err} (on_error = \"ignore\": continuing)");
            Ok(())
        }
    }
}

impl Hooks for WasmHooks {
    fn pre_add(&self, req: &Request, mut plan: Plan, ipam: Option<&IpamConfig>) -> Result<Plan> {
        let mut att = convert::attachment(req);
        for h in self.at(Stage::PreAdd) {
            let answer = h
                .pre_add(convert::for_hook(&mut att, &h.spec), &convert::plan(&plan))
                .and_then(|p| validate::plan(p, ipam).map_err(Failure::Invalid));
            match answer {
                Ok(p) => {
                    if p != plan {
                        log::info!("hook {} changed the plan: {}", h.spec.name, p.describe());
                    }
                    plan = p;
                }
                Err(f) => policy(h, "pre-add", f)?,
            }
        }
        Ok(plan)
    }

    fn post_add(&self, req: &Request, result: &CniResult) -> Result<Vec<HookChain>> {
        let wit_result = convert::result(result);
        let mut chains = Vec::new();
        let mut att = convert::attachment(req);
        for h in self.at(Stage::PostAdd) {
            let rules = h.post_add(convert::for_hook(&mut att, &h.spec), &wit_result).and_then(|r| validate::rules(r).map_err(Failure::Invalid));
            match rules {
                Ok(rules) if h.spec.mode == Mode::Monitor => {
                    for r in &rules {
                        log::warn!("hook {} (monitor mode, not applied) would add: {}", h.spec.name, r.describe());
                    }
                }
                Ok(rules) if rules.is_empty() => {}
                Ok(rules) => chains.push(HookChain { hook: h.spec.name.clone(), rules }),
                Err(f) => policy(h, "post-add", f)?,
            }
        }
        Ok(chains)
    }

    fn del(&self, req: &Request) {
        let mut att = convert::attachment(req);
        for h in self.at(Stage::Del) {
            if let Err(f) = h.del(convert::for_hook(&mut att, &h.spec)) {
                log::warn!("hook {} failed in del (ignored, DEL goes on): {f}", h.spec.name);
            }
        }
    }
}
