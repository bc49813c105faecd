//! `wasmcni hook ...`: the hook tools for installers and hook authors.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::hooks::fixture::{self, Fixture};
use crate::hooks::manifest::{self, HookSpec, Stage};
use crate::hooks::engine::HookEngine;

#[derive(Subcommand)]
pub enum HookCmd {
    /// Start a hook project: sources, unit tests, fixtures, build.sh and test.sh that pass as generated.
    ///
    /// Writes NAME/ (or --dir): the hook (it opens only the TCP ports its config lists), native unit tests,
    /// fixtures for `hook test`, build.sh and test.sh, a README, and this plugin's contract (wit/hook.wit;
    /// for Rust a copy of the SDK, which carries it).
    New {
        /// The hook's name: lowercase letters, digits and '-' (it names the package and the .wasm file).
        name: String,
        #[arg(long, value_enum)]
        lang: super::scaffold::Lang,
        /// Where to create the project (default: ./NAME); it may exist if it is empty.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Precompile hooks into the cache ahead of time (for installers), from a manifest or module paths.
    ///
    /// Each hook is checked as `hook check` does (pin, contract, its own validate-config) before it is
    /// cached; exits 1 when one fails.
    Compile {
        /// A hooks manifest (.toml) or component files (.wasm).
        inputs: Vec<PathBuf>,
        /// The plugin's state dir; the cache lives in its hook-cache/ folder.
        #[arg(long, default_value = crate::cni::conf::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
    /// Check a hooks manifest as a node would use it, without a pod.
    ///
    /// Every hook's module is there (and, as root, trusted), its sha256 pin and contract version match, it
    /// compiles, and its own validate-config accepts its config. Exits 1 with a line per problem, naming
    /// the hook and the field.
    Check {
        manifest: PathBuf,
        /// The cache to compile into (the node's: the plugin's state dir). Default: your own.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Run fixture files (TOML) against a built component, through the plugin's own runner.
    ///
    /// Prints ok or FAIL per file (a failure with a diff of expected and actual) and "N passed, M failed";
    /// exits 1 when any failed. Works for a hook written in any language; the format is docs/fixtures.md.
    Test {
        /// Fixture files, e.g. fixtures/*.toml.
        fixtures: Vec<PathBuf>,
        /// The built component (.wasm).
        #[arg(long)]
        module: PathBuf,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Call one stage of a component and print its answer as JSON (the debugging path).
    ///
    /// Inputs come from a fixture file (--input; its expect table is ignored), from the flags, or both.
    Run {
        /// The built component (.wasm).
        #[arg(long)]
        module: PathBuf,
        /// pre-add, post-add, del or validate-config; overrides the input file's stage.
        #[arg(long)]
        stage: Option<String>,
        /// A fixture file giving the inputs (its expect section is ignored).
        #[arg(long)]
        input: Option<PathBuf>,
        /// The hook's config as JSON, e.g. '{"ports": [80]}'.
        #[arg(long)]
        config: Option<String>,
        /// The pod's namespace (K8S_POD_NAMESPACE).
        #[arg(long)]
        namespace: Option<String>,
        /// The pod's name (K8S_POD_NAME).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

/// Where the hook tools keep compiled components between runs.
#[derive(clap::Args)]
pub struct CacheArgs {
    /// A cache directory of your own (created 0700; refused when others could write it or a directory
    /// above it). Default: ~/.cache/wasmcni/hook-cache.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Compile in memory and cache nothing.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl CacheArgs {
    fn open(&self, engine: &HookEngine) -> crate::hooks::cache::Cache {
        match (&self.cache_dir, self.no_cache) {
            (_, true) => crate::hooks::cache::Cache::in_memory(engine.cache_key()),
            (Some(dir), _) => crate::hooks::cache::Cache::open(dir.clone(), engine.cache_key()),
            (None, _) => engine.user_cache(),
        }
    }
}

pub fn run(cmd: HookCmd) -> anyhow::Result<i32> {
    match cmd {
        HookCmd::New { name, lang, dir } => super::scaffold::run(&name, lang, dir),
        HookCmd::Compile { inputs, state_dir } => compile(&inputs, &state_dir),
        HookCmd::Check { manifest, state_dir } => {
            let engine = HookEngine::new()?;
            let cache = match &state_dir {
                Some(dir) => engine.node_cache(dir),
                None => engine.user_cache(),
            };
            let specs = manifest::load(Some(&manifest), None)?;
            let mut failures = Vec::new();
            for c in crate::hooks::check_all(&engine, &cache, specs) {
                match c.outcome {
                    Ok(what) => println!("ok    hook {}: {what}", c.name),
                    Err(why) => failures.push(format!("hook {}: {why}", c.name)),
                }
            }
            if failures.is_empty() {
                return Ok(0);
            }
            // The reasons last, one per line: tools that show the last line show a reason.
            eprintln!("wasmcni: {} refused: {} hook(s) would fail a pod", manifest.display(), failures.len());
            for f in &failures {
                eprintln!("wasmcni: {f}");
            }
            Ok(1)
        }
        HookCmd::Test { fixtures, module, cache } => {
            if fixtures.is_empty() {
                bail!("name one or more fixture files");
            }
            let engine = HookEngine::new()?;
            let cache = cache.open(&engine);
            let module = module.canonicalize().with_context(|| format!("{}", module.display()))?;
            let (mut passed, mut failed) = (0, 0);
            for (path, outcome) in fixture::run_all(&engine, &cache, &fixtures, &module) {
                match outcome {
                    Ok(description) => {
                        passed += 1;
                        println!("{}", format!("ok    {} {description}", path.display()).trim_end());
                    }
                    Err(why) => {
                        failed += 1;
                        println!("FAIL  {} {why}", path.display());
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 { 0 } else { 1 })
        }
        HookCmd::Run { module, stage, input, config, namespace, name, cache } => {
            let toml_text = match &input {
                Some(p) => std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?,
                None => String::new(),
            };
            let mut table: toml::Table = toml::from_str(&toml_text).map_err(|e| anyhow::anyhow!("input: {}", e.message()))?;
            if let Some(stage) = stage {
                table.insert("stage".into(), toml::Value::String(stage));
            }
            let mut f: Fixture = toml::Value::Table(table).try_into().map_err(|e| anyhow::anyhow!("input: {}", e.message()))?;
            f.expect = None;
            if let Some(c) = config {
                f.config = Some(serde_json::from_str(&c).context("--config is not JSON")?);
            }
            f.set_pod(namespace, name);
            let engine = HookEngine::new()?;
            let cache = cache.open(&engine);
            let module = module.canonicalize().with_context(|| format!("{}", module.display()))?;
            let hook = engine.load(f.spec(&module), &cache)?;
            match f.run(&hook) {
                Ok(v) => {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("wasmcni: the hook failed: {e}");
                    Ok(1)
                }
            }
        }
    }
}

fn compile(inputs: &[PathBuf], state_dir: &Path) -> anyhow::Result<i32> {
    if inputs.is_empty() {
        bail!("name a hooks manifest or one or more .wasm components");
    }
    let engine = HookEngine::new()?;
    let cache = engine.node_cache(state_dir);
    let mut specs = Vec::new();
    for input in inputs {
        if input.extension().is_some_and(|e| e == "toml") {
            specs.extend(manifest::load(Some(input), None)?);
        } else {
            let name = input.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let module = input.canonicalize().with_context(|| format!("{}", input.display()))?;
            specs.push(HookSpec::new(&name, module, vec![Stage::PreAdd]));
        }
    }
    // Compiling is also checking: a hook that would fail a pod (pin, contract, its own config check) fails
    // here, before any pod.
    let mut failed = false;
    for c in crate::hooks::check_all(&engine, &cache, specs) {
        match c.outcome {
            Ok(what) => println!("{}: {what}", c.name),
            Err(why) => {
                failed = true;
                eprintln!("wasmcni: hook {}: {why}", c.name);
            }
        }
    }
    if failed {
        return Ok(1);
    }
    match cache.dir() {
        Some(dir) => println!("cache: {}", dir.display()),
        None => println!("cache: none usable (see the warning above): nothing was stored"),
    }
    Ok(0)
}
