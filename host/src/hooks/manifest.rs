//! Which hooks run, from a TOML manifest named by the netconf (`hooksManifest`) and/or inline in the netconf
//! (`hooks`). Validated when loaded, so a bad manifest fails ADD and STATUS with a message naming the file,
//! the hook and the field, not the first pod that happens to reach the broken part.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    PreAdd,
    PostAdd,
    Del,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    #[default]
    Fail,
    Ignore,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    /// Log the rules a post-ADD hook returns without applying them.
    Monitor,
}

pub const DEFAULT_TIMEOUT_MS: u64 = 100;
pub const DEFAULT_MEMORY_MB: u64 = 32;
/// How long ADD waits for the node agent's view of the pod when a hook needs it.
pub const DEFAULT_POD_METADATA_WAIT_MS: u64 = 2000;

/// What a hook needs besides its inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Need {
    /// The pod's labels, annotations and service account (from the node agent).
    PodMetadata,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookSpec {
    pub name: String,
    /// Path of the component; relative paths are relative to the manifest's directory.
    pub module: PathBuf,
    /// Optional pin: the module's sha256 in hex. A mismatch refuses the hook.
    #[serde(default)]
    pub sha256: Option<String>,
    pub stages: Vec<Stage>,
    #[serde(default)]
    pub order: i64,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_memory")]
    pub memory_mb: u64,
    #[serde(default)]
    pub mode: Mode,
    /// Handed to the hook as JSON text.
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub needs: Vec<Need>,
    #[serde(default = "default_pod_metadata_wait")]
    pub pod_metadata_wait_ms: u64,
}

