//! The wasm engine hooks run on, owned by whoever runs hooks (one per process on the per-pod path): the
//! engine, the linker with our one import and WASI with nothing behind it, and the watchdog that ends a
//! call at its deadline. Nothing here is global: a failure to start is the caller's to report, and two
//! engines never share state.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::cache::{Cache, Source};
use super::call::LoadedHook;
use super::manifest::HookSpec;
use super::Error;

/// The current contract (hooks-sdk/wit): what the host's own types are.
pub mod current {
    wasmtime::component::bindgen!({
        path: "../hooks-sdk/wit",
        world: "hook",
    });
}

/// Contract 0.1.0, frozen: components built against it still load; compat.rs converts at the boundary.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "wit-compat/0.1.0",
        world: "hook",
    });
}

pub use self::current::wasmcni::hook::types as wit;
pub(super) use self::current::{Hook, HookPre};

/// The contract version this host implements (the WIT package's), and the older ones it still runs.
pub const CONTRACT: &str = "0.2.0";
pub const STILL_RUNS: &[&str] = &["0.1.0"];

pub struct HookEngine {
    pub(super) engine: Engine,
    /// False for the per-pod engine, which has no compiler and loads only what the cache holds.
    compiles: bool,
    /// The cache key of what this engine's settings compile, the same with or without a compiler.
    cache_key: String,
    /// Defining WASI takes ~0.25 ms in a fresh process, so a thread of its own builds this linker while the
    /// first component loads; `linker()` waits for it.
    linker: std::sync::OnceLock<Linker<HostState>>,
    building: Mutex<Option<std::thread::JoinHandle<Result<Linker<HostState>, Error>>>>,
    /// One linker per contract version: both define a world-level `log`, with their own types. The 0.1.0
    /// one is built only when such a component loads.
    linker_v0_1: std::sync::OnceLock<Linker<HostState>>,
    pub(super) watchdog: Watchdog,
}

fn engine_err(e: wasmtime::Error) -> Error {
    Error::Engine(format!("{e:#}"))
}

/// A linker with WASI (and nothing behind it) defined; each contract adds its own `log` to it.
fn wasi_linker(engine: &Engine) -> Result<Linker<HostState>, Error> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_err)?;
    Ok(linker)
}

/// Both kinds of engine run on these settings; a component compiled by one loads in the other.
fn config(compiler: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // No .eh_frame for wasm code: only outside unwinders (gdb, perf) use it, and registering it costs
    // 0.2 ms per load of an interpreter-sized component (measured on the Python example).
    config.native_unwind_info(false);
    config.enable_compiler(compiler);
    config
}

fn current_linker(engine: &Engine) -> Result<Linker<HostState>, Error> {
    let mut linker = wasi_linker(engine)?;
    Hook::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
    Ok(linker)
}

/// The cache key: wasmtime's compatibility hash of an engine without a compiler (with one, the hash also
/// covers the compiler's own flags, which an engine without one cannot know).
fn cache_key(engine: &Engine) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

impl HookEngine {
    /// An engine that compiles what the cache lacks: for the tools, STATUS and a pod whose hooks are not
    /// all cached yet.
    pub fn new() -> Result<Self, Error> {
        let engine = Engine::new(&config(true)).map_err(engine_err)?;
        let key = cache_key(&Engine::new(&config(false)).map_err(engine_err)?);
        Self::start(engine, true, key)
    }

    /// An engine without a compiler, which loads only from the cache: what a pod's ADD and DEL start first.
    /// Building cranelift's settings (and probing the CPU for them) is ~0.2 ms of a fresh process's engine
    /// start; a pod whose hooks are all cached never needs them.
    pub fn cached_only() -> Result<Self, Error> {
        let engine = Engine::new(&config(false)).map_err(engine_err)?;
        let key = cache_key(&engine);
        Self::start(engine, false, key)
    }

    fn start(engine: Engine, compiles: bool, cache_key: String) -> Result<Self, Error> {
        let for_linker = engine.clone();
        let building = crate::threads::spawn("hook-linker", move || current_linker(&for_linker))
            .map_err(|e| Error::Engine(format!("cannot start a thread: {e}")))?;
        let watchdog = Watchdog::start(&engine)?;
        Ok(HookEngine {
            engine,
            compiles,
            cache_key,
            linker: std::sync::OnceLock::new(),
            building: Mutex::new(Some(building)),
            linker_v0_1: std::sync::OnceLock::new(),
            watchdog,
        })
    }

