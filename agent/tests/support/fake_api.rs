//! A fake Kubernetes API server on 127.0.0.1, just enough for kube-runtime's watcher: list (with a
//! resourceVersion), and watch from a resourceVersion (replaying the events after it, then live ones),
//! for nodes, pods and configmaps. Tests change objects through it, drop every open watch, or make a
//! resource answer 403 as RBAC would.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Default)]
struct State {
    rv: u64,
    /// resource ("nodes", "pods", "configmaps") -> name -> object
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    /// resource -> (rv, watch event line)
    history: BTreeMap<String, Vec<(u64, String)>>,
    watchers: Vec<(String, mpsc::UnboundedSender<String>)>,
    forbidden: BTreeSet<String>,
    requests: Vec<String>,
}

#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    pub port: u16,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let api = FakeApi { state: Arc::default(), port };
        let a = api.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let a = a.clone();
                tokio::spawn(async move { a.serve(conn).await });
            }
        });
        api
    }

    /// A kubeconfig pointing at this server, plain HTTP, no credentials.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let p = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.port
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    fn change(&self, resource: &str, kind: &str, mut obj: Value) {
        let mut s = self.state.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let objects = s.objects.entry(resource.into()).or_default();
        if kind == "DELETED" {
            objects.remove(&name);
        } else {
            objects.insert(name, obj.clone());
        }
        let line = json!({"type": kind, "object": obj}).to_string() + "\n";
        s.history.entry(resource.into()).or_default().push((rv, line.clone()));
        s.watchers.retain(|(r, tx)| r != resource || tx.send(line.clone()).is_ok());
    }

    pub fn put(&self, resource: &str, obj: Value) {
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let exists = self.state.lock().unwrap().objects.get(resource).is_some_and(|o| o.contains_key(&name));
        self.change(resource, if exists { "MODIFIED" } else { "ADDED" }, obj);
    }

    pub fn delete(&self, resource: &str, name: &str) {
        let obj = self.state.lock().unwrap().objects[resource][name].clone();
        self.change(resource, "DELETED", obj);
    }

    /// Ends every open watch stream, as an API server restart or a load balancer timeout would.
    pub fn drop_watches(&self) {
        self.state.lock().unwrap().watchers.clear();
    }

    pub fn forbid(&self, resource: &str) {
        self.state.lock().unwrap().forbidden.insert(resource.into());
    }

    pub fn allow(&self, resource: &str) {
        self.state.lock().unwrap().forbidden.remove(resource);
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    async fn serve(&self, mut conn: TcpStream) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let param = |k: &str| query.split('&').find_map(|kv| kv.strip_prefix(&format!("{k}="))).map(str::to_string);
        let resource = path.rsplit('/').next().unwrap_or("").to_string();
        let watch = param("watch").as_deref() == Some("true") || param("watch").as_deref() == Some("1");
        self.state.lock().unwrap().requests.push(format!("{} {target}", if watch { "WATCH" } else { "LIST" }));

        let forbidden = self.state.lock().unwrap().forbidden.contains(&resource);
        if forbidden {
            let verb = if watch { "watch" } else { "list" };
            let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{resource} is forbidden: User \"system:serviceaccount:wasmcni-system:wasmcni-agent\" cannot {verb} resource \"{resource}\" in API group \"\" at the cluster scope"),
                "reason": "Forbidden", "details": {"kind": resource}, "code": 403});
            return respond(&mut conn, 403, &body.to_string()).await;
        }
        let kind = match resource.as_str() {
            "nodes" => "Node",
            "pods" => "Pod",
            _ => "ConfigMap",
        };
        let field = param("fieldSelector").map(|f| f.replace("%3D", "=").replace("%2F", "/"));
        let matches = |o: &Value| match field.as_deref().and_then(|f| f.split_once('=')) {
            Some(("spec.nodeName", v)) => o["spec"]["nodeName"] == v,
            Some(("metadata.name", v)) => o["metadata"]["name"] == v,
            _ => true,
        };
        if !watch {
            let body = {
                let s = self.state.lock().unwrap();
                let items: Vec<Value> =
                    s.objects.get(&resource).map(|o| o.values().filter(|v| matches(v)).cloned().collect()).unwrap_or_default();
                json!({"kind": format!("{kind}List"), "apiVersion": "v1", "metadata": {"resourceVersion": s.rv.to_string()}, "items": items})
            };
            return respond(&mut conn, 200, &body.to_string()).await;
        }
        let from: u64 = param("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut s = self.state.lock().unwrap();
            for (rv, line) in s.history.get(&resource).into_iter().flatten() {
                if *rv > from {
                    let _ = tx.send(line.clone());
                }
            }
            s.watchers.push((resource.clone(), tx));
        }
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
        if conn.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        while let Some(line) = rx.recv().await {
            let obj: Value = serde_json::from_str(&line).unwrap();
            if !matches(&obj["object"]) {
                continue;
            }
            if conn.write_all(line.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = conn.shutdown().await;
    }
}

async fn respond(conn: &mut TcpStream, code: u16, body: &str) {
    let reason = if code == 200 { "OK" } else { "Forbidden" };
    let resp = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes()).await;
    let _ = conn.shutdown().await;
}

pub fn node(name: &str, cidrs: &[&str], ip: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
           "spec": {"podCIDRs": cidrs},
           "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}})
}
