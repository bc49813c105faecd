//! What the agent needs of a Node: its name, pod ranges (`spec.podCIDRs`, falling back to the older
//! single `spec.podCIDR`) and InternalIPs. Nodes come from the API watch or, offline, from a file; both
//! end up here, so the reconcile code cannot tell them apart.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub pod_cidrs: Vec<IpNet>,
    pub internal_ips: Vec<IpAddr>,
}

impl NodeInfo {
    /// Unparsable ranges or addresses are left out (and said so by the caller's reconcile, which then sees
    /// a node without them), never a reason to drop the other nodes.
    pub fn from_node(n: &Node) -> Option<NodeInfo> {
        let name = n.metadata.name.clone()?;
        let spec = n.spec.as_ref();
        let mut cidrs: Vec<String> = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
        if cidrs.is_empty() {
            cidrs.extend(spec.and_then(|s| s.pod_cidr.clone()));
        }
        let pod_cidrs = cidrs.iter().filter_map(|c| c.parse::<IpNet>().ok()).map(|c| c.trunc()).collect();
        let internal_ips = n
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .map(|addrs| addrs.iter().filter(|a| a.type_ == "InternalIP").filter_map(|a| a.address.parse().ok()).collect())
            .unwrap_or_default();
        Some(NodeInfo { name, pod_cidrs, internal_ips })
    }

    pub fn internal_ip(&self, v4: bool) -> Option<IpAddr> {
        self.internal_ips.iter().copied().find(|ip| ip.is_ipv4() == v4)
    }
}

/// The cluster's nodes by name, as last seen.
pub type NodeSet = BTreeMap<String, NodeInfo>;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read the nodes file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the nodes file {path} is not a JSON list of Node objects (or a NodeList): {source}")]
    Parse { path: String, source: serde_json::Error },
}

/// Offline mode's source: a JSON list of Node objects, or a NodeList as `kubectl get nodes -o json` prints.
pub fn read_file(path: &Path) -> Result<NodeSet, FileError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| FileError::Read { path: p.clone(), source })?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Shape {
        List(Vec<Node>),
        NodeList { items: Vec<Node> },
    }
    let nodes = match serde_json::from_slice::<Shape>(&bytes) {
        Ok(Shape::List(v)) | Ok(Shape::NodeList { items: v }) => v,
        Err(_) => {
            // Untagged errors say nothing useful: parse again as a list for serde's own message.
            let source = serde_json::from_slice::<Vec<Node>>(&bytes).expect_err("failed above");
            return Err(FileError::Parse { path: p, source });
        }
    };
    Ok(nodes.iter().filter_map(NodeInfo::from_node).map(|n| (n.name.clone(), n)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn node_json(name: &str, cidrs: &[&str], ip: &str) -> serde_json::Value {
        serde_json::json!({"metadata": {"name": name}, "spec": {"podCIDRs": cidrs},
                           "status": {"addresses": [{"type": "Hostname", "address": name}, {"type": "InternalIP", "address": ip}]}})
    }

    #[test]
    fn reads_lists_and_node_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("nodes.json");
        let list = serde_json::json!([node_json("a", &["10.77.0.0/24", "fd00:77::/64"], "192.168.77.1"),
                                      {"metadata": {"name": "b"}, "spec": {"podCIDR": "10.77.1.7/24"}}]);
        std::fs::write(&f, list.to_string()).unwrap();
        let set = read_file(&f).unwrap();
        assert_eq!(set["a"].pod_cidrs, vec!["10.77.0.0/24".parse::<IpNet>().unwrap(), "fd00:77::/64".parse().unwrap()]);
        assert_eq!(set["a"].internal_ip(true), Some("192.168.77.1".parse().unwrap()));
        assert_eq!(set["a"].internal_ip(false), None);
        // The old single field, normalized to its network.
        assert_eq!(set["b"].pod_cidrs, vec!["10.77.1.0/24".parse::<IpNet>().unwrap()]);
        std::fs::write(&f, serde_json::json!({"kind": "NodeList", "items": [node_json("c", &[], "192.168.77.3")]}).to_string()).unwrap();
        assert!(read_file(&f).unwrap()["c"].pod_cidrs.is_empty());
        std::fs::write(&f, "{\"items\": 3}").unwrap();
        assert!(read_file(&f).unwrap_err().to_string().contains("not a JSON list of Node objects"));
    }
}

/// The node set fed by watch events. A (re)list is buffered until it is complete, so a watch that drops
/// and relists never shows the reconcile a partial set (which would remove the routes of nodes not yet
/// listed again); nodes missing from a completed relist are gone.
#[derive(Debug, Default)]
pub struct NodeCache {
    pub live: NodeSet,
    relist: Option<NodeSet>,
    /// A first complete list has arrived.
    pub synced: bool,
}

impl NodeCache {
    /// Returns whether the live set changed.
    pub fn apply(&mut self, ev: kube::runtime::watcher::Event<Node>) -> bool {
        use kube::runtime::watcher::Event;
        match ev {
            Event::Init => {
                self.relist = Some(NodeSet::new());
                false
            }
            Event::InitApply(n) => {
                if let (Some(buf), Some(info)) = (self.relist.as_mut(), NodeInfo::from_node(&n)) {
                    buf.insert(info.name.clone(), info);
                }
                false
            }
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let changed = !self.synced || listed != self.live;
                self.live = listed;
                self.synced = true;
                changed
            }
            Event::Apply(n) => match NodeInfo::from_node(&n) {
                Some(info) => self.live.insert(info.name.clone(), info.clone()) != Some(info),
                None => false,
            },
            Event::Delete(n) => n.metadata.name.as_ref().is_some_and(|name| self.live.remove(name).is_some()),
        }
    }
}
