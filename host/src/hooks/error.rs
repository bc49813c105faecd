//! What can go wrong with hooks, as one error type: loading them (engine, files, pins, contract) and
//! running them under a policy that fails the operation.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start the wasm engine: {0}")]
    Engine(String),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("sha256 mismatch for {}: the manifest pins {pinned}, the file is {actual}; refusing to run it", module.display())]
    PinMismatch { module: PathBuf, pinned: String, actual: String },
    #[error("{} is not a valid hook component: {detail}", module.display())]
    NotAComponent { module: PathBuf, detail: String },
    #[error("{} does not implement the wasmcni:hook world: {detail}", module.display())]
    NotAHook { module: PathBuf, detail: String },
    #[error("{} was built against {found}; this plugin speaks {speaks}: rebuild the hook with a matching SDK", module.display())]
    Contract { module: PathBuf, found: String, speaks: String },
    /// Only from an engine without a compiler: the caller starts one that compiles.
    #[error("not in the hook cache")]
    NotCached,
    #[error("{} changed while it was being loaded", .0.display())]
    Changed(PathBuf),
    #[error("refusing {what}: {source} (fix its owner or mode; \"insecureHookFiles\": true allows it for development)")]
    Untrusted { what: String, source: crate::trust::Untrusted },
    /// A hook's own failure under `on_error = "fail"`.
    #[error("hook {hook} failed in {stage}: {failure}")]
    Failed { hook: String, stage: &'static str, failure: super::call::Failure },
    /// Loading one hook of a manifest failed.
    #[error("hook {hook}: {source}")]
    Hook { hook: String, source: Box<Error> },
}
