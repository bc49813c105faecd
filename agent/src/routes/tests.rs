use super::fake::FakeTable;
use super::*;
use crate::node::NodeInfo;

pub fn node(name: &str, cidrs: &[&str], ips: &[&str]) -> NodeInfo {
    NodeInfo {
        name: name.into(),
        pod_cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
        internal_ips: ips.iter().map(|c| c.parse().unwrap()).collect(),
    }
}

fn set(nodes: Vec<NodeInfo>) -> NodeSet {
    nodes.into_iter().map(|n| (n.name.clone(), n)).collect()
}

fn route(dst: &str, via: &str) -> Route {
    Route { dst: dst.parse().unwrap(), via: via.parse().unwrap() }
}

fn lan() -> Vec<IpNet> {
    vec!["192.168.77.0/24".parse().unwrap(), "fd00:77::/64".parse().unwrap()]
}

#[test]
fn one_route_per_other_node_and_family_via_its_internal_ip() {
    let nodes = set(vec![
        node("n1", &["10.77.0.0/24", "fd00:10::/64"], &["192.168.77.1", "fd00:77::1"]),
        node("n2", &["10.77.1.0/24", "fd00:11::/64"], &["192.168.77.2", "fd00:77::2"]),
        node("n3", &["10.77.2.0/24"], &["192.168.77.3"]),
    ]);
    let w = wanted("n1", &nodes, &lan());
    assert_eq!(
        w.routes,
        vec![route("10.77.1.0/24", "192.168.77.2"), route("10.77.2.0/24", "192.168.77.3"), route("fd00:11::/64", "fd00:77::2")]
    );
    assert!(w.skipped.is_empty(), "{:?}", w.skipped);
}

#[test]
fn nodes_that_cannot_be_routed_are_skipped_with_a_reason() {
    let nodes = set(vec![
        node("me", &["10.77.0.0/24"], &["192.168.77.1"]),
        node("far", &["10.77.1.0/24"], &["172.16.5.5"]),
        node("v6only", &["10.77.2.0/24"], &["fd00:77::9"]),
        node("clash", &["10.77.0.0/25"], &["192.168.77.4"]),
        node("a-dup", &["10.77.3.0/24"], &["192.168.77.5"]),
        node("b-dup", &["10.77.3.0/24"], &["192.168.77.6"]),
        node("pending", &[], &["192.168.77.7"]),
    ]);
    let w = wanted("me", &nodes, &lan());
    assert_eq!(w.routes, vec![route("10.77.3.0/24", "192.168.77.5")]);
    assert!(w.skipped["far"].contains("172.16.5.5 is not on-link"), "{:?}", w.skipped);
    assert!(w.skipped["v6only"].contains("no IPv4 InternalIP"));
    assert!(w.skipped["clash"].contains("overlaps this node's own 10.77.0.0/24"));
    assert!(w.skipped["b-dup"].contains("also node a-dup's"));
    // A node without a pod range yet needs no route and is not an error.
    assert!(!w.skipped.contains_key("pending"));
}

#[tokio::test]
async fn sync_adds_replaces_removes_and_never_touches_foreign_routes() {
    let table = FakeTable {
        connected: lan(),
        ours: vec![route("10.77.1.0/24", "192.168.77.9"), route("10.77.5.0/24", "192.168.77.5")].into(),
        foreign: vec![route("10.77.3.0/24", "192.168.77.254")],
        ..Default::default()
    };
    let want = vec![route("10.77.1.0/24", "192.168.77.2"), route("10.77.2.0/24", "192.168.77.3"), route("10.77.3.0/24", "192.168.77.4")];
    let s = sync(&table, &want).await.unwrap();
    assert_eq!(s.added, vec![route("10.77.2.0/24", "192.168.77.3")]);
    assert_eq!(s.replaced, vec![route("10.77.1.0/24", "192.168.77.2")]);
    assert_eq!(s.removed, vec![route("10.77.5.0/24", "192.168.77.5")], "the route of a node that left goes");
    assert_eq!(s.managed, 2);
    assert_eq!(s.errors.len(), 1);
    assert!(s.errors[0].contains("a route to 10.77.3.0/24 exists that wasmcni did not make"), "{:?}", s.errors);
    // In sync: a second pass changes nothing.
    let calls_before = table.calls.borrow().len();
    let again = sync(&table, &want[..2]).await.unwrap();
    assert_eq!((again.added.len(), again.replaced.len(), again.removed.len(), again.managed), (0, 0, 0, 2));
    assert_eq!(table.calls.borrow().len(), calls_before);
}
