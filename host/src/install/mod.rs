//! `wasmcni install` / `wasmcni uninstall`: put the plugin on a node the way a runtime can never see half of
//! it. The binary and hooks go first (tmp + rename), hooks are compiled into the cache, and the conflist is
//! written last, atomically: until it exists the runtime reports the network not ready instead of running
//! a network whose binary or hooks are missing. What was written is kept with hashes in an install record,
//! so a second run changes nothing, a file changed by hand is never overwritten without `--force`, and
//! uninstall removes exactly what install wrote.

use std::path::{Path, PathBuf};

pub mod args;
pub mod conflist;
pub mod disk;
pub mod paths;
mod plan;
pub mod precompile;
pub mod record;
mod shadow;
mod uninstall;
#[cfg(test)]
mod tests;

pub use disk::{Disk, RealDisk};
pub use paths::Paths;
pub use precompile::{HookLibrary, Precompile};
pub use uninstall::uninstall;

use plan::{Action, Desired};
use record::{Kind, Record};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
    #[error("not installing: {}; nothing was written (--force replaces them)", .0.join("; "))]
    Conflicts(Vec<String>),
    #[error("the hooks do not load, nothing was written: {0}")]
    Hooks(String),
}

impl InstallError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        InstallError::Io { path: path.to_path_buf(), source }
    }
}

/// Everything one install run needs; built from the command line by `args`.
#[derive(Debug, Default)]
pub struct Request {
    pub paths: Paths,
    /// The binary to install (in our own filesystem, not under the root).
    pub source_bin: PathBuf,
    pub template: Option<Vec<u8>>,
    pub settings: conflist::Settings,
    /// A directory with hooks.toml and its modules, copied into the hook dir.
    pub hooks_src: Option<PathBuf>,
    /// A manifest someone else keeps (the agent's `<hook-dir>/current/hooks.toml`): named, not copied.
    pub hooks_manifest: Option<PathBuf>,
    /// The conflist too (false: binary and hooks only, for an init container before the pod CIDR is known).
    pub write_conflist: bool,
    pub force: bool,
}

/// What a run did, for people: one line per file, then warnings.
#[derive(Debug, Default)]
pub struct Outcome {
    pub lines: Vec<String>,
    pub warnings: Vec<String>,
    pub changed: usize,
}

pub fn install(req: &Request, disk: &dyn Disk, pre: &dyn Precompile) -> Result<Outcome, InstallError> {
    let p = &req.paths;
    let record_path = p.real(&p.record());
    let mut rec = Record::load(&record_path).map_err(InstallError::Invalid)?;
    let loaded = rec.clone();
    let mut out = Outcome::default();

    let desired = desired_files(req)?;
    let mut actions = Vec::new();
    let mut conflicts = Vec::new();
    for d in &desired {
        let action = plan::classify(d, &p.real(&d.path), &rec)?;
        if let Action::Conflict(why) = &action {
            conflicts.push(why.clone());
        }
        actions.push(action);
    }
    if !conflicts.is_empty() && !req.force {
        return Err(InstallError::Conflicts(conflicts));
    }

    // Compile from the source before anything is copied: a hook set that does not load stops here, with
    // the node still on its previous set. The cache is keyed by module hash, so the copies hit it.
    ensure_dir(p, &p.state_dir, disk, &mut rec)?;
    if let Some(src) = &req.hooks_src {
        let cache = p.real(&p.cache_dir());
        let (files_before, dirs_before) = tree(&cache);
        let lines = pre.precompile(&src.join("hooks.toml"), &p.real(&p.state_dir)).map_err(InstallError::Hooks)?;
        out.lines.extend(lines);
        // What compiling added to the cache is ours too: uninstall removes it.
        let (files, dirs) = tree(&cache);
        for rel in dirs.iter().filter(|d| !dirs_before.contains(d)) {
            let d = if rel.as_os_str().is_empty() { p.cache_dir() } else { p.cache_dir().join(rel) };
            rec.add_dir(&d);
        }
        for rel in files.iter().filter(|f| !files_before.contains(f)) {
            let real = cache.join(rel);
            if let Some((sha256, mode)) = record::observe(&real).map_err(|e| InstallError::io(&real, e))? {
                rec.put(record::Entry { path: p.cache_dir().join(rel), sha256, mode, kind: Kind::Cache });
            }
        }
        if rec != loaded {
            save(p, &rec, disk)?;
        }
    }

    // desired_files lists the conflist last, so it is written last.
    for (d, action) in desired.iter().zip(&actions) {
        let real = p.real(&d.path);
        let verb = match action {
            Action::Unchanged => {
                out.lines.push(format!("unchanged {}", d.path.display()));
                if rec.get(&d.path).is_none() {
                    rec.put(d.entry());
                    save(p, &rec, disk)?;
                }
                continue;
            }
            Action::Create => "installed",
            Action::Update => "updated",
            Action::Conflict(_) => "replaced (--force; it had been changed by hand or was not ours)",
        };
        if let Some(dir) = d.path.parent() {
            ensure_dir(p, dir, disk, &mut rec)?;
        }
        disk.write(&real, &d.bytes, d.mode).map_err(|e| InstallError::io(&real, e))?;
        rec.put(d.entry());
        // After every file: a crash leaves a record that knows everything already on disk.
        save(p, &rec, disk)?;
        out.changed += 1;
        out.lines.push(format!("{verb} {}", d.path.display()));
    }

    remove_stale(req, &desired, &mut rec, disk, &mut out)?;
    if rec != loaded {
        save(p, &rec, disk)?;
    }
    if req.write_conflist {
        out.warnings.extend(shadow::earlier_configs(&p.real(&p.conf_dir), &p.conflist_name));
    }
    Ok(out)
}

