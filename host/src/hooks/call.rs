//! Calling a loaded hook: a fresh store per call with a memory limit and a deadline, instantiated from the
//! pre-instantiated component. WASI is there because components built from ordinary languages import it,
//! but with nothing behind it: no files, no sockets, no env; stdout and stderr are captured into our log.
//! A failure says why: timeout, memory limit, stack overflow, a trap with the hook's last words.

use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::WasiCtx;

use super::cache::Source;
use super::compat;
use super::engine::{v0_1, wit, Hook, HookPre, HostState, Limits, Watchdog};
use super::manifest::HookSpec;
use super::sanitize::{bounded, last_words, LogBudget, MAX_MESSAGE};

/// A component pre-instantiated through the bindings of the contract it was built against.
#[derive(Clone)]
pub enum Pre {
    Current(HookPre<HostState>),
    V0_1(v0_1::HookPre<HostState>),
}

impl Pre {
    fn engine(&self) -> &wasmtime::Engine {
        match self {
            Pre::Current(p) => p.engine(),
            Pre::V0_1(p) => p.engine(),
        }
    }
}

/// An instance of either version.
enum Instance {
    Current(Hook),
    V0_1(v0_1::Hook),
}

/// Captured hook stdout/stderr per call. A hook writing more gets a write error (a Rust hook then panics),
/// so the cap is generous; only the first part reaches the log (sanitize::MAX_LOG_PER_CALL).
const OUTPUT_CAP: usize = 1 << 20;

/// Why a call failed; the hook's `on_error` policy decides what happens next.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The hook returned an error value.
    Returned(String),
    /// It ran past its timeout.
    Timeout(u64),
    /// It tried to grow memory past its limit.
    OutOfMemory(u64),
    /// It used up the wasm stack (runaway recursion).
    StackOverflow,
    /// Any other trap, with what the hook said last.
    Trap(String),
    /// The host refused what it returned.
    Invalid(String),
    /// It could not run: what it needs is not there.
    Unavailable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Returned(m) => write!(f, "returned an error: {m}"),
            Failure::Timeout(ms) => write!(f, "timed out after {ms} ms"),
            Failure::OutOfMemory(mb) => write!(f, "exceeded its memory limit of {mb} MiB"),
            Failure::StackOverflow => write!(f, "overflowed its stack (runaway recursion?)"),
            Failure::Trap(m) => write!(f, "trapped: {m}"),
            Failure::Invalid(m) => write!(f, "returned an invalid answer: {m}"),
            Failure::Unavailable(m) => write!(f, "could not run: {m}"),
        }
    }
}

/// A hook ready to be called: its spec and its pre-instantiated component.
pub struct LoadedHook {
    pub spec: HookSpec,
    pre: Pre,
    pub(super) source: Source,
    watchdog: Watchdog,
}

impl LoadedHook {
    pub(super) fn new(spec: HookSpec, pre: Pre, source: Source, watchdog: Watchdog) -> Self {
        LoadedHook { spec, pre, source, watchdog }
    }

    /// Another hook of the manifest with the same module: the component is mapped and linked once.
    pub fn with_spec(&self, spec: HookSpec) -> Self {
        LoadedHook { spec, pre: self.pre.clone(), source: self.source, watchdog: self.watchdog.clone() }
    }

