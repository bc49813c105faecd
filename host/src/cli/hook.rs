//! `wasmcni hook ...`: the hook tools for installers and hook authors.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::hooks::cache::Source;
use crate::hooks::manifest::{self, HookSpec, Stage};
use crate::hooks::runtime::{self, LoadedHook};

#[derive(Subcommand)]
pub enum HookCmd {
    /// Precompile hooks into the cache ahead of time (for installers), from a manifest or module paths.
    Compile {
        /// A hooks manifest (.toml) or component files (.wasm).
        inputs: Vec<PathBuf>,
        /// The plugin's state dir; the cache lives in its hook-cache/ folder.
        #[arg(long, default_value = crate::cni::conf::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
}

pub fn run(cmd: HookCmd) -> anyhow::Result<i32> {
    match cmd {
        HookCmd::Compile { inputs, state_dir } => compile(&inputs, &state_dir),
    }
}

fn compile(inputs: &[PathBuf], state_dir: &Path) -> anyhow::Result<i32> {
    if inputs.is_empty() {
        bail!("name a hooks manifest or one or more .wasm components");
    }
    let cache = runtime::cache_for(state_dir).map_err(anyhow::Error::msg)?;
    let mut specs = Vec::new();
    for input in inputs {
        if input.extension().is_some_and(|e| e == "toml") {
            specs.extend(manifest::load(Some(input), None)?);
        } else {
            let name = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            specs.push(HookSpec {
                name,
                module: input.canonicalize().with_context(|| format!("{}", input.display()))?,
                sha256: None,
                stages: vec![Stage::PreAdd],
                order: 0,
                on_error: Default::default(),
                timeout_ms: manifest::DEFAULT_TIMEOUT_MS,
                memory_mb: manifest::DEFAULT_MEMORY_MB,
                mode: Default::default(),
                config: None,
            });
        }
    }
    for spec in specs {
        let (name, module) = (spec.name.clone(), spec.module.clone());
        let start = std::time::Instant::now();
        let hook = LoadedHook::load(spec, &cache).map_err(|e| anyhow::anyhow!("hook {name}: {e}"))?;
        let what = match hook.source {
            Source::Compiled => "compiled",
            Source::Cached => "already cached",
        };
        println!("{name}: {} {what} in {:.1} ms", module.display(), start.elapsed().as_secs_f64() * 1e3);
    }
    println!("cache: {}", cache.dir().display());
    Ok(0)
}
