//! Running hook components: one engine per process, a fresh store per call with a memory limit and an epoch
//! deadline, instantiated from a pre-instantiated form. WASI is there because components built from
//! ordinary languages import it, but with nothing behind it: no files, no sockets, no env; stdout and
//! stderr are captured into our log.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::cache::{Cache, Source};
use super::manifest::HookSpec;

wasmtime::component::bindgen!({
    path: "../hooks-sdk/wit",
    world: "hook",
});

pub use self::wasmcni::hook::types as wit;

/// Epoch ticks are this long; a hook's timeout is rounded up to whole ticks.
const TICK: Duration = Duration::from_millis(1);
/// Captured hook stdout/stderr per call. A hook writing more gets a write error (a Rust hook then panics),
/// so the cap is generous; the log keeps what was written.
const OUTPUT_CAP: usize = 1 << 20;

pub struct HostState {
    hook: String,
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
}

/// The store's limits, remembering whether a memory was refused: a trap after that is the memory limit,
/// told apart by what happened rather than by the wording of wasmtime's error.
struct Limits {
    inner: StoreLimits,
    memory_refused: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        self.memory_refused |= !matches!(allowed, Ok(true));
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_refused = true;
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit::Host for HostState {}

impl HookImports for HostState {
    fn log(&mut self, level: wit::Level, message: String) {
        let level = match level {
            wit::Level::Error => log::Level::Error,
            wit::Level::Warn => log::Level::Warn,
            wit::Level::Info => log::Level::Info,
            wit::Level::Debug => log::Level::Debug,
        };
        log::log!(level, "hook {}: {message}", self.hook);
    }
}

/// The process-wide engine and linker, and the ticker that drives epoch deadlines.
pub struct Runtime {
    pub engine: Engine,
    linker: Linker<HostState>,
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

impl Runtime {
    pub fn get() -> Result<&'static Runtime, String> {
        RUNTIME.get_or_init(Runtime::new).as_ref().map_err(Clone::clone)
    }

    fn new() -> Result<Runtime, String> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| format!("cannot create the wasm engine: {e:#}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| format!("{e:#}"))?;
        Hook::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(|e| format!("{e:#}"))?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        Ok(Runtime { engine, linker })
    }
}

/// Why a call failed; the hook's `on_error` policy decides what happens next.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The hook returned an error value.
    Returned(String),
    /// It ran past its timeout.
    Timeout(u64),
    /// It tried to grow memory past its limit.
    OutOfMemory(u64),
    /// Any other trap, or an instantiation problem.
    Trap(String),
    /// The host refused what it returned.
    Invalid(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Returned(m) => write!(f, "returned an error: {m}"),
            Failure::Timeout(ms) => write!(f, "timed out after {ms} ms"),
            Failure::OutOfMemory(mb) => write!(f, "exceeded its memory limit of {mb} MiB"),
            Failure::Trap(m) => write!(f, "trapped: {m}"),
            Failure::Invalid(m) => write!(f, "returned an invalid answer: {m}"),
        }
    }
}

/// A hook ready to be called: its spec and its pre-instantiated component.
pub struct LoadedHook {
    pub spec: HookSpec,
    pre: HookPre<HostState>,
    pub source: Source,
}

