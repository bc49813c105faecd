//! The agent's Kubernetes side against a fake API server (real kube client, real list + watch over HTTP on
//! 127.0.0.1): pod CIDR assigned late, nodes added, changed and deleted, a watch that drops and resumes, a
//! 403 from RBAC, hook sets from a ConfigMap, and pod metadata files.

mod support;

use std::time::Duration;

use serde_json::json;
use support::fake_api::{node, FakeApi};
use support::*;
use wasmcni_agent::agent::{self, Deps};
use wasmcni_agent::{start, status};

/// Runs the agent against `api` while `script` drives the test; stops it when the script returns.
macro_rules! with_agent {
    ($api:expr, $args:expr, $routes:expr, $installs:expr, |$st:ident| $script:block) => {{
        let client = start::client($args.kubeconfig.as_deref()).await.unwrap();
        let sources = start::api_sources(client, &$args);
        let $st = status::shared();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let deps = Deps { routes: $routes.clone(), installer: $installs.clone(), validator: Check };
        let run = agent::run(&$args, sources, deps, $st.clone(), async move {
            let _ = stop_rx.await;
        });
        let script = async {
            $script;
            let _ = stop_tx.send(());
        };
        tokio::join!(run, script);
    }};
}

#[tokio::test]
async fn pod_cidr_assigned_late_then_nodes_added_changed_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.put("nodes", node("n1", &[], "192.168.77.1"));
    api.put("nodes", node("n2", &["10.77.1.0/24"], "192.168.77.2"));
    let args = args(tmp.path(), &api.kubeconfig(tmp.path()), &[]);
    let (routes, installs) = (Routes::default(), Installs::default());
    let listener = wasmcni_agent::http::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    with_agent!(api, args, routes, installs, |st| {
        tokio::spawn(wasmcni_agent::http::serve(listener, st.clone()));
        eventually("a route to n2 while n1 waits for its pod CIDR", || routes.list() == ["10.77.1.0/24 via 192.168.77.2"]).await;
        let (code, body) = get(port, "/readyz").await;
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("node n1 has no spec.podCIDRs yet"), "{body}");
        assert!(installs.0.borrow().is_empty(), "no install before the pod CIDR");
        assert_eq!(get(port, "/healthz").await, (200, "ok\n".into()));

        api.put("nodes", node("n1", &["10.77.0.0/24"], "192.168.77.1"));
        eventually("install with n1's pod CIDR", || installs.0.borrow().len() == 1).await;
        assert_eq!(installs.0.borrow()[0], (vec!["10.77.0.0/24".to_string()], None));
        eventually("ready", || st.lock().unwrap().ready()).await;
        assert_eq!(get(port, "/readyz").await.0, 200);

        api.put("nodes", node("n3", &["10.77.2.0/24"], "192.168.77.3"));
        eventually("a route to the new node n3", || routes.list().len() == 2).await;
        api.put("nodes", node("n3", &["10.77.2.0/24"], "192.168.77.33"));
        eventually("n3's route follows its new InternalIP", || routes.list().contains(&"10.77.2.0/24 via 192.168.77.33".to_string())).await;
        api.delete("nodes", "n2");
        eventually("n2's route removed", || routes.list() == ["10.77.2.0/24 via 192.168.77.33"]).await;
        let (_, metrics) = get(port, "/metrics").await;
        assert!(metrics.lines().any(|l| l == "wasmcni_agent_routes_managed 1"), "{metrics}");
        assert!(metrics.lines().any(|l| l == "wasmcni_agent_ready 1"), "{metrics}");
        assert_eq!(installs.0.borrow().len(), 1, "node events do not reinstall");
        // The watcher really listed, then watched from the list's resourceVersion.
        let reqs = api.requests();
        assert!(reqs.iter().any(|r| r.starts_with("LIST /api/v1/nodes")), "{reqs:?}");
        assert!(reqs.iter().any(|r| r.starts_with("WATCH /api/v1/nodes") && r.contains("resourceVersion=")), "{reqs:?}");
    });
}

#[tokio::test]
async fn a_dropped_watch_resumes_from_its_resource_version() {
    let tmp = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.put("nodes", node("n1", &["10.77.0.0/24"], "192.168.77.1"));
    api.put("nodes", node("n2", &["10.77.1.0/24"], "192.168.77.2"));
    let args = args(tmp.path(), &api.kubeconfig(tmp.path()), &[]);
    let (routes, installs) = (Routes::default(), Installs::default());
    with_agent!(api, args, routes, installs, |st| {
        eventually("route to n2", || routes.list().len() == 1).await;
        let watches = || api.requests().iter().filter(|r| r.starts_with("WATCH /api/v1/nodes")).count();
        let before = watches();
        api.drop_watches();
        // Changed while no watch is open: the resumed watch must still deliver it.
        api.put("nodes", node("n3", &["10.77.2.0/24"], "192.168.77.3"));
        eventually("the change made during the gap arrives", || routes.list().len() == 2).await;
        assert!(watches() > before, "the watch was not re-opened");
        let lists = api.requests().iter().filter(|r| r.starts_with("LIST /api/v1/nodes")).count();
        assert_eq!(lists, 1, "resumed from its resourceVersion, no relist: {:?}", api.requests());
        assert!(st.lock().unwrap().ready());
    });
}