/// Binary, hook files, then the conflist: the order they are written in.
fn desired_files(req: &Request) -> Result<Vec<Desired>, InstallError> {
    let p = &req.paths;
    let mut files = Vec::new();
    let bin = std::fs::read(&req.source_bin).map_err(|e| InstallError::io(&req.source_bin, e))?;
    files.push(Desired { path: p.binary(), bytes: bin, mode: 0o755, kind: Kind::Binary });
    let mut manifest = req.hooks_manifest.clone();
    if let Some(src) = &req.hooks_src {
        if !src.join("hooks.toml").is_file() {
            return Err(InstallError::Invalid(format!("--hooks {}: no hooks.toml in it", src.display())));
        }
        for rel in plan::walk(src)? {
            let from = src.join(&rel);
            let bytes = std::fs::read(&from).map_err(|e| InstallError::io(&from, e))?;
            files.push(Desired { path: p.hook_dir.join(&rel), bytes, mode: 0o644, kind: Kind::Hook });
        }
        manifest = Some(p.hooks_manifest());
    }
    if req.write_conflist {
        let mut s = req.settings.clone();
        s.hooks_manifest = manifest;
        s.state_dir = p.state_dir.clone();
        let bytes = conflist::render(req.template.as_deref(), &s).map_err(InstallError::Invalid)?;
        files.push(Desired { path: p.conflist(), bytes, mode: 0o644, kind: Kind::Conflist });
    }
    Ok(files)
}

/// Files of ours a previous install wrote that this one no longer wants: hook files of an older set, a
/// conflist under an older name. Removed only when untouched, after the new conflist is in place.
fn remove_stale(req: &Request, desired: &[Desired], rec: &mut Record, disk: &dyn Disk, out: &mut Outcome) -> Result<(), InstallError> {
    let p = &req.paths;
    let stale: Vec<_> = rec
        .files
        .iter()
        .filter(|e| match e.kind {
            Kind::Hook => req.hooks_src.is_some() || req.hooks_manifest.is_some(),
            Kind::Conflist => req.write_conflist,
            Kind::Binary | Kind::Cache => false,
        })
        .filter(|e| !desired.iter().any(|d| d.path == e.path))
        .cloned()
        .collect();
    for e in stale {
        let real = p.real(&e.path);
        match plan::still_ours(&e, &real)? {
            Some(true) => {
                disk.remove(&real).map_err(|err| InstallError::io(&real, err))?;
                out.changed += 1;
                out.lines.push(format!("removed {} (no longer part of the install)", e.path.display()));
                rec.forget(&e.path);
            }
            Some(false) => out.warnings.push(format!("kept {}: no longer installed, but changed by hand", e.path.display())),
            None => rec.forget(&e.path),
        }
    }
    Ok(())
}

/// Creates `dir` (a node path) and its missing parents, remembering which ones install made.
fn ensure_dir(p: &Paths, dir: &Path, disk: &dyn Disk, rec: &mut Record) -> Result<(), InstallError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if p.real(d).is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    for d in missing.into_iter().rev() {
        let real = p.real(&d);
        disk.create_dir(&real).map_err(|e| InstallError::io(&real, e))?;
        rec.add_dir(&d);
    }
    Ok(())
}

fn save(p: &Paths, rec: &Record, disk: &dyn Disk) -> Result<(), InstallError> {
    let real = p.real(&p.record());
    disk.write(&real, &rec.to_bytes(), 0o644).map_err(|e| InstallError::io(&real, e))
}

/// The files and directories under `dir` (relative; the dir itself as ""), empty when it does not exist.
fn tree(dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    if !dir.is_dir() {
        return (Vec::new(), Vec::new());
    }
    let files = plan::walk(dir).unwrap_or_default();
    let mut dirs: Vec<PathBuf> = vec![PathBuf::new()];
    for f in &files {
        let mut cur = f.parent();
        while let Some(d) = cur.filter(|d| !d.as_os_str().is_empty()) {
            if !dirs.iter().any(|x| x == d) {
                dirs.push(d.to_path_buf());
            }
            cur = d.parent();
        }
    }
    (files, dirs)
}