fn default_pod_metadata_wait() -> u64 {
    DEFAULT_POD_METADATA_WAIT_MS
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_memory() -> u64 {
    DEFAULT_MEMORY_MB
}

impl HookSpec {
    /// A hook with every optional field at its default, as a manifest entry naming only these would be.
    pub fn new(name: &str, module: PathBuf, stages: Vec<Stage>) -> Self {
        HookSpec {
            name: name.into(),
            module,
            sha256: None,
            stages,
            order: 0,
            on_error: OnError::default(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            memory_mb: DEFAULT_MEMORY_MB,
            mode: Mode::default(),
            config: None,
            needs: Vec::new(),
            pod_metadata_wait_ms: DEFAULT_POD_METADATA_WAIT_MS,
        }
    }

    pub fn needs_pod_metadata(&self) -> bool {
        self.needs.contains(&Need::PodMetadata)
    }

    pub fn runs_at(&self, stage: Stage) -> bool {
        self.stages.contains(&stage)
    }

    pub fn config_json(&self) -> String {
        self.config.as_ref().map(Value::to_string).unwrap_or_else(|| "{}".into())
    }

    fn validate(&self) -> Result<(), String> {
        let field = |f: &str, msg: String| Err(format!("field {f}: {msg}"));
        if let Some(msg) = crate::naming::name_problem(&self.name, crate::naming::MAX_HOOK_NAME) {
            return field("name", format!("the hook name {msg}"));
        }
        if self.stages.is_empty() {
            return field("stages", "list at least one of \"pre-add\", \"post-add\", \"del\"".into());
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return field("timeout_ms", format!("{} is outside 1-60000", self.timeout_ms));
        }
        if !(1..=4096).contains(&self.memory_mb) {
            return field("memory_mb", format!("{} is outside 1-4096", self.memory_mb));
        }
        if let Some(sha) = &self.sha256 {
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return field("sha256", format!("{sha:?} is not 64 hex digits"));
            }
        }
        if self.pod_metadata_wait_ms > 10_000 {
            return field("pod_metadata_wait_ms", format!("{} is outside 0-10000", self.pod_metadata_wait_ms));
        }
        if self.config.as_ref().is_some_and(|c| !c.is_object()) {
            return field("config", "must be a table".into());
        }
        Ok(())
    }

    /// Checked when the hook is about to be loaded, not when the manifest is read: DEL without a record needs
    /// only the hooks' names to find their chains, also after a module file was removed.
    pub fn check_module(&self) -> Result<(), Error> {
        if self.module.is_file() {
            return Ok(());
        }
        Err(Error::InvalidConfig(format!(
            "hook {}: field module: {} does not exist or is not a file",
            self.name,
            self.module.display()
        )))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    hooks: Vec<toml::Value>,
}

/// Every hook the netconf asks for, validated and in run order (`order`, then position).
pub fn load(manifest: Option<&Path>, inline: Option<&Value>) -> Result<Vec<HookSpec>, Error> {
    let mut specs = Vec::new();
    if let Some(path) = manifest {
        let bad = |msg: String| Error::InvalidConfig(format!("hooks manifest {}: {msg}", path.display()));
        // Resolved once: the node agent switches hook sets by replacing a symlink, and the manifest and its
        // modules must come from the same set.
        let path = &path.canonicalize().map_err(|e| bad(format!("cannot read: {e}")))?;
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        specs = parse_manifest(&text, path.parent().unwrap_or(Path::new("/"))).map_err(bad)?;
    }
    if let Some(list) = inline {
        let bad = |msg: String| Error::InvalidConfig(format!("netconf \"hooks\": {msg}"));
        let list = list.as_array().ok_or_else(|| bad("must be a list of hooks".into()))?;
        for (i, entry) in list.iter().enumerate() {
            let name = hook_label(entry.get("name").and_then(Value::as_str), i);
            let spec = HookSpec::deserialize(entry).map_err(|e| bad(format!("hook {name}: {e}")))?;
            spec.validate().map_err(|m| bad(format!("hook {name}: {m}")))?;
            specs.push(spec);
        }
    }
    for (i, s) in specs.iter().enumerate() {
        if specs[..i].iter().any(|o| o.name == s.name) {
            return Err(Error::InvalidConfig(format!("hook {:?} is listed twice", s.name)));
        }
    }
    specs.sort_by_key(|s| s.order); // stable: equal orders keep their listed order
    Ok(specs)
}

/// A manifest file's hooks, their modules relative to `base` (the manifest's directory).
pub fn parse_manifest(text: &str, base: &Path) -> Result<Vec<HookSpec>, String> {
    let file: ManifestFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
    let mut specs = Vec::new();
    for (i, entry) in file.hooks.into_iter().enumerate() {
        let name = hook_label(entry.get("name").and_then(|n| n.as_str()), i);
        let mut spec: HookSpec = entry.try_into().map_err(|e: toml::de::Error| format!("hook {name}: {}", e.message()))?;
        spec.module = base.join(&spec.module);
        spec.validate().map_err(|m| format!("hook {name}: {m}"))?;
        specs.push(spec);
    }
    Ok(specs)
}

fn hook_label(name: Option<&str>, index: usize) -> String {
    name.map(|n| format!("{n:?}")).unwrap_or_else(|| format!("#{}", index + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &Path, text: &str) -> PathBuf {
        std::fs::write(dir.join("hook.wasm"), b"\0asm").unwrap();
        let p = dir.join("hooks.toml");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_hook_set_switched_during_an_add_is_seen_whole_old_or_new() {
        // The agent's layout: versioned sets and a `current` link renamed into place.
        let tmp = tempfile::tempdir().unwrap();
        let text = "[[hooks]]\nname = \"h\"\nmodule = \"hook.wasm\"\nstages = [\"pre-add\"]\n";
        for set in ["a", "b"] {
            std::fs::create_dir_all(tmp.path().join("sets").join(set)).unwrap();
            manifest(&tmp.path().join("sets").join(set), text);
        }
        let current = tmp.path().join("current");
        std::os::unix::fs::symlink("sets/a", &current).unwrap();
        let specs = load(Some(&current.join("hooks.toml")), None).unwrap();
        // The switch lands after the manifest was read and before the modules are opened.
        std::os::unix::fs::symlink("sets/b", tmp.path().join("next")).unwrap();
        std::fs::rename(tmp.path().join("next"), &current).unwrap();
        let module = &specs[0].module;
        assert!(module.starts_with(tmp.path().canonicalize().unwrap().join("sets/a")), "{}", module.display());
        assert!(!module.starts_with(&current), "the module path still goes through the link: {}", module.display());
    }

    #[test]
    fn parses_defaults_order_and_relative_modules() {
        let tmp = tempfile::tempdir().unwrap();
        let p = manifest(
            tmp.path(),
            r#"
            [[hooks]]
            name = "second"
            module = "hook.wasm"
            stages = ["post-add"]
            order = 20
            [hooks.config]
            blocked = ["169.254.169.254/32"]

            [[hooks]]
            name = "first"
            module = "hook.wasm"
            stages = ["pre-add", "del"]
            order = 10
            on_error = "ignore"
            mode = "monitor"
            timeout_ms = 50
            "#,
        );
        let specs = load(Some(&p), None).unwrap();
        assert_eq!(specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["first", "second"]);
        assert_eq!(specs[0].on_error, OnError::Ignore);
        assert_eq!(specs[0].mode, Mode::Monitor);
        assert_eq!(specs[1].timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(specs[1].memory_mb, DEFAULT_MEMORY_MB);
        assert_eq!(specs[1].module, tmp.path().join("hook.wasm"));
        assert_eq!(specs[1].config_json(), r#"{"blocked":["169.254.169.254/32"]}"#);
        assert!(specs[0].runs_at(Stage::Del) && !specs[0].runs_at(Stage::PostAdd));
    }

    #[test]
    fn errors_name_file_hook_and_field() {
        let tmp = tempfile::tempdir().unwrap();
        for (body, field) in [
            ("name = \"h\"\nmodule = \"hook.wasm\"\nstages = [\"pre-add\"]\ntimout_ms = 5", "timout_ms"),
            ("name = \"h\"\nmodule = \"hook.wasm\"\nstages = [\"pre-add\"]\ntimeout_ms = 0", "timeout_ms"),
            ("name = \"h\"\nmodule = \"hook.wasm\"\nstages = [\"later\"]", "later"),
            ("name = \"h\"\nmodule = \"hook.wasm\"\nstages = []", "stages"),
            ("name = \"h\"\nmodule = \"hook.wasm\"\nstages = [\"del\"]\nsha256 = \"abc\"", "sha256"),
            ("name = \"h\"\nmodule = \"hook.wasm\"\nstages = [\"del\"]\non_error = \"maybe\"", "maybe"),
        ] {
            let p = manifest(tmp.path(), &format!("[[hooks]]\n{body}\n"));
            let err = load(Some(&p), None).unwrap_err().to_string();
            assert!(err.contains("hooks.toml") && err.contains("hook \"h\"") && err.contains(field), "{err}");
        }
        // A missing module parses (DEL needs the names) and is refused when the hook is to be loaded.
        let p = manifest(tmp.path(), "[[hooks]]\nname = \"h\"\nmodule = \"missing.wasm\"\nstages = [\"del\"]\n");
        let specs = load(Some(&p), None).unwrap();
        let err = specs[0].check_module().unwrap_err().to_string();
        assert!(err.contains("hook h: field module") && err.contains("missing.wasm does not exist"), "{err}");
    }

    #[test]
    fn inline_hooks_and_duplicates() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("h.wasm"), b"").unwrap();
        let module = tmp.path().join("h.wasm");
        let inline = serde_json::json!([{"name": "a", "module": module, "stages": ["del"]}]);
        assert_eq!(load(None, Some(&inline)).unwrap().len(), 1);
        let twice = serde_json::json!([{"name": "a", "module": module, "stages": ["del"]},
                                       {"name": "a", "module": module, "stages": ["del"]}]);
        assert!(load(None, Some(&twice)).unwrap_err().to_string().contains("listed twice"));
    }
}
