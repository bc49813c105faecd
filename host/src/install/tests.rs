//! Install and uninstall into a temp root (no root privileges needed), watching every write through the
//! `Disk` seam.

use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;

/// The real disk, with a log of every write and removal in order.
#[derive(Default)]
struct Recording {
    log: RefCell<Vec<String>>,
}

impl Recording {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.log.borrow_mut())
    }
}

impl Disk for Recording {
    fn write(&self, path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
        self.log.borrow_mut().push(format!("write {}", name(path)));
        RealDisk.write(path, bytes, mode)
    }
    fn remove(&self, path: &Path) -> std::io::Result<()> {
        self.log.borrow_mut().push(format!("remove {}", name(path)));
        RealDisk.remove(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        RealDisk.create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        RealDisk.remove_dir(path)
    }
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Stands in for the hook library: records the manifest it was given and adds one cache entry.
#[derive(Default)]
struct FakeCompiler {
    calls: RefCell<Vec<PathBuf>>,
    fail: bool,
}

impl Precompile for FakeCompiler {
    fn precompile(&self, manifest: &Path, state_dir: &Path) -> Result<Vec<String>, String> {
        self.calls.borrow_mut().push(manifest.to_path_buf());
        if self.fail {
            return Err("hook guard: not a valid hook component".into());
        }
        let cache = state_dir.join("hook-cache");
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(cache.join("abc-123.cwasm"), b"compiled").unwrap();
        Ok(vec!["hook guard: compiled into the cache".into()])
    }
}

struct Setup {
    tmp: tempfile::TempDir,
    req: Request,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("hooks/mods")).unwrap();
        std::fs::write(src.join("wasmcni"), b"\x7fELF plugin v1").unwrap();
        std::fs::write(src.join("hooks/hooks.toml"), b"[[hooks]]\nname = \"guard\"\nmodule = \"mods/guard.wasm\"\nstages = [\"post-add\"]\n").unwrap();
        std::fs::write(src.join("hooks/mods/guard.wasm"), b"\0asm guard").unwrap();
        let req = Request {
            paths: Paths { root: tmp.path().join("root"), ..Paths::default() },
            source_bin: src.join("wasmcni"),
            settings: conflist::Settings { pod_cidrs: vec!["10.77.1.0/24".parse().unwrap()], ..Default::default() },
            hooks_src: Some(src.join("hooks")),
            write_conflist: true,
            ..Request::default()
        };
        std::fs::create_dir(tmp.path().join("root")).unwrap();
        Setup { tmp, req }
    }

    fn real(&self, node: &str) -> PathBuf {
        self.req.paths.real(Path::new(node))
    }

    fn install(&self, disk: &Recording) -> Result<Outcome, InstallError> {
        install(&self.req, disk, &FakeCompiler::default())
    }

    fn mode(&self, node: &str) -> u32 {
        std::fs::metadata(self.real(node)).unwrap().permissions().mode() & 0o777
    }
}

const BIN: &str = "/opt/cni/bin/wasmcni";
const CONFLIST: &str = "/etc/cni/net.d/10-wasmcni.conflist";
const MANIFEST: &str = "/etc/wasmcni/hooks/hooks.toml";
const MODULE: &str = "/etc/wasmcni/hooks/mods/guard.wasm";
const RECORD: &str = "/var/lib/cni/wasmcni/install.json";

#[test]
fn installs_files_with_modes_and_the_conflist_last() {
    let s = Setup::new();
    let disk = Recording::default();
    let compiler = FakeCompiler::default();
    let out = install(&s.req, &disk, &compiler).unwrap();
    assert_eq!(out.changed, 4, "{:?}", out.lines);
    assert_eq!(std::fs::read(s.real(BIN)).unwrap(), b"\x7fELF plugin v1");
    assert_eq!(s.mode(BIN), 0o755);
    assert_eq!(s.mode(CONFLIST), 0o644);
    assert_eq!(s.mode(MODULE), 0o644);
    assert_eq!(std::fs::read(s.real(MODULE)).unwrap(), b"\0asm guard");
    // Compiled from the source set, before anything was copied.
    assert_eq!(*compiler.calls.borrow(), vec![s.req.hooks_src.as_ref().unwrap().join("hooks.toml")]);

    let v: Value = serde_json::from_slice(&std::fs::read(s.real(CONFLIST)).unwrap()).unwrap();
    assert_eq!(v["plugins"][0]["hooksManifest"], MANIFEST);
    assert_eq!(v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"], "10.77.1.0/24");

    // The files the runtime looks at, in the order they were renamed into place: the conflist last.
    let writes: Vec<String> = disk.take().into_iter().filter(|w| w != "write install.json").collect();
    assert_eq!(writes, ["write wasmcni", "write hooks.toml", "write guard.wasm", "write 10-wasmcni.conflist"]);
    // No temporary file is left beside them.
    for dir in ["/opt/cni/bin", "/etc/cni/net.d"] {
        let names: Vec<_> = std::fs::read_dir(s.real(dir)).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "{dir}: {names:?}");
    }

    let rec = record::Record::load(&s.real(RECORD)).unwrap();
    let paths: Vec<_> = rec.files.iter().map(|e| e.path.display().to_string()).collect();
    for p in [BIN, MANIFEST, MODULE, CONFLIST, "/var/lib/cni/wasmcni/hook-cache/abc-123.cwasm"] {
        assert!(paths.contains(&p.to_string()), "{p} not in the record: {paths:?}");
    }
    assert_eq!(rec.get(Path::new(BIN)).unwrap().mode, 0o755);
    assert_eq!(rec.get(Path::new(BIN)).unwrap().sha256, record::sha256_hex(b"\x7fELF plugin v1"));
}

