//! Where install puts things. Every path is as the node's runtime sees it (what the conflist names); `root`
//! is where that filesystem is mounted for us (`/` on the node, a temp dir in tests, `/host` in a container
//! that mounts the node there), so writes go to `root` + path while the conflist keeps the node's paths.

use std::path::{Component, Path, PathBuf};

pub const DEFAULT_BIN_DIR: &str = "/opt/cni/bin";
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
pub const DEFAULT_CONFLIST: &str = "10-wasmcni.conflist";
pub const DEFAULT_HOOK_DIR: &str = "/etc/wasmcni/hooks";
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/wasmcni";
/// The binary's name in the bin dir: runtimes find a plugin by its conflist `type`, which must equal it.
pub const BINARY_NAME: &str = "wasmcni";
const RECORD: &str = "install.json";

#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub conflist_name: String,
    pub hook_dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Default for Paths {
    fn default() -> Self {
        Paths {
            root: PathBuf::from("/"),
            bin_dir: DEFAULT_BIN_DIR.into(),
            conf_dir: DEFAULT_CONF_DIR.into(),
            conflist_name: DEFAULT_CONFLIST.into(),
            hook_dir: DEFAULT_HOOK_DIR.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
        }
    }
}

impl Paths {
    /// Where a node path lives for this process: under `root`.
    pub fn real(&self, node_path: &Path) -> PathBuf {
        let rel: PathBuf = node_path.components().filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_))).collect();
        self.root.join(rel)
    }

    pub fn binary(&self) -> PathBuf {
        self.bin_dir.join(BINARY_NAME)
    }

    pub fn conflist(&self) -> PathBuf {
        self.conf_dir.join(&self.conflist_name)
    }

    pub fn record(&self) -> PathBuf {
        self.state_dir.join(RECORD)
    }

    pub fn hooks_manifest(&self) -> PathBuf {
        self.hook_dir.join("hooks.toml")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.state_dir.join("hook-cache")
    }
}

/// libcni loads only these from the conf dir, in name order; the first that parses wins.
pub fn is_cni_config(name: &str) -> bool {
    [".conf", ".conflist", ".json"].iter().any(|ext| name.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_prefixes_node_paths() {
        let p = Paths { root: "/tmp/r".into(), ..Paths::default() };
        assert_eq!(p.real(&p.binary()), PathBuf::from("/tmp/r/opt/cni/bin/wasmcni"));
        assert_eq!(p.real(&p.conflist()), PathBuf::from("/tmp/r/etc/cni/net.d/10-wasmcni.conflist"));
        assert_eq!(Paths::default().real(Path::new("/etc/x")), PathBuf::from("/etc/x"));
        assert!(is_cni_config("05-x.conflist") && is_cni_config("a.json") && !is_cni_config(".10-wasmcni.conflist.tmp.4"));
    }
}
