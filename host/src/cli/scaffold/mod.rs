//! `wasmcni hook new NAME --lang rust|c|python|js`: a hook project that builds and passes its fixtures as
//! generated (sources, unit tests, fixtures, build.sh, test.sh, a README). The contract comes from this
//! binary, so a new project speaks exactly the plugin's version.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod templates;
#[cfg(test)]
mod tests;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    C,
    Python,
    /// JavaScript (componentize-js).
    Js,
}

impl Lang {
    fn label(self) -> &'static str {
        match self {
            Lang::Rust => "Rust",
            Lang::C => "C",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{name:?} cannot name a hook: {why}")]
    BadName { name: String, why: &'static str },
    #[error("{} already exists and is not empty: pick another --dir, or an empty folder", .0.display())]
    NotEmpty(PathBuf),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// A hook's name becomes a Cargo package, an npm package, a file name and a manifest name: keep to what
/// all of them take.
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let why = if name.is_empty() || name.len() > 64 {
        Some("use 1 to 64 characters")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("start with a lowercase letter")
    } else if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        Some("use lowercase letters, digits and '-' only")
    } else if name.ends_with('-') || name.contains("--") {
        Some("no '-' at the end, none doubled")
    } else {
        None
    };
    match why {
        Some(why) => Err(ScaffoldError::BadName { name: name.into(), why }),
        None => Ok(()),
    }
}

/// The contract's package and version, e.g. "wasmcni:hook@0.2.0", from the embedded WIT.
pub fn contract() -> &'static str {
    templates::WIT
        .lines()
        .find_map(|l| l.trim().strip_prefix("package ")?.strip_suffix(';'))
        .unwrap_or("wasmcni:hook")
}

fn fill_in(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{module}}", &name.replace('-', "_"))
        .replace("{{version}}", env!("CARGO_PKG_VERSION"))
        .replace("{{contract}}", contract())
}

/// Writes a `lang` project for hook `name` into `dir` (created; it may exist if empty). Returns the files
/// written, relative to `dir`.
pub fn generate(name: &str, lang: Lang, dir: &Path) -> Result<Vec<&'static str>, ScaffoldError> {
    check_name(name)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    match fs::read_dir(dir) {
        Ok(entries) => {
            if entries.count() > 0 {
                return Err(ScaffoldError::NotEmpty(dir.into()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir).map_err(io(dir))?,
        Err(e) => return Err(io(dir)(e)),
    }
    let mut written = Vec::new();
    for t in templates::for_lang(lang) {
        let path = dir.join(t.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut text = if t.fill { fill_in(t.text, name) } else { t.text.to_string() };
        if t.path == "README.md" {
            text.push_str(&fill_in(templates::DEPLOY, name));
        }
        fs::write(&path, text).map_err(io(&path))?;
        if t.executable() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).map_err(io(&path))?;
        }
        written.push(t.path);
    }
    Ok(written)
}

/// `wasmcni hook new`: generate, then say what to run next.
pub fn run(name: &str, lang: Lang, dir: Option<PathBuf>) -> anyhow::Result<i32> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let files = generate(name, lang, &dir)?;
    println!("created {} hook {name} in {} ({} files, contract {})", lang.label(), dir.display(), files.len(), contract());
    println!("next:");
    if dir != Path::new(".") {
        println!("  cd {}", dir.display());
    }
    println!("  bash build.sh          # -> {name}.wasm");
    println!("  bash test.sh           # native unit tests");
    println!("  wasmcni hook test fixtures/*.toml --module {name}.wasm");
    Ok(0)
}