    /// The current contract's linker, waiting for its thread the first time.
    fn linker(&self) -> Result<&Linker<HostState>, Error> {
        if let Some(l) = self.linker.get() {
            return Ok(l);
        }
        // Held while joining: a second caller waits for the same thread, then finds the linker set.
        let mut building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if self.linker.get().is_none() {
            let built = match building.take() {
                Some(h) => h.join().unwrap_or_else(|_| Err(Error::Engine("the thread defining the hook imports panicked".into())))?,
                // The thread failed for an earlier caller: try once more here.
                None => current_linker(&self.engine)?,
            };
            let _ = self.linker.set(built);
        }
        drop(building);
        Ok(self.linker.get().expect("set just above"))
    }

    fn linker_v0_1(&self) -> Result<&Linker<HostState>, Error> {
        if let Some(l) = self.linker_v0_1.get() {
            return Ok(l);
        }
        let mut linker = wasi_linker(&self.engine)?;
        v0_1::Hook::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s).map_err(engine_err)?;
        // Two threads may both build one; either is the same.
        Ok(self.linker_v0_1.get_or_init(|| linker))
    }

    pub fn cache_key(&self) -> &str {
        &self.cache_key
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The node's cache, in a netconf's state dir.
    pub fn node_cache(&self, state_dir: &Path) -> Cache {
        Cache::open(state_dir.join("hook-cache"), self.cache_key())
    }

    /// The invoking user's own cache for the hook tools (`hook test`, `hook run`, the SDK's component test):
    /// `$XDG_CACHE_HOME/wasmcni/hook-cache` or `~/.cache/wasmcni/hook-cache`, never a shared temp dir.
    /// Without either variable, compiled code stays in memory.
    pub fn user_cache(&self) -> Cache {
        let absolute = |v: std::ffi::OsString| Some(std::path::PathBuf::from(v)).filter(|p| p.is_absolute());
        let base = std::env::var_os("XDG_CACHE_HOME")
            .and_then(absolute)
            .or_else(|| std::env::var_os("HOME").and_then(absolute).map(|h| h.join(".cache")));
        match base {
            Some(base) => Cache::open(base.join("wasmcni").join("hook-cache"), self.cache_key()),
            None => Cache::in_memory(self.cache_key()),
        }
    }

    /// Checks the sha256 pin and the contract version, then loads the component through the cache into a
    /// pre-instantiated form.
    pub fn load(&self, spec: HookSpec, cache: &Cache) -> Result<LoadedHook, Error> {
        let read = |e: std::io::Error| Error::Read { path: spec.module.clone(), source: e };
        let sha = cache.module_sha256(&spec.module).map_err(read)?;
        if let Some(pin) = &spec.sha256 {
            if !pin.eq_ignore_ascii_case(&sha) {
                return Err(Error::PinMismatch { module: spec.module.clone(), pinned: pin.clone(), actual: sha });
            }
        }
        let (component, source) = if self.compiles {
            cache.load(&self.engine, &spec.module, &sha)?
        } else {
            (cache.load_cached(&self.engine, &sha).ok_or(Error::NotCached)?, Source::Cached)
        };
        let not_a_hook = |e: wasmtime::Error| Error::NotAHook { module: spec.module.clone(), detail: format!("{e:#}") };
        let pre = match super::contract::check(&self.engine, &component, &spec.module)? {
            super::contract::Version::Current => {
                self.linker()?.instantiate_pre(&component).and_then(HookPre::new).map(super::call::Pre::Current).map_err(not_a_hook)?
            }
            super::contract::Version::V0_1 => self
                .linker_v0_1()?
                .instantiate_pre(&component)
                .and_then(v0_1::HookPre::new)
                .map(super::call::Pre::V0_1)
                .map_err(not_a_hook)?,
        };
        Ok(LoadedHook::new(spec, pre, source, self.watchdog.clone()))
    }
}