impl LoadedHook {
    /// Checks the sha256 pin, then loads the component through the cache.
    pub fn load(spec: HookSpec, cache: &Cache) -> Result<Self, String> {
        Runtime::get()?;
        let sha = cache.module_sha256(&spec.module).map_err(|e| format!("cannot read {}: {e}", spec.module.display()))?;
        if let Some(pin) = &spec.sha256 {
            if !pin.eq_ignore_ascii_case(&sha) {
                return Err(format!(
                    "sha256 mismatch for {}: the manifest pins {pin}, the file is {sha}; refusing to run it",
                    spec.module.display()
                ));
            }
        }
        // Several hooks may share a module (one component, different configs): map and link it once.
        static LOADED: std::sync::Mutex<Vec<(String, HookPre<HostState>, Source)>> = std::sync::Mutex::new(Vec::new());
        let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, pre, source)) = loaded.iter().find(|(s, ..)| *s == sha) {
            return Ok(LoadedHook { spec, pre: pre.clone(), source: *source });
        }
        let hook = Self::load_from_cache(spec, cache, sha.clone())?;
        loaded.push((sha, hook.pre.clone(), hook.source));
        Ok(hook)
    }

    /// Loads through the on-disk cache only (no per-process sharing): what a single hook costs a process.
    pub fn load_from_cache(spec: HookSpec, cache: &Cache, sha: String) -> Result<Self, String> {
        let rt = Runtime::get()?;
        let (component, source) = cache.load(&rt.engine, &spec.module, &sha)?;
        let pre = rt
            .linker
            .instantiate_pre(&component)
            .and_then(HookPre::new)
            .map_err(|e| format!("{} does not implement the wasmcni:hook world: {e:#}", spec.module.display()))?;
        Ok(LoadedHook { spec, pre, source })
    }

    fn call<T>(&self, f: impl FnOnce(&Hook, &mut Store<HostState>) -> wasmtime::Result<Result<T, wit::HookError>>) -> Result<T, Failure> {
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
        let limits = Limits { inner: limits, memory_refused: false };
        let state = HostState { hook: self.spec.name.clone(), wasi, table: ResourceTable::new(), limits };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.spec.timeout_ms.div_ceil(TICK.as_millis() as u64) + 1);
        store.epoch_deadline_trap();

        let outcome = self.pre.instantiate(&mut store).and_then(|hook| f(&hook, &mut store));
        for (stream, pipe) in [("stdout", &stdout), ("stderr", &stderr)] {
            let text = pipe.contents();
            for line in String::from_utf8_lossy(&text).lines().filter(|l| !l.trim().is_empty()) {
                log::info!("hook {} {stream}: {line}", self.spec.name);
            }
        }
        match outcome {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(Failure::Returned(e.message)),
            Err(e) => Err(match self.classify(e, store.data().limits.memory_refused) {
                // What the guest said last before trapping (a panic message, a Python exception) is the
                // most useful part of a trap: put it in the error, not only in the log.
                Failure::Trap(m) => match String::from_utf8_lossy(&stderr.contents()).lines().rev().find(|l| !l.trim().is_empty()) {
                    Some(last) => Failure::Trap(format!("{m} (stderr: {})", last.trim())),
                    None => Failure::Trap(m),
                },
                other => other,
            }),
        }
    }

    fn classify(&self, e: wasmtime::Error, memory_refused: bool) -> Failure {
        if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
            return Failure::Timeout(self.spec.timeout_ms);
        }
        if memory_refused {
            return Failure::OutOfMemory(self.spec.memory_mb);
        }
        Failure::Trap(format!("{e:#}").lines().next().unwrap_or_default().to_string())
    }

    pub fn pre_add(&self, att: &wit::Attachment, plan: &wit::Plan) -> Result<wit::Plan, Failure> {
        self.call(|h, s| h.call_pre_add(s, att, plan))
    }

    pub fn post_add(&self, att: &wit::Attachment, result: &wit::AddResult) -> Result<Vec<wit::Rule>, Failure> {
        self.call(|h, s| h.call_post_add(s, att, result))
    }

    pub fn del(&self, att: &wit::Attachment) -> Result<(), Failure> {
        self.call(|h, s| h.call_del(s, att))
    }
}

/// The node's cache, in a netconf's state dir.
pub fn cache_for(state_dir: &Path) -> Result<Cache, String> {
    Ok(Cache::open(state_dir.join("hook-cache"), &Runtime::get()?.engine))
}

/// The invoking user's own cache for the hook tools (`hook test`, `hook run`, the SDK's component test):
/// `$XDG_CACHE_HOME/wasmcni/hook-cache` or `~/.cache/wasmcni/hook-cache`, never a shared temp dir. Without
/// either variable, compiled code stays in memory.
pub fn user_cache() -> Result<Cache, String> {
    let engine = &Runtime::get()?.engine;
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| Path::new(v).is_absolute())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| Path::new(v).is_absolute()).map(|h| Path::new(&h).join(".cache")));
    Ok(match base {
        Some(base) => Cache::open(base.join("wasmcni").join("hook-cache"), engine),
        None => Cache::in_memory(engine),
    })
}
