//! Pod metadata for hooks, kept where an ADD reads it in O(1) without the API server:
//! `<run-dir>/pods/<namespace>/<name>.json` = {"uid", "labels", "annotations", "serviceAccount"}, for the
//! pods scheduled to this node, written atomically and removed when the pod is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodMeta {
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    #[serde(rename = "serviceAccount")]
    pub service_account: String,
}

pub type PodKey = (String, String);

pub fn meta_of(p: &Pod) -> Option<(PodKey, PodMeta)> {
    let m = &p.metadata;
    let key = (m.namespace.clone()?, m.name.clone()?);
    let meta = PodMeta {
        uid: m.uid.clone().unwrap_or_default(),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
        service_account: p.spec.as_ref().and_then(|s| s.service_account_name.clone()).unwrap_or_else(|| "default".into()),
    };
    Some((key, meta))
}

pub trait PodStore {
    /// Writes the pod's file; false when it already had this content.
    fn write(&mut self, key: &PodKey, meta: &PodMeta) -> io::Result<bool>;
    fn remove(&mut self, key: &PodKey) -> io::Result<()>;
    fn list(&self) -> io::Result<Vec<PodKey>>;
}

/// Namespaces and names are DNS labels/subdomains; anything else would be a path trick.
fn safe(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

pub struct PodDir {
    dir: PathBuf,
}

impl PodDir {
    pub fn new(run_dir: &Path) -> PodDir {
        PodDir { dir: run_dir.join("pods") }
    }

    fn path(&self, (ns, name): &PodKey) -> io::Result<PathBuf> {
        if !safe(ns) || !safe(name) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unexpected pod name {ns}/{name}")));
        }
        Ok(self.dir.join(ns).join(format!("{name}.json")))
    }
}

impl PodStore for PodDir {
    fn write(&mut self, key: &PodKey, meta: &PodMeta) -> io::Result<bool> {
        let path = self.path(key)?;
        let bytes = serde_json::to_vec(meta).map_err(io::Error::other)?;
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(false);
        }
        std::fs::create_dir_all(path.parent().expect("has a namespace dir"))?;
        // A dot name is never a pod's file, and the rename makes the new content appear whole.
        let tmp = path.with_file_name(format!(".{}.tmp", key.1));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(true)
    }

    fn remove(&mut self, key: &PodKey) -> io::Result<()> {
        match std::fs::remove_file(self.path(key)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Vec<PodKey>> {
        let mut out = Vec::new();
        let Ok(namespaces) = std::fs::read_dir(&self.dir) else { return Ok(out) };
        for ns in namespaces.flatten() {
            let ns_name = ns.file_name().to_string_lossy().into_owned();
            for f in std::fs::read_dir(ns.path())?.flatten() {
                let f = f.file_name().to_string_lossy().into_owned();
                if let Some(name) = f.strip_suffix(".json").filter(|n| !n.starts_with('.')) {
                    out.push((ns_name.clone(), name.to_string()));
                }
            }
        }
        Ok(out)
    }
}

/// Applies watch events to a store. A (re)list replaces the whole set: files of pods the list no longer
/// has (deleted while the watch was down, or before the agent started) are removed at its end.
pub struct PodSync<S> {
    pub store: S,
    listing: Option<BTreeSet<PodKey>>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub written: usize,
    pub removed: usize,
    /// Set when a (re)list finished: how many pods the node has.
    pub listed: Option<usize>,
}

impl<S: PodStore> PodSync<S> {
    pub fn new(store: S) -> Self {
        PodSync { store, listing: None }
    }

    pub fn apply(&mut self, ev: Event<Pod>) -> io::Result<Applied> {
        let mut a = Applied::default();
        match ev {
            Event::Init => self.listing = Some(BTreeSet::new()),
            Event::InitApply(p) | Event::Apply(p) => {
                if let Some((key, meta)) = meta_of(&p) {
                    a.written += usize::from(self.store.write(&key, &meta)?);
                    if let Some(l) = self.listing.as_mut() {
                        l.insert(key);
                    }
                }
            }
            Event::Delete(p) => {
                if let Some((key, _)) = meta_of(&p) {
                    self.store.remove(&key)?;
                    a.removed += 1;
                }
            }
            Event::InitDone => {
                let listed = self.listing.take().unwrap_or_default();
                for key in self.store.list()?.into_iter().filter(|k| !listed.contains(k)) {
                    self.store.remove(&key)?;
                    a.removed += 1;
                }
                a.listed = Some(listed.len());
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, app: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name, "uid": format!("uid-{name}"), "labels": {"app": app},
                         "annotations": {"note": "x"}},
            "spec": {"serviceAccountName": "web-sa", "containers": []}
        }))
        .unwrap()
    }

    #[test]
    fn files_follow_the_watch_and_a_relist_removes_the_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let mut sync = PodSync::new(PodDir::new(tmp.path()));
        // Left from before a restart: not in the coming list.
        std::fs::create_dir_all(tmp.path().join("pods/old")).unwrap();
        std::fs::write(tmp.path().join("pods/old/stale.json"), b"{}").unwrap();
        sync.apply(Event::Init).unwrap();
        sync.apply(Event::InitApply(pod("default", "web-1", "web"))).unwrap();
        let done = sync.apply(Event::InitDone).unwrap();
        assert_eq!(done, Applied { written: 0, removed: 1, listed: Some(1) });
        assert!(!tmp.path().join("pods/old/stale.json").exists());

        let file = tmp.path().join("pods/default/web-1.json");
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"uid": "uid-web-1", "labels": {"app": "web"}, "annotations": {"note": "x"}, "serviceAccount": "web-sa"}));

        assert_eq!(sync.apply(Event::Apply(pod("default", "web-1", "web"))).unwrap().written, 0, "same content, no write");
        assert_eq!(sync.apply(Event::Apply(pod("default", "web-1", "api"))).unwrap().written, 1, "a label change is written");
        sync.apply(Event::Delete(pod("default", "web-1", "api"))).unwrap();
        assert!(!file.exists());
        assert!(sync.store.path(&("..".into(), "x".into())).is_err());
    }
}
