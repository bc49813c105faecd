//! WebAssembly hooks at pre-ADD, post-ADD and DEL. The host calls the stage points of `Hooks`; `WasmHooks`
//! runs the components a netconf lists, applies each hook's `on_error` policy and validates what it returns.

pub mod cache;
pub mod call;
mod compat;
mod contract;
mod convert;
pub mod engine;
mod error;
pub mod fixture;
pub mod manifest;
pub mod podmeta;
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
    /// post-ADD: once the result is decided, before the veth exists; returns validated rules per hook, which
    /// the host applies before the pod comes up.
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
    /// The pod's metadata, read (or waited for) once.
    meta: std::sync::OnceLock<Option<podmeta::PodMeta>>,
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

/// STATUS: every hook of the netconf loads (filling the cache) and accepts its config; the first that does
/// not is the error.
pub fn check(req: &Request) -> Result<()> {
    let specs = specs(req, &[Stage::PreAdd, Stage::PostAdd, Stage::Del])?;
    if specs.is_empty() {
        return Ok(());
    }
    // Runtimes call STATUS every few seconds: cached hooks are checked on an engine without a compiler. Any
    // failure is checked again on one with it, which compiles what is missing and has the final word.
    let on = |engine: HookEngine| check_all(&engine, &engine.node_cache(&req.conf.state_dir()), specs.clone());
    let mut checked = on(HookEngine::cached_only()?);
    if checked.iter().any(|c| c.outcome.is_err()) {
        log::debug!("a hook did not check out from the cache: starting the engine with its compiler");
        checked = on(HookEngine::new()?);
    }
    match checked.into_iter().find_map(|c| c.outcome.err().map(|e| (c.name, e))) {
        Some((hook, why)) => Err(crate::error::Error::InvalidConfig(format!("hook {hook}: {why}"))),
        None => Ok(()),
    }
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
/// once. The engine starts without a compiler, as every pod but a node's first finds its hooks cached; one
/// that is not (or unusable) starts the engine again with one.
pub fn instantiate(req: &Request, specs: Vec<manifest::HookSpec>) -> Result<Box<dyn Hooks>> {
    if specs.is_empty() {
        return Ok(Box::new(NoHooks));
    }
    let hooks = match load_all(req, HookEngine::cached_only()?, &specs) {
        Err((hook, Error::NotCached)) => {
            log::debug!("hook {hook} is not cached yet: starting the engine with its compiler");
            load_all(req, HookEngine::new()?, &specs)
        }
        other => other,
    };
    let hooks = hooks.map_err(|(hook, e)| Error::Hook { hook, source: Box::new(e) })?;
    log::debug!("step: {} hooks loaded", hooks.hooks.len());
    Ok(Box::new(hooks))
}

fn load_all(req: &Request, engine: HookEngine, specs: &[manifest::HookSpec]) -> std::result::Result<WasmHooks, (String, Error)> {
    let cache = engine.node_cache(&req.conf.state_dir());
    let mut hooks: Vec<LoadedHook> = Vec::new();
    for spec in specs {
        let twin = hooks.iter().find(|h| h.spec.module == spec.module);
        let hook = match twin {
            Some(t) => t.with_spec(spec.clone()),
            None => engine.load(spec.clone(), &cache).map_err(|e| (spec.name.clone(), e))?,
        };
        hooks.push(hook);
    }
    Ok(WasmHooks { hooks, _engine: engine, meta: std::sync::OnceLock::new() })
}

/// As root, a hook's manifest and module are run only when nobody but root could have written them (or a
/// directory above them): anyone who could would be running code, and rules, as root on every pod.
/// `insecureHookFiles` turns this off, for development only.
fn check_trust(req: &Request, specs: &[manifest::HookSpec]) -> Result<()> {
    if req.conf.insecure_hook_files {
        return Ok(());
    }
    if let Some(m) = &req.conf.hooks_manifest {
        trusted_file(m, "the hooks manifest")?;
    }
    for spec in specs {
        trusted_file(&spec.module, &format!("hook {}'s module", spec.name))?;
    }
    Ok(())
}

/// `path` may be run by root (always true when we are not root: the kernel's permissions decide then).
fn trusted_file(path: &std::path::Path, what: &str) -> std::result::Result<(), Error> {
    if !crate::trust::Owners::current().is_root() {
        return Ok(());
    }
    crate::trust::check_file(path, crate::trust::Owners::root_only()).map_err(|source| Error::Untrusted { what: what.into(), source })
}

/// One hook of a manifest, checked as a node would use it: file present and trusted, pin, contract version,
/// compiled (into `cache`), and its config accepted by its own `validate-config`.
pub struct Checked {
    pub name: String,
    /// "contract 0.2.0, compiled in 71.2 ms, config accepted" on success; why not otherwise.
    pub outcome: std::result::Result<String, String>,
}

/// Every hook of `specs` (a manifest), each as `Checked`: what `wasmcni hook check` prints and what installers
/// and the node agent run before a hook set can reach a pod.
pub fn check_all(engine: &HookEngine, cache: &cache::Cache, specs: Vec<manifest::HookSpec>) -> Vec<Checked> {
    specs
        .into_iter()
        .map(|spec| {
            let name = spec.name.clone();
            let outcome = (|| {
                spec.check_module().map_err(|e| e.to_string())?;
                trusted_file(&spec.module, "the module").map_err(|e| e.to_string())?;
                let config = spec.config_json();
                let start = std::time::Instant::now();
                let hook = engine.load(spec, cache).map_err(|e| e.to_string())?;
                let how = match hook.source() {
                    cache::Source::Compiled => format!("compiled in {:.1} ms", start.elapsed().as_secs_f64() * 1e3),
                    cache::Source::Cached => "already cached".to_string(),
                };
                hook.validate_config(&config).map_err(|f| format!("its config is refused: {f}"))?;
                Ok(format!("contract {}, {how}, config accepted", hook.contract()))
            })();
            Checked { name, outcome }
        })
        .collect()
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

impl WasmHooks {
    /// What the node agent knows of the pod, read once per call of the plugin. When a hook of `stage` needs
    /// it, ADD waits for it up to the longest such hook's `pod_metadata_wait_ms`.
    fn pod_meta(&self, req: &Request, stage: Stage) -> Option<&podmeta::PodMeta> {
        self.meta
            .get_or_init(|| {
                let (ns, name) = (req.arg("K8S_POD_NAMESPACE")?, req.arg("K8S_POD_NAME")?);
                let dir = req.conf.pod_metadata_dir();
                let wait = self.at(stage).filter(|h| h.spec.needs_pod_metadata()).map(|h| h.spec.pod_metadata_wait_ms).max();
                match wait {
                    Some(ms) => podmeta::wait_for(&dir, ns, name, req.arg("K8S_POD_UID"), std::time::Duration::from_millis(ms)),
                    None => podmeta::read(&dir, ns, name, req.arg("K8S_POD_UID")),
                }
            })
            .as_ref()
    }

    /// The hooks of `stage` that may run: one that needs the pod's metadata fails (per its policy) when it is
    /// not there.
    fn runnable<'a>(&'a self, req: &Request, stage: Stage, name: &'static str) -> Result<Vec<&'a LoadedHook>> {
        let have = self.pod_meta(req, stage).is_some();
        let mut out = Vec::new();
        for h in self.at(stage) {
            if h.spec.needs_pod_metadata() && !have {
                let why = format!(
                    "it needs the pod's labels and annotations, and the node agent had none for {}/{} within {} ms",
                    req.arg("K8S_POD_NAMESPACE").unwrap_or("?"),
                    req.arg("K8S_POD_NAME").unwrap_or("?"),
                    h.spec.pod_metadata_wait_ms
                );
                policy(h, name, Failure::Unavailable(why))?;
                continue;
            }
            out.push(h);
        }
        Ok(out)
    }
}

impl Hooks for WasmHooks {
    fn pre_add(&self, req: &Request, mut plan: Plan, ipam: Option<&IpamConfig>) -> Result<Plan> {
        let hooks = self.runnable(req, Stage::PreAdd, "pre-add")?;
        let mut att = convert::attachment(req, self.pod_meta(req, Stage::PreAdd));
        for h in hooks {
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
        let hooks = self.runnable(req, Stage::PostAdd, "post-add")?;
        let wit_result = convert::result(result);
        let mut chains = Vec::new();
        let mut att = convert::attachment(req, self.pod_meta(req, Stage::PostAdd));
        for h in hooks {
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
        // DEL never waits: the pod may be long gone from the agent's view.
        let meta = self.meta.get_or_init(|| {
            let (ns, name) = (req.arg("K8S_POD_NAMESPACE")?, req.arg("K8S_POD_NAME")?);
            podmeta::read(&req.conf.pod_metadata_dir(), ns, name, req.arg("K8S_POD_UID"))
        });
        let mut att = convert::attachment(req, meta.as_ref());
        for h in self.at(Stage::Del) {
            if let Err(f) = h.del(convert::for_hook(&mut att, &h.spec)) {
                log::warn!("hook {} failed in del (ignored, DEL goes on): {f}", h.spec.name);
            }
        }
    }
}
