//! The agent's own loop against the fake API server, with routes, install and hook validation faked, and
//! its HTTP endpoints on a loopback port.

pub mod fake_api;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmcni_agent::args::Args;
use wasmcni_agent::hooks::validate::Validate;
use wasmcni_agent::install::{InstallError, Installer};
use wasmcni_agent::routes::{Route, RouteError, RouteTable};
use wasmcni_agent::status::Shared;

#[derive(Clone, Default)]
pub struct Routes(pub Rc<RefCell<Vec<Route>>>);

impl Routes {
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = self.0.borrow().iter().map(ToString::to_string).collect();
        v.sort();
        v
    }
}

impl RouteTable for Routes {
    async fn connected(&self) -> Result<Vec<IpNet>, RouteError> {
        Ok(vec!["192.168.77.0/24".parse().unwrap()])
    }
    async fn ours(&self) -> Result<Vec<Route>, RouteError> {
        Ok(self.0.borrow().clone())
    }
    async fn add(&self, r: &Route) -> Result<(), RouteError> {
        self.0.borrow_mut().push(r.clone());
        Ok(())
    }
    async fn replace(&self, r: &Route) -> Result<(), RouteError> {
        self.0.borrow_mut().retain(|o| o.dst != r.dst);
        self.0.borrow_mut().push(r.clone());
        Ok(())
    }
    async fn delete(&self, r: &Route) -> Result<(), RouteError> {
        self.0.borrow_mut().retain(|o| o != r);
        Ok(())
    }
}

/// One install: the pod ranges and the manifest it named.
pub type Install = (Vec<String>, Option<PathBuf>);

/// Records each install.
#[derive(Clone, Default)]
pub struct Installs(pub Rc<RefCell<Vec<Install>>>);

impl Installer for Installs {
    async fn install(&self, pod_cidrs: &[IpNet], hooks_manifest: Option<&Path>) -> Result<String, InstallError> {
        self.0.borrow_mut().push((pod_cidrs.iter().map(ToString::to_string).collect(), hooks_manifest.map(Path::to_path_buf)));
        Ok("installed".into())
    }
    fn present(&self) -> bool {
        true
    }
}

/// Accepts any manifest without the word "broken".
pub struct Check;

impl Validate for Check {
    async fn validate(&self, manifest: &Path) -> Result<(), String> {
        match std::fs::read_to_string(manifest) {
            Ok(t) if t.contains("broken") => Err("hook guard: sha256 mismatch for guard.wasm".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

pub fn args(dir: &Path, kubeconfig: &Path, extra: &[&str]) -> Args {
    let d = |p: &str| dir.join(p).display().to_string();
    let mut a = vec![
        "wasmcni-agent".to_string(),
        "--node-name".into(),
        "n1".into(),
        "--kubeconfig".into(),
        kubeconfig.display().to_string(),
        "--resync".into(),
        "300ms".into(),
        "--run-dir".into(),
        d("run"),
        "--hook-dir".into(),
        d("hooks"),
        "--state-dir".into(),
        d("state"),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    Args::parse_from(a)
}

/// Polls `cond` until it holds, or panics with `what` after 15 s.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(15), "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn readyz(s: &Shared) -> String {
    s.lock().unwrap().readyz()
}

/// GET on the agent's HTTP port: (status code, body).
pub async fn get(port: u16, path: &str) -> (u16, String) {
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    let code = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, out.split_once("\r\n\r\n").unwrap().1.to_string())
}
