//! The pod's labels, annotations and service account, as the node agent keeps them for the pods of its node
//! (`<podMetadataDir>/<namespace>/<name>.json`, written atomically): one file read per ADD, no API call.
//! Without the agent there is no file and the fields stay empty.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// How often ADD looks again while a hook that needs them waits.
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PodMeta {
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, rename = "serviceAccount")]
    pub service_account: Option<String>,
}

/// Kubernetes namespaces and pod names are DNS labels and subdomains: anything else would be a path trick.
fn dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && !s.contains("..")
}

pub fn path(dir: &Path, namespace: &str, name: &str) -> Option<PathBuf> {
    (dns_name(namespace) && dns_name(name)).then(|| dir.join(namespace).join(format!("{name}.json")))
}

/// The pod's metadata if the agent has written it; a file for another pod of the same name (its uid differs
/// from the runtime's K8S_POD_UID) does not count.
pub fn read(dir: &Path, namespace: &str, name: &str, uid: Option<&str>) -> Option<PodMeta> {
    let bytes = std::fs::read(path(dir, namespace, name)?).ok()?;
    let meta: PodMeta = serde_json::from_slice(&bytes).ok()?;
    match uid {
        Some(want) if !want.is_empty() && !meta.uid.is_empty() && meta.uid != want => None,
        _ => Some(meta),
    }
}

/// `read`, retried until `wait` is over: the agent may see a pod a moment after its sandbox starts.
pub fn wait_for(dir: &Path, namespace: &str, name: &str, uid: Option<&str>, wait: Duration) -> Option<PodMeta> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(m) = read(dir, namespace, name, uid) {
            return Some(m);
        }
        if Instant::now() >= deadline || path(dir, namespace, name).is_none() {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agents_file_and_refuses_path_tricks_and_stale_pods() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("default")).unwrap();
        std::fs::write(
            tmp.path().join("default/web.json"),
            r#"{"uid":"u1","labels":{"egress":"allowed"},"annotations":{},"serviceAccount":"sa"}"#,
        )
        .unwrap();
        let m = read(tmp.path(), "default", "web", Some("u1")).unwrap();
        assert_eq!(m.labels.get("egress").map(String::as_str), Some("allowed"));
        assert_eq!(m.service_account.as_deref(), Some("sa"));
        assert!(read(tmp.path(), "default", "web", Some("u2")).is_none(), "another pod of that name");
        assert!(read(tmp.path(), "default", "web", None).is_some());
        assert!(path(tmp.path(), "..", "web").is_none() && path(tmp.path(), "default", "../x").is_none());
        assert!(path(tmp.path(), "Default", "web").is_none(), "not a DNS label");
        let t = Instant::now();
        assert!(wait_for(tmp.path(), "default", "late", None, Duration::from_millis(50)).is_none());
        assert!(t.elapsed() >= Duration::from_millis(50));
    }
}
