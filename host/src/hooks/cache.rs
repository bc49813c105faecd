//! Precompiled components on disk, so a hook is compiled once per node, not once per pod. Entries are keyed
//! by the module's sha256 and the engine's compatibility hash, written atomically and loaded by mmap.
//! Hashing a module costs milliseconds, so a small index remembers each module file's hash together with
//! its size, mtime and inode; any change to the file makes it hash again.

use std::fs;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

pub struct Cache {
    dir: PathBuf,
    engine_key: String,
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
    pub fn new(dir: PathBuf, engine: &Engine) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Cache { dir, engine_key: format!("{:016x}", h.finish()) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The module's sha256: from the index when the file is unchanged, else by hashing it.
    pub fn module_sha256(&self, module: &Path) -> std::io::Result<String> {
        let meta = fs::metadata(module)?;
        let mtime_ns = meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128;
        let index = self.dir.join("index").join(format!("{}.json", sha256_hex(module.as_os_str().as_encoded_bytes())));
        if let Ok(bytes) = fs::read(&index) {
            if let Ok(e) = serde_json::from_slice::<IndexEntry>(&bytes) {
                if e.path == module && e.size == meta.len() && e.mtime_ns == mtime_ns && e.ino == meta.ino() {
                    return Ok(e.sha256);
                }
            }
        }
        let sha256 = sha256_hex(&fs::read(module)?);
        let entry = IndexEntry { path: module.to_path_buf(), size: meta.len(), mtime_ns, ino: meta.ino(), sha256 };
        if fs::create_dir_all(index.parent().expect("has parent")).is_ok() {
            // Best effort: a missing index only costs a re-hash next time.
            let _ = crate::fsutil::write_atomic(&index, &serde_json::to_vec(&entry).expect("serializes"), true);
        }
        Ok(entry.sha256)
    }

    fn artifact(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// Loads the precompiled component for `module` (whose hash is `sha256`), compiling and caching it when
    /// there is no usable entry. A corrupt, truncated or incompatible entry is discarded and rebuilt.
    pub fn load(&self, engine: &Engine, module: &Path, sha256: &str) -> Result<(Component, Source), String> {
        let artifact = self.artifact(sha256);
        if artifact.exists() {
            // SAFETY: the cache dir lives under the root-owned state dir and only this code writes it;
            // wasmtime still checks the header, version and engine settings of what it maps.
            match unsafe { Component::deserialize_file(engine, &artifact) } {
                Ok(c) => return Ok((c, Source::Cached)),
                Err(e) => {
                    log::warn!("discarding unusable cache entry {}: {e:#}", artifact.display());
                    let _ = fs::remove_file(&artifact);
                }
            }
        }
        let bytes = fs::read(module).map_err(|e| format!("cannot read {}: {e}", module.display()))?;
        if sha256_hex(&bytes) != sha256 {
            return Err(format!("{} changed while it was being loaded", module.display()));
        }
        let compiled = engine
            .precompile_component(&bytes)
            .map_err(|e| format!("{} is not a valid hook component: {e:#}", module.display()))?;
        let stored = fs::create_dir_all(&self.dir).and_then(|_| crate::fsutil::write_atomic(&artifact, &compiled, true));
        match stored {
            // Load what was stored, so the next process maps the very same bytes.
            Ok(()) => match unsafe { Component::deserialize_file(engine, &artifact) } {
                Ok(c) => return Ok((c, Source::Compiled)),
                Err(e) => log::warn!("cannot load fresh cache entry {}: {e:#}", artifact.display()),
            },
            Err(e) => log::warn!("cannot write cache entry {}: {e}", artifact.display()),
        }
        // SAFETY: these bytes were produced by this engine a moment ago.
        unsafe { Component::deserialize(engine, &compiled) }.map(|c| (c, Source::Compiled)).map_err(|e| format!("{e:#}"))
    }
}
