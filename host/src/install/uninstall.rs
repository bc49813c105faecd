//! `wasmcni uninstall`: removes what the install record lists, the conflist first (so the runtime stops
//! sending pods to the network before its binary goes), and nothing else. A file changed since install is
//! kept unless `--force`.

use super::plan;
use super::record::{Kind, Record};
use super::{Disk, InstallError, Outcome, Paths};

pub fn uninstall(p: &Paths, force: bool, disk: &dyn Disk) -> Result<Outcome, InstallError> {
    let record_path = p.real(&p.record());
    let mut rec = Record::load(&record_path).map_err(InstallError::Invalid)?;
    let mut out = Outcome::default();
    if !record_path.exists() {
        out.lines.push(format!("nothing to uninstall: no install record at {}", p.record().display()));
        return Ok(out);
    }
    let rank = |k: Kind| match k {
        Kind::Conflist => 0,
        Kind::Hook => 1,
        Kind::Cache => 2,
        Kind::Binary => 3,
    };
    let mut entries = rec.files.clone();
    entries.sort_by_key(|e| rank(e.kind));
    for e in entries {
        let real = p.real(&e.path);
        match plan::still_ours(&e, &real)? {
            None => {
                out.lines.push(format!("already gone {}", e.path.display()));
                rec.forget(&e.path);
            }
            Some(ours) if ours || force => {
                disk.remove(&real).map_err(|err| InstallError::io(&real, err))?;
                out.changed += 1;
                let how = if ours { "" } else { " (--force: it had been changed by hand)" };
                out.lines.push(format!("removed {}{how}", e.path.display()));
                rec.forget(&e.path);
            }
            Some(_) => out.warnings.push(format!("kept {}: changed by hand since install (--force removes it)", e.path.display())),
        }
        if rec.files.is_empty() {
            continue;
        }
        let real_record = p.real(&p.record());
        disk.write(&real_record, &rec.to_bytes(), 0o644).map_err(|err| InstallError::io(&real_record, err))?;
    }
    if !rec.files.is_empty() {
        // Kept files stay in the record, so a later `uninstall --force` still knows them.
        let real_record = p.real(&p.record());
        disk.write(&real_record, &rec.to_bytes(), 0o644).map_err(|e| InstallError::io(&real_record, e))?;
        return Ok(out);
    }
    disk.remove(&record_path).map_err(|e| InstallError::io(&record_path, e))?;
    // Directories install created, deepest first, and only when nothing else lives in them (the state dir
    // also holds the plugin's attachment records).
    let mut dirs = rec.dirs.clone();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let real = p.real(&d);
        let empty = std::fs::read_dir(&real).map(|mut it| it.next().is_none()).unwrap_or(false);
        if empty && disk.remove_dir(&real).is_ok() {
            out.lines.push(format!("removed {}/", d.display()));
        }
    }
    Ok(out)
}
