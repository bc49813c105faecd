//! Precompiled components on disk, so a hook is compiled once per node, not once per pod. Entries are keyed
//! by the module's sha256 and the engine's compatibility hash, written atomically and loaded by mmap, and
//! only from a directory that nobody but root (or the invoking user) can write.
//! Hashing a module costs milliseconds, so a small index remembers each module file's hash together with
//! its size, mtime and inode; any change to the file makes it hash again.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

use crate::trust::{self, Owners};

pub struct Cache {
    /// None: there is no cache we may use (its directory failed the trust check or cannot be made), so
    /// components are compiled in memory for this process only.
    dir: Option<PathBuf>,
    engine_key: String,
    owners: Owners,
}

#[derive(Serialize, Deserialize, PartialEq)]
struct IndexEntry {
    path: PathBuf,
    size: u64,
    mtime_ns: i128,
    ino: u64,
    sha256: String,
}

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cached,
    Compiled,
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::netaddr::hex(&Sha256::digest(bytes), "")
}

impl Cache {
    /// The cache in `dir`, created 0700 when missing. Its entries are mapped as native code, so the
    /// directory and everything above it must be writable only by root or by us (trust::check); one that
    /// is not is left alone and this process compiles in memory instead.
    pub fn open(dir: PathBuf, engine_key: &str) -> Self {
        let owners = Owners::current();
        let usable = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| format!("cannot create it: {e}"))
            .and_then(|_| trust::check(&dir, owners).map_err(|e| e.to_string()));
        let dir = match usable {
            Ok(()) => Some(dir),
            Err(why) => {
                log::warn!("not using the hook cache {}: {why}; compiling hooks in memory", dir.display());
                None
            }
        };
        Cache { dir, engine_key: engine_key.to_string(), owners }
    }

    /// No cache: every component is compiled in memory.
    pub fn in_memory(engine_key: &str) -> Self {
        Cache { dir: None, engine_key: engine_key.to_string(), owners: Owners::current() }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The module's sha256: from the index when the file is unchanged, else by hashing it.
    pub fn module_sha256(&self, module: &Path) -> std::io::Result<String> {
        let meta = fs::metadata(module)?;
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        let index = self.dir.as_ref().map(|d| d.join("index").join(format!("{}.json", sha256_hex(module.as_os_str().as_encoded_bytes()))));
        // The index decides which hash a module is taken to have (and so whether its pin matches): only an
        // entry we may trust counts.
        if let Some(index) = index.as_ref().filter(|i| trust::check_file(i, self.owners).is_ok()) {
            if let Ok(bytes) = fs::read(index) {
                if let Ok(e) = serde_json::from_slice::<IndexEntry>(&bytes) {
                    if e.path == module && e.size == meta.len() && e.mtime_ns == mtime_ns && e.ino == meta.ino() {
                        return Ok(e.sha256);
                    }
                }
            }
        }
        let sha256 = sha256_hex(&fs::read(module)?);
        let entry = IndexEntry { path: module.to_path_buf(), size: meta.len(), mtime_ns, ino: meta.ino(), sha256 };
        if let Some(index) = index {
            let parent = index.parent().expect("has parent");
            if fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).is_ok() {
                // Best effort: a missing index only costs a re-hash next time.
                let _ = crate::fsutil::write_atomic(&index, &serde_json::to_vec(&entry).expect("serializes"), true);
            }
        }
        Ok(entry.sha256)
    }

    fn artifact(&self, sha256: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{sha256}-{}.cwasm", self.engine_key)))
    }

    /// The cached component of hash `sha256`, if there is a trusted entry this engine can load. Anything
    /// else is left to `load`, which compiles again (and says why).
    pub fn load_cached(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let artifact = self.artifact(sha256).filter(|a| a.exists())?;
        trust::check_file(&artifact, self.owners).ok()?;
        // SAFETY: as in `load`: only root or we could have written the entry, and wasmtime checks the rest.
        match unsafe { Component::deserialize_file(engine, &artifact) } {
            Ok(c) => Some(c),
            Err(e) => {
                log::debug!("cache entry {} not loaded without a compiler: {e:#}", artifact.display());
                None
            }
        }
    }

    /// Loads the precompiled component for `module` (whose hash is `sha256`), compiling and caching it when
    /// there is no usable entry. An entry that fails the trust check is never mapped; a corrupt, truncated
    /// or incompatible one is discarded. Either way the component is compiled again.
    pub fn load(&self, engine: &Engine, module: &Path, sha256: &str) -> Result<(Component, Source), super::Error> {
        let artifact = self.artifact(sha256);
        if let Some(artifact) = artifact.as_ref().filter(|a| a.exists()) {
            match trust::check_file(artifact, self.owners) {
                // SAFETY: only root or we could have written the entry and the directories above it (checked
                // just now); wasmtime still checks the header, version and engine settings of what it maps.
                Ok(()) => match unsafe { Component::deserialize_file(engine, artifact) } {
                    Ok(c) => return Ok((c, Source::Cached)),
                    Err(e) => log::warn!("discarding unusable cache entry {}: {e:#}", artifact.display()),
                },
                Err(e) => log::warn!("not mapping hook cache entry {e}; compiling it again"),
            }
            let _ = fs::remove_file(artifact);
        }
        let bytes = fs::read(module).map_err(|e| super::Error::Read { path: module.to_path_buf(), source: e })?;
        if sha256_hex(&bytes) != sha256 {
            return Err(super::Error::Changed(module.to_path_buf()));
        }
        let not_a_component = |e: wasmtime::Error| super::Error::NotAComponent { module: module.to_path_buf(), detail: format!("{e:#}") };
        let compiled = engine.precompile_component(&bytes).map_err(not_a_component)?;
        if let Some(artifact) = &artifact {
            match crate::fsutil::write_atomic(artifact, &compiled, true) {
                // Load what was stored, so the next process maps the very same bytes.
                Ok(()) => match unsafe { Component::deserialize_file(engine, artifact) } {
                    Ok(c) => return Ok((c, Source::Compiled)),
                    Err(e) => log::warn!("cannot load fresh cache entry {}: {e:#}", artifact.display()),
                },
                Err(e) => log::warn!("cannot write cache entry {}: {e}", artifact.display()),
            }
        }
        // SAFETY: these bytes were produced by this engine a moment ago.
        unsafe { Component::deserialize(engine, &compiled) }.map(|c| (c, Source::Compiled)).map_err(not_a_component)
    }
}