#[tokio::test]
async fn a_403_from_rbac_names_the_missing_permission() {
    let tmp = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.put("nodes", node("n1", &["10.77.0.0/24"], "192.168.77.1"));
    api.forbid("nodes");
    let args = args(tmp.path(), &api.kubeconfig(tmp.path()), &[]);
    let (routes, installs) = (Routes::default(), Installs::default());
    with_agent!(api, args, routes, installs, |st| {
        eventually("the 403 on readyz", || readyz(&st).contains("forbidden")).await;
        let text = readyz(&st);
        assert!(
            text.contains("does not let this agent list nodes at cluster scope")
                && text.contains("needs get, list and watch on nodes")
                && text.contains("cannot list resource \"nodes\""),
            "{text}"
        );
        assert!(st.lock().unwrap().watch_errors_total >= 1);
        assert!(installs.0.borrow().is_empty());
        // Once RBAC is fixed the watcher's backoff retries and the node comes up.
        api.allow("nodes");
        eventually("ready after the permission is granted", || st.lock().unwrap().ready()).await;
    });
}

#[tokio::test]
async fn hook_sets_come_from_the_configmap_and_a_bad_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.put("nodes", node("n1", &["10.77.0.0/24"], "192.168.77.1"));
    let cm = |manifest: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "wasmcni-hooks", "namespace": "wasmcni-system"},
               "data": {"hooks.toml": manifest}, "binaryData": {"guard.wasm": "AGFzbQ=="}})
    };
    api.put("configmaps", cm("[[hooks]]\nname = \"guard\"\n"));
    let args = args(tmp.path(), &api.kubeconfig(tmp.path()), &["--hooks-configmap", "wasmcni-hooks", "--hooks-namespace", "wasmcni-system"]);
    let (routes, installs) = (Routes::default(), Installs::default());
    with_agent!(api, args, routes, installs, |st| {
        eventually("installed with the hook set", || installs.0.borrow().len() == 1).await;
        let manifest = tmp.path().join("hooks/current/hooks.toml");
        assert_eq!(installs.0.borrow()[0].1.as_deref(), Some(manifest.as_path()));
        assert_eq!(std::fs::read(tmp.path().join("hooks/current/guard.wasm")).unwrap(), b"\0asm", "binaryData decoded");
        let good = st.lock().unwrap().hook_version.clone().unwrap();

        api.put("configmaps", cm("[[hooks]]\nname = \"guard\" # broken\n"));
        eventually("the bad set is reported", || st.lock().unwrap().hook_rejected.is_some()).await;
        let s = st.lock().unwrap().clone();
        assert_eq!(s.hook_version.as_deref(), Some(good.as_str()), "the good set stays");
        assert!(s.readyz().contains("rejected (the previous set stays): hook guard: sha256 mismatch"), "{}", s.readyz());
        assert!(s.metrics().contains(&format!("wasmcni_agent_hook_set_info{{version=\"{good}\"}} 1")));
        assert_eq!(s.hook_rejected_total, 1);
        assert!(s.ready(), "a rejected update does not take a node with a good set out of service");
        assert!(std::fs::read_to_string(&manifest).unwrap().contains("name = \"guard\"\n"));
    });
}

#[tokio::test]
async fn pod_metadata_files_follow_this_nodes_pods() {
    let tmp = tempfile::tempdir().unwrap();
    let api = FakeApi::start().await;
    api.put("nodes", node("n1", &["10.77.0.0/24"], "192.168.77.1"));
    let pod = |name: &str, node: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop", "uid": format!("u-{name}"),
               "labels": {"app": "web"}}, "spec": {"nodeName": node, "serviceAccountName": "web", "containers": []}})
    };
    api.put("pods", pod("web-1", "n1"));
    api.put("pods", pod("elsewhere", "n2"));
    let args = args(tmp.path(), &api.kubeconfig(tmp.path()), &[]);
    let (routes, installs) = (Routes::default(), Installs::default());
    with_agent!(api, args, routes, installs, |st| {
        let file = tmp.path().join("run/pods/shop/web-1.json");
        eventually("web-1's metadata file", || file.exists()).await;
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v, json!({"uid": "u-web-1", "labels": {"app": "web"}, "annotations": {}, "serviceAccount": "web"}));
        assert!(!tmp.path().join("run/pods/shop/elsewhere.json").exists(), "only this node's pods");
        assert!(api.requests().iter().any(|r| r.contains("fieldSelector=spec.nodeName%3Dn1")), "{:?}", api.requests());
        api.delete("pods", "web-1");
        eventually("the file goes with the pod", || !file.exists()).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(st.lock().unwrap().pods_tracked, 0);
    });
}