    fn call<T>(
        &self,
        stage: &'static str,
        f: impl FnOnce(&Instance, &mut Store<HostState>) -> wasmtime::Result<Result<T, wit::HookError>>,
    ) -> Result<T, Failure> {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAP);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAP);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        // memory_size caps each linear memory (a component normally has one); the counts keep a hook from
        // multiplying memories or instances to get around it.
        let limits = StoreLimitsBuilder::new()
            .memory_size((self.spec.memory_mb as usize) << 20)
            .memories(16)
            .tables(64)
            .instances(512)
            .trap_on_grow_failure(true)
            .build();
        let deadline = Instant::now() + Duration::from_millis(self.spec.timeout_ms);
        let state = HostState {
            hook: self.spec.name.clone(),
            stage,
            wasi,
            table: ResourceTable::new(),
            limits: Limits { inner: limits, memory_refused: false },
            deadline,
            log: LogBudget::default(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        // The watchdog bumps the epoch at the earliest armed deadline; each store decides for itself.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|s| {
            if Instant::now() >= s.data().deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        let armed = self.watchdog.arm(deadline);
        let instance = match &self.pre {
            Pre::Current(p) => p.instantiate(&mut store).map(Instance::Current),
            Pre::V0_1(p) => p.instantiate(&mut store).map(Instance::V0_1),
        };
        let outcome = instance.and_then(|hook| f(&hook, &mut store));
        drop(armed);
        let stderr_text = String::from_utf8_lossy(&stderr.contents()).into_owned();
        {
            let state = store.data_mut();
            let (hook, stage) = (state.hook.clone(), state.stage);
            state.log.write(log::Level::Info, &hook, &format!("{stage} stdout"), &String::from_utf8_lossy(&stdout.contents()));
            state.log.write(log::Level::Info, &hook, &format!("{stage} stderr"), &stderr_text);
        }
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failure::Returned(bounded(&e.message, MAX_MESSAGE))),
            Err(e) => Err(self.explain(e, store.data().limits.memory_refused, &stderr_text)),
        }
    }

    fn explain(&self, e: wasmtime::Error, memory_refused: bool, stderr: &str) -> Failure {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => return Failure::Timeout(self.spec.timeout_ms),
            Some(Trap::StackOverflow) => return Failure::StackOverflow,
            _ if memory_refused => return Failure::OutOfMemory(self.spec.memory_mb),
            _ => {}
        }
        // wasmtime's text is "error while executing at wasm backtrace: ..." with the trap as its cause; the
        // cause, and what the hook said last (a panic message, a Python exception), are what tell why.
        let reason = match e.downcast_ref::<Trap>() {
            Some(Trap::UnreachableCodeReached) => "reached unreachable code".to_string(),
            Some(t) => t.to_string(),
            None => e.root_cause().to_string(),
        };
        let reason = reason.lines().next().unwrap_or_default().to_string();
        match last_words(stderr) {
            Some(words) => Failure::Trap(bounded(&format!("{words} ({reason})"), MAX_MESSAGE)),
            None => Failure::Trap(bounded(&reason, MAX_MESSAGE)),
        }
    }

    pub fn pre_add(&self, att: &wit::Attachment, plan: &wit::Plan) -> Result<wit::Plan, Failure> {
        self.call("pre-add", |h, s| match h {
            Instance::Current(h) => h.call_pre_add(s, att, plan),
            Instance::V0_1(h) => {
                let out = h.call_pre_add(s, &compat::attachment(att), &compat::plan_down(plan))?;
                Ok(out.map(compat::plan_up).map_err(compat::error_up))
            }
        })
    }

    pub fn post_add(&self, att: &wit::Attachment, result: &wit::AddResult) -> Result<Vec<wit::Rule>, Failure> {
        self.call("post-add", |h, s| match h {
            Instance::Current(h) => h.call_post_add(s, att, result),
            Instance::V0_1(h) => {
                let out = h.call_post_add(s, &compat::attachment(att), &compat::result_down(result))?;
                Ok(out.map(|rules| rules.into_iter().map(compat::rule_up).collect()).map_err(compat::error_up))
            }
        })
    }

    pub fn del(&self, att: &wit::Attachment) -> Result<(), Failure> {
        self.call("del", |h, s| match h {
            Instance::Current(h) => h.call_del(s, att),
            Instance::V0_1(h) => Ok(h.call_del(s, &compat::attachment(att))?.map_err(compat::error_up)),
        })
    }

    /// The hook's own check of its config (JSON text). A 0.1.0 component has none: its config passes.
    pub fn validate_config(&self, config: &str) -> Result<(), Failure> {
        match &self.pre {
            Pre::V0_1(_) => Ok(()),
            Pre::Current(_) => self.call("validate-config", |h, s| match h {
                Instance::Current(h) => h.call_validate_config(s, config),
                Instance::V0_1(_) => Ok(Ok(())),
            }),
        }
    }

    /// The contract version the component was built against.
    pub fn contract(&self) -> &'static str {
        match self.pre {
            Pre::Current(_) => super::engine::CONTRACT,
            Pre::V0_1(_) => "0.1.0",
        }
    }
}
