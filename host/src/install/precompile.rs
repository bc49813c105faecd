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
        let specs = crate::hooks::manifest::load(Some(manifest), None).map_err(|e| e.to_string())?;
        let engine = crate::hooks::engine::HookEngine::new().map_err(|e| e.to_string())?;
        let cache = engine.node_cache(state_dir);
        // What `wasmcni hook check` does: compiled into the cache, and each config accepted by its hook.
        let mut lines = Vec::new();
        for c in crate::hooks::check_all(&engine, &cache, specs) {
            match c.outcome {
                Ok(what) => lines.push(format!("hook {}: {what}", c.name)),
                Err(why) => return Err(format!("hook {}: {why}", c.name)),
            }
        }
        Ok(lines)
    }
}
