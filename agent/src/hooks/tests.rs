use std::cell::RefCell;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;

use super::source::{self, HookFiles};
use super::*;

/// Refuses any manifest that mentions "broken"; remembers what it was asked.
#[derive(Default)]
struct FakeCheck {
    seen: RefCell<Vec<PathBuf>>,
}

impl Validate for FakeCheck {
    async fn validate(&self, manifest: &Path) -> Result<(), String> {
        self.seen.borrow_mut().push(manifest.to_path_buf());
        let text = std::fs::read_to_string(manifest).unwrap();
        if text.contains("broken") {
            return Err("hook broken: sha256 mismatch".into());
        }
        Ok(())
    }
}

fn set(manifest: &str, module: &[u8]) -> HookFiles {
    let mut f = HookFiles::default();
    f.files.insert("hooks.toml".into(), manifest.as_bytes().to_vec());
    f.files.insert("guard.wasm".into(), module.to_vec());
    f
}

#[tokio::test]
async fn a_good_set_switches_atomically_and_a_bad_one_never_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sync = HookSync::new(SetDir::new(tmp.path().to_path_buf()), FakeCheck::default());
    let good = set("[[hooks]] # good", b"\0asm v1");
    let v1 = good.version();
    assert_eq!(sync.offer(good.clone()).await, Offer::Switched { from: None, to: v1.clone() });
    let link = tmp.path().join("current");
    assert_eq!(std::fs::read_link(&link).unwrap(), PathBuf::from("sets").join(&v1));
    assert_eq!(std::fs::read(tmp.path().join("current/guard.wasm")).unwrap(), b"\0asm v1");
    // Validated where it will be used: in its versioned directory.
    assert_eq!(sync.validator.seen.borrow()[0], tmp.path().join("sets").join(&v1).join("hooks.toml"));

    assert_eq!(sync.offer(good.clone()).await, Offer::Unchanged(v1.clone()));
    assert_eq!(sync.validator.seen.borrow().len(), 1, "an unchanged set is not validated again");
    // A restarted (upgraded) agent checks the set it finds once, so the new plugin fills its cache.
    let mut again = HookSync::new(SetDir::new(tmp.path().to_path_buf()), FakeCheck::default());
    assert_eq!(again.offer(good.clone()).await, Offer::Unchanged(v1.clone()));
    assert_eq!(again.offer(good.clone()).await, Offer::Unchanged(v1.clone()));
    assert_eq!(again.validator.seen.borrow().len(), 1);

    let bad = set("[[hooks]] # broken", b"\0asm v2");
    let Offer::Rejected { version, reason } = sync.offer(bad.clone()).await else { panic!("a bad set must be rejected") };
    assert!(reason.contains("sha256 mismatch"));
    assert_eq!(sync.current(), Some(v1.clone()), "the good set stays current");
    assert!(!tmp.path().join("sets").join(&version).exists(), "the rejected set is removed");
    assert_eq!(sync.offer(bad).await, Offer::StillRejected { version });
    assert_eq!(sync.validator.seen.borrow().len(), 2, "the same bad content is not retried");

    // A fix rolls forward; the previous set stays for a rollback, older ones go.
    let v2set = set("[[hooks]] # good v2", b"\0asm v2");
    let v2 = v2set.version();
    assert_eq!(sync.offer(v2set).await, Offer::Switched { from: Some(v1.clone()), to: v2.clone() });
    let v3set = set("[[hooks]] # good v3", b"\0asm v3");
    let v3 = v3set.version();
    sync.offer(v3set).await;
    let mut left: Vec<String> = std::fs::read_dir(tmp.path().join("sets")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    let mut want = vec![v2.clone(), v3.clone()];
    want.sort();
    assert_eq!(left, want);
    // Rolling back is offering the old content again.
    assert_eq!(sync.offer(good).await, Offer::Switched { from: Some(v3), to: v1 });
    assert!(!tmp.path().join(".current.tmp").exists());
}

#[test]
fn configmap_files_lie_over_the_image_dir() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("py")).unwrap();
    std::fs::write(tmp.path().join("py/big.wasm"), b"\0asm python").unwrap();
    std::fs::write(tmp.path().join("hooks.toml"), b"from the image").unwrap();
    std::fs::write(tmp.path().join(".staging"), b"ignored").unwrap();
    let base = source::from_dir(tmp.path()).unwrap();
    assert_eq!(base.files.len(), 2);
    let mut cm = ConfigMap {
        data: Some([("hooks.toml".to_string(), "from the configmap".to_string())].into()),
        binary_data: Some([("small.wasm".to_string(), ByteString(b"\0asm rust".to_vec()))].into()),
        ..Default::default()
    };
    let files = source::overlay_configmap(base, &cm).unwrap();
    assert_eq!(files.files[Path::new("hooks.toml")], b"from the configmap");
    assert_eq!(files.files[Path::new("py/big.wasm")], b"\0asm python");
    assert_eq!(files.files[Path::new("small.wasm")], b"\0asm rust");
    // The version is the content's: equal content, equal version, on every node.
    assert_eq!(files.version(), files.clone().version());
    assert_ne!(files.version(), source::from_dir(tmp.path()).unwrap().version());

    cm.data = Some([("..".to_string(), "x".to_string())].into());
    assert!(source::overlay_configmap(HookFiles::default(), &cm).unwrap_err().to_string().contains("not allowed"));
    assert!(source::from_dir(&tmp.path().join("absent")).unwrap().files.is_empty());
}