#[test]
fn a_second_run_changes_nothing_and_says_so() {
    let s = Setup::new();
    s.install(&Recording::default()).unwrap();
    let disk = Recording::default();
    let out = s.install(&disk).unwrap();
    assert_eq!(out.changed, 0);
    assert_eq!(disk.take(), Vec::<String>::new(), "a second run must not write anything");
    assert!(out.lines.iter().all(|l| l.starts_with("unchanged ") || l.starts_with("hook ")), "{:?}", out.lines);

    // A new binary replaces the old one through a new inode (a running ADD keeps its own).
    let before = std::fs::metadata(s.real(BIN)).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    std::fs::write(&s.req.source_bin, b"\x7fELF plugin v2").unwrap();
    let out = s.install(&disk).unwrap();
    assert_eq!(out.changed, 1);
    assert!(out.lines.contains(&format!("updated {BIN}")), "{:?}", out.lines);
    let after = std::fs::metadata(s.real(BIN)).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).unwrap();
    assert_ne!(before, after);
}

#[test]
fn a_file_changed_by_hand_is_kept_unless_forced() {
    let mut s = Setup::new();
    s.install(&Recording::default()).unwrap();
    std::fs::write(s.real(CONFLIST), b"{\"edited\": true}\n").unwrap();
    s.req.settings.mtu = Some(1400);
    std::fs::write(&s.req.source_bin, b"\x7fELF plugin v2").unwrap();
    let disk = Recording::default();
    let err = s.install(&disk).unwrap_err();
    assert!(matches!(err, InstallError::Conflicts(_)));
    let msg = err.to_string();
    assert!(msg.contains(CONFLIST) && msg.contains("changed by hand") && msg.contains("--force"), "{msg}");
    assert_eq!(disk.take(), Vec::<String>::new(), "a refused install writes nothing, not even the binary");
    assert_eq!(std::fs::read(s.real(CONFLIST)).unwrap(), b"{\"edited\": true}\n");
    assert_eq!(std::fs::read(s.real(BIN)).unwrap(), b"\x7fELF plugin v1");

    s.req.force = true;
    let out = s.install(&disk).unwrap();
    assert!(out.lines.iter().any(|l| l.starts_with("replaced") && l.ends_with(CONFLIST)), "{:?}", out.lines);
    let v: Value = serde_json::from_slice(&std::fs::read(s.real(CONFLIST)).unwrap()).unwrap();
    assert_eq!(v["plugins"][0]["mtu"], 1400);
}

#[test]
fn a_file_that_was_never_ours_is_not_overwritten() {
    let s = Setup::new();
    std::fs::create_dir_all(s.real("/opt/cni/bin")).unwrap();
    std::fs::write(s.real(BIN), b"someone's own build").unwrap();
    let err = s.install(&Recording::default()).unwrap_err().to_string();
    assert!(err.contains("was not written by wasmcni install"), "{err}");
    assert_eq!(std::fs::read(s.real(BIN)).unwrap(), b"someone's own build");
    assert!(!s.real(CONFLIST).exists());
}

#[test]
fn uninstall_removes_only_what_install_wrote() {
    let s = Setup::new();
    // Someone else's files in the same directories, before and after install.
    std::fs::create_dir_all(s.real("/opt/cni/bin")).unwrap();
    std::fs::write(s.real("/opt/cni/bin/bridge"), b"bridge").unwrap();
    s.install(&Recording::default()).unwrap();
    std::fs::write(s.real("/etc/cni/net.d/99-other.conflist"), b"{}").unwrap();
    std::fs::create_dir_all(s.real("/var/lib/cni/wasmcni/attachments/wasmcni")).unwrap();
    std::fs::write(s.real("/var/lib/cni/wasmcni/attachments/wasmcni/x@eth0.json"), b"{}").unwrap();

    let disk = Recording::default();
    let out = uninstall(&s.req.paths, false, &disk).unwrap();
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    // The conflist goes first: the runtime stops using the network before its binary disappears.
    let log = disk.take();
    assert_eq!(log.first().map(String::as_str), Some("remove 10-wasmcni.conflist"), "{log:?}");
    for gone in [BIN, CONFLIST, MANIFEST, MODULE, RECORD, "/var/lib/cni/wasmcni/hook-cache", "/etc/wasmcni"] {
        assert!(!s.real(gone).exists(), "{gone} is still there");
    }
    for kept in ["/opt/cni/bin/bridge", "/etc/cni/net.d/99-other.conflist", "/var/lib/cni/wasmcni/attachments/wasmcni/x@eth0.json"] {
        assert!(s.real(kept).exists(), "{kept} was removed");
    }
    // Again: nothing to do.
    let out = uninstall(&s.req.paths, false, &disk).unwrap();
    assert!(out.lines[0].starts_with("nothing to uninstall"), "{:?}", out.lines);
}

