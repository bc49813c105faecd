//! Hooks compiled into the node's cache before the conflist names them, so the first pod does not pay for
//! cranelift. Behind a trait: install's own tests use a fake, the real one is the plugin's hook library.

use std::path::Path;

pub trait Precompile {
    /// Loads every hook of `manifest` through the cache under `state_dir` (compiling what is not there);
    /// returns one line per hook for people. Fails on the first hook that does not load.
    fn precompile(&self, manifest: &Path, state_dir: &Path) -> Result<Vec<String>, String>;
}

/// The same path `wasmcni hook compile` and every ADD take.
pub struct HookLibrary;

impl Precompile for HookLibrary {
    fn precompile(&self, manifest: &Path, state_dir: &Path) -> Result<Vec<String>, String> {
        use crate::hooks::cache::Source;
        use crate::hooks::manifest as hook_manifest;
        let specs = hook_manifest::load(Some(manifest), None).map_err(|e| e.to_string())?;
        let engine = crate::hooks::engine::HookEngine::new().map_err(|e| e.to_string())?;
        let cache = engine.node_cache(state_dir);
        let mut lines = Vec::new();
        for spec in specs {
            let name = spec.name.clone();
            spec.check_module().map_err(|e| e.to_string())?;
            let hook = engine.load(spec, &cache).map_err(|e| format!("hook {name}: {e}"))?;
            let how = match hook.source() {
                Source::Compiled => "compiled into the cache",
                Source::Cached => "already in the cache",
            };
            lines.push(format!("hook {name}: {how}"));
        }
        Ok(lines)
    }
}
