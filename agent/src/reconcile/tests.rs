use std::cell::{Cell, RefCell};
use std::path::Path;

use super::*;
use crate::install::InstallError;
use crate::node::NodeInfo;
use crate::routes::fake::FakeTable;
use crate::routes::Route;

#[derive(Default)]
struct FakeInstall {
    calls: RefCell<Vec<(Vec<IpNet>, Option<PathBuf>)>>,
    fail: Cell<bool>,
    removed_by_hand: Cell<bool>,
}

impl Installer for &FakeInstall {
    async fn install(&self, pod_cidrs: &[IpNet], hooks_manifest: Option<&Path>) -> Result<String, InstallError> {
        self.calls.borrow_mut().push((pod_cidrs.to_vec(), hooks_manifest.map(Path::to_path_buf)));
        if self.fail.get() {
            return Err(InstallError::Failed { code: 1, message: "/etc/cni/net.d/10-wasmcni.conflist was changed by hand".into() });
        }
        self.removed_by_hand.set(false);
        Ok("installed: 2 file(s) changed".into())
    }
    fn present(&self) -> bool {
        !self.removed_by_hand.get()
    }
}

fn node(name: &str, cidrs: &[&str], ip: &str) -> NodeInfo {
    NodeInfo { name: name.into(), pod_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(), internal_ips: vec![ip.parse().unwrap()] }
}

fn nodes(list: Vec<NodeInfo>) -> NodeSet {
    list.into_iter().map(|n| (n.name.clone(), n)).collect()
}

fn table() -> FakeTable {
    FakeTable { connected: vec!["192.168.77.0/24".parse().unwrap()], ..Default::default() }
}

#[tokio::test]
async fn waits_for_the_pod_cidr_then_installs_once() {
    let inst = FakeInstall::default();
    let mut r = Reconciler::new("n1".into(), table(), &inst);
    let mut set = nodes(vec![node("n1", &[], "192.168.77.1"), node("n2", &["10.77.1.0/24"], "192.168.77.2")]);
    let p = r.pass(&set, &Hooks::Disabled).await;
    assert!(p.waiting.as_deref().unwrap().contains("no spec.podCIDRs yet"), "{p:?}");
    assert!(p.waiting.as_deref().unwrap().contains("--allocate-node-cidrs"));
    assert!(inst.calls.borrow().is_empty());
    // Routes to the others do not wait for this node's own range.
    assert_eq!(p.routes_managed, 1);

    set.insert("n1".into(), node("n1", &["10.77.0.0/24"], "192.168.77.1"));
    let p = r.pass(&set, &Hooks::Disabled).await;
    assert_eq!(p.waiting, None, "{p:?}");
    assert_eq!(*inst.calls.borrow(), vec![(vec!["10.77.0.0/24".parse().unwrap()], None)]);
    r.pass(&set, &Hooks::Disabled).await;
    assert_eq!(inst.calls.borrow().len(), 1, "installed once for the same ranges");
    // Someone removed the conflist: the next pass puts it back.
    inst.removed_by_hand.set(true);
    r.pass(&set, &Hooks::Disabled).await;
    assert_eq!(inst.calls.borrow().len(), 2);
}

#[tokio::test]
async fn no_install_without_a_valid_hook_set_and_a_failed_install_says_why() {
    let inst = FakeInstall::default();
    let mut r = Reconciler::new("n1".into(), table(), &inst);
    let set = nodes(vec![node("n1", &["10.77.0.0/24"], "192.168.77.1")]);
    let p = r.pass(&set, &Hooks::Waiting("waiting for ConfigMap wasmcni-system/wasmcni-hooks".into())).await;
    assert_eq!(p.waiting.as_deref(), Some("waiting for ConfigMap wasmcni-system/wasmcni-hooks"));
    assert!(inst.calls.borrow().is_empty());

    inst.fail.set(true);
    let link = PathBuf::from("/etc/wasmcni/hooks/current/hooks.toml");
    let p = r.pass(&set, &Hooks::Ready(link.clone())).await;
    assert!(p.waiting.as_deref().unwrap().starts_with("install failed") && p.errors[0].contains("changed by hand"), "{p:?}");
    inst.fail.set(false);
    let p = r.pass(&set, &Hooks::Ready(link.clone())).await;
    assert_eq!(p.waiting, None);
    assert_eq!(inst.calls.borrow().last().unwrap().1.as_ref(), Some(&link));
}

#[tokio::test]
async fn routes_follow_nodes_coming_changing_and_leaving() {
    let inst = FakeInstall::default();
    let mut r = Reconciler::new("n1".into(), table(), &inst);
    let mut set = nodes(vec![node("n1", &["10.77.0.0/24"], "192.168.77.1"), node("n2", &["10.77.1.0/24"], "192.168.77.2")]);
    r.pass(&set, &Hooks::Disabled).await;
    let ours = |r: &Reconciler<FakeTable, &FakeInstall>| r.routes().ours.borrow().clone();
    assert_eq!(ours(&r), vec![Route { dst: "10.77.1.0/24".parse().unwrap(), via: "192.168.77.2".parse().unwrap() }]);
    set.insert("n3".into(), node("n3", &["10.77.2.0/24"], "192.168.77.3"));
    set.insert("n2".into(), node("n2", &["10.77.1.0/24"], "192.168.77.22"));
    r.pass(&set, &Hooks::Disabled).await;
    let mut got = ours(&r);
    got.sort();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].via, "192.168.77.22".parse::<std::net::IpAddr>().unwrap(), "a changed InternalIP moves the route");
    set.remove("n2");
    set.remove("n3");
    let p = r.pass(&set, &Hooks::Disabled).await;
    assert!(ours(&r).is_empty() && p.routes_managed == 0);
    // Deleted by hand: the next pass brings it back.
    set.insert("n2".into(), node("n2", &["10.77.1.0/24"], "192.168.77.2"));
    r.pass(&set, &Hooks::Disabled).await;
    r.routes().ours.borrow_mut().clear();
    let p = r.pass(&set, &Hooks::Disabled).await;
    assert_eq!((p.routes_managed, ours(&r).len()), (1, 1));
}

#[tokio::test]
async fn an_unknown_node_name_is_reported() {
    let inst = FakeInstall::default();
    let mut r = Reconciler::new("ghost".into(), table(), &inst);
    let p = r.pass(&nodes(vec![node("n1", &["10.77.0.0/24"], "192.168.77.1")]), &Hooks::Disabled).await;
    assert!(p.waiting.unwrap().contains("node ghost is not among the 1 nodes known (is NODE_NAME right?)"));
}