#[test]
fn uninstall_keeps_a_changed_file_unless_forced() {
    let s = Setup::new();
    s.install(&Recording::default()).unwrap();
    std::fs::write(s.real(MODULE), b"patched by hand").unwrap();
    let out = uninstall(&s.req.paths, false, &RealDisk).unwrap();
    assert!(out.warnings.iter().any(|w| w.contains(MODULE) && w.contains("--force")), "{:?}", out.warnings);
    assert!(s.real(MODULE).exists() && !s.real(BIN).exists());
    // The record still knows it, so --force can finish the job.
    let out = uninstall(&s.req.paths, true, &RealDisk).unwrap();
    assert!(out.warnings.is_empty());
    assert!(!s.real(MODULE).exists() && !s.real(RECORD).exists());
}

#[test]
fn another_cni_config_that_sorts_first_is_reported() {
    let s = Setup::new();
    std::fs::create_dir_all(s.real("/etc/cni/net.d")).unwrap();
    std::fs::write(s.real("/etc/cni/net.d/05-cilium.conflist"), b"{}").unwrap();
    std::fs::write(s.real("/etc/cni/net.d/99-loopback.conf"), b"{}").unwrap();
    std::fs::write(s.real("/etc/cni/net.d/00-notes.txt"), b"").unwrap();
    let out = s.install(&Recording::default()).unwrap();
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
    assert!(out.warnings[0].contains("05-cilium.conflist sorts before 10-wasmcni.conflist"), "{}", out.warnings[0]);
}

#[test]
fn a_smaller_hook_set_removes_the_files_it_no_longer_has() {
    let s = Setup::new();
    s.install(&Recording::default()).unwrap();
    let src = s.req.hooks_src.clone().unwrap();
    std::fs::remove_file(src.join("mods/guard.wasm")).unwrap();
    std::fs::write(src.join("hooks.toml"), b"").unwrap();
    let out = s.install(&Recording::default()).unwrap();
    assert!(out.lines.iter().any(|l| l == &format!("removed {MODULE} (no longer part of the install)")), "{:?}", out.lines);
    assert!(!s.real(MODULE).exists());
}

#[test]
fn binary_only_first_then_the_conflist() {
    let mut s = Setup::new();
    s.req.write_conflist = false;
    s.req.hooks_src = None;
    s.install(&Recording::default()).unwrap();
    assert!(s.real(BIN).exists() && !s.real(CONFLIST).exists());
    s.req.write_conflist = true;
    s.req.hooks_manifest = Some("/etc/wasmcni/hooks/current/hooks.toml".into());
    let out = s.install(&Recording::default()).unwrap();
    assert_eq!(out.changed, 1);
    let v: Value = serde_json::from_slice(&std::fs::read(s.real(CONFLIST)).unwrap()).unwrap();
    assert_eq!(v["plugins"][0]["hooksManifest"], "/etc/wasmcni/hooks/current/hooks.toml");
    // Going back to binary-only must not drop the conflist.
    s.req.write_conflist = false;
    s.install(&Recording::default()).unwrap();
    assert!(s.real(CONFLIST).exists());
}

#[test]
fn hooks_that_do_not_load_stop_the_install_before_any_file() {
    let s = Setup::new();
    let disk = Recording::default();
    let err = install(&s.req, &disk, &FakeCompiler { fail: true, ..Default::default() }).unwrap_err();
    assert!(err.to_string().contains("the hooks do not load, nothing was written"), "{err}");
    assert!(!s.real(BIN).exists() && !s.real(CONFLIST).exists() && !s.real(MANIFEST).exists());
}

#[test]
fn the_real_hook_library_refuses_a_module_that_is_not_a_component() {
    // The module in the setup is four bytes of junk: the plugin's own loader must say so.
    let s = Setup::new();
    let err = install(&s.req, &RealDisk, &HookLibrary).unwrap_err().to_string();
    assert!(err.contains("guard") && err.contains("not a valid hook component"), "{err}");
    assert!(!s.real(CONFLIST).exists());
    drop(s.tmp);
}
