//! What install would write and what it finds on disk, decided before anything is written: a file changed by
//! hand stops the whole install (unless `--force`), not half of it.

use std::path::{Path, PathBuf};

use super::record::{self, Entry, Kind, Record};
use super::InstallError;

#[derive(Debug)]
pub struct Desired {
    /// As the node sees it.
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub mode: u32,
    pub kind: Kind,
}

impl Desired {
    pub fn entry(&self) -> Entry {
        Entry { path: self.path.clone(), sha256: record::sha256_hex(&self.bytes), mode: self.mode, kind: self.kind }
    }
}

#[derive(Debug, PartialEq)]
pub enum Action {
    Unchanged,
    Create,
    /// Ours and untouched since the last install: replace it.
    Update,
    /// Someone else's, or ours changed by hand: only with --force.
    Conflict(String),
}

/// Compares what install wants at `d.path` (found at `real`) with the disk and the record.
pub fn classify(d: &Desired, real: &Path, rec: &Record) -> Result<Action, InstallError> {
    let want = d.entry();
    let Some((sha, mode)) = record::observe(real).map_err(|e| InstallError::io(real, e))? else { return Ok(Action::Create) };
    if sha == want.sha256 && mode == want.mode {
        return Ok(Action::Unchanged);
    }
    Ok(match rec.get(&d.path) {
        Some(e) if e.sha256 == sha && e.mode == mode => Action::Update,
        Some(_) => Action::Conflict(format!("{} was changed by hand since wasmcni installed it", d.path.display())),
        None => Action::Conflict(format!("{} exists and was not written by wasmcni install", d.path.display())),
    })
}

/// Whether a recorded file is still as install left it: Some(true) yes, Some(false) changed, None gone.
pub fn still_ours(e: &Entry, real: &Path) -> Result<Option<bool>, InstallError> {
    let now = record::observe(real).map_err(|e| InstallError::io(real, e))?;
    Ok(now.map(|(sha, mode)| sha == e.sha256 && mode == e.mode))
}

/// Every regular file under `dir`, as paths relative to it, in a stable order.
pub fn walk(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    fn go(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), InstallError> {
        let here = base.join(rel);
        let mut entries: Vec<_> = std::fs::read_dir(&here)
            .map_err(|e| InstallError::io(&here, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| InstallError::io(&here, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let ty = e.file_type().map_err(|err| InstallError::io(&e.path(), err))?;
            let r = rel.join(e.file_name());
            if ty.is_dir() {
                go(base, &r, out)?;
            } else if ty.is_file() || (ty.is_symlink() && e.path().is_file()) {
                out.push(r);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(dir, Path::new(""), &mut out)?;
    Ok(out)
}