/// What a store carries for one call.
pub struct HostState {
    pub(super) hook: String,
    pub(super) stage: &'static str,
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: Limits,
    /// When the call must end (checked whenever the watchdog bumps the epoch).
    pub(super) deadline: Instant,
    pub(super) log: super::sanitize::LogBudget,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wit::Host for HostState {}
impl v0_1::wasmcni::hook::types::Host for HostState {}

impl current::HookImports for HostState {
    fn log(&mut self, level: wit::Level, message: String) {
        let level = match level {
            wit::Level::Error => log::Level::Error,
            wit::Level::Warn => log::Level::Warn,
            wit::Level::Info => log::Level::Info,
            wit::Level::Debug => log::Level::Debug,
        };
        self.log.write(level, &self.hook, self.stage, &message);
    }
}

impl v0_1::HookImports for HostState {
    fn log(&mut self, level: v0_1::wasmcni::hook::types::Level, message: String) {
        current::HookImports::log(self, super::compat::level(level), message)
    }
}

/// The store's limits, remembering whether a memory was refused: a trap after that is the memory limit,
/// told apart by what happened rather than by the wording of wasmtime's error.
pub(super) struct Limits {
    pub inner: StoreLimits,
    pub memory_refused: bool,
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

/// Ends calls at their deadlines by bumping the engine's epoch at the earliest armed one; each store then
/// checks its own deadline (`epoch_deadline_callback`), so one call's deadline never ends another's. Its
/// thread sleeps on a condition variable while no call is armed: nothing ticks between hook calls.
#[derive(Clone)]
pub struct Watchdog {
    shared: Arc<(Mutex<Armed>, Condvar)>,
}

#[derive(Default)]
struct Armed {
    deadlines: Vec<(u64, Instant)>,
    next_id: u64,
    stop: bool,
}

/// Disarms its deadline when the call is over.
pub struct Armed1 {
    watchdog: Watchdog,
    id: u64,
}

impl Drop for Armed1 {
    fn drop(&mut self) {
        let (lock, cv) = &*self.watchdog.shared;
        let mut a = lock.lock().unwrap_or_else(|p| p.into_inner());
        a.deadlines.retain(|(id, _)| *id != self.id);
        cv.notify_one();
    }
}

impl Watchdog {
    fn start(engine: &Engine) -> Result<Self, Error> {
        let shared: Arc<(Mutex<Armed>, Condvar)> = Arc::default();
        let weak: Weak<(Mutex<Armed>, Condvar)> = Arc::downgrade(&shared);
        let engine = engine.weak();
        std::thread::Builder::new()
            .name("hook-watchdog".into())
            .spawn(move || Self::run(weak, engine))
            .map_err(|e| Error::Engine(format!("cannot start the hook watchdog: {e}")))?;
        Ok(Watchdog { shared })
    }

    fn run(shared: Weak<(Mutex<Armed>, Condvar)>, engine: wasmtime::EngineWeak) {
        let Some(shared) = shared.upgrade() else { return };
        let (lock, cv) = &*shared;
        let mut a = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if a.stop {
                return;
            }
            let earliest = a.deadlines.iter().map(|(_, d)| *d).min();
            a = match earliest {
                None => cv.wait(a).unwrap_or_else(|p| p.into_inner()),
                Some(d) if Instant::now() >= d => {
                    match engine.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => return,
                    }
                    // Expired calls are interrupted; forget them so the next earliest counts.
                    let now = Instant::now();
                    a.deadlines.retain(|(_, d)| *d > now);
                    a
                }
                Some(d) => cv.wait_timeout(a, d - Instant::now()).unwrap_or_else(|p| p.into_inner()).0,
            };
        }
    }

    /// Arms `deadline` for one call until the returned value is dropped.
    pub fn arm(&self, deadline: Instant) -> Armed1 {
        let (lock, cv) = &*self.shared;
        let mut a = lock.lock().unwrap_or_else(|p| p.into_inner());
        a.next_id += 1;
        let id = a.next_id;
        a.deadlines.push((id, deadline));
        cv.notify_one();
        Armed1 { watchdog: self.clone(), id }
    }
}

impl Drop for HookEngine {
    fn drop(&mut self) {
        let (lock, cv) = &*self.watchdog.shared;
        lock.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        cv.notify_one();
    }
}

impl LoadedHook {
    /// Exposed for the CLI's `hook compile` output.
    pub fn source(&self) -> Source {
        self.source
    }
}
