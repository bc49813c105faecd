//! The API side: watches of Nodes, this node's Pods and the hooks ConfigMap (kube-runtime's watcher: list,
//! then watch from its resourceVersion, relist on 410 Gone, backoff on errors), and errors told in terms
//! of what to fix.

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

pub type Events<K> = BoxStream<'static, Result<Event<K>, watcher::Error>>;

/// What a watch is about, for error messages.
#[derive(Debug, Clone)]
pub struct Watched {
    pub resource: &'static str,
    pub scope: String,
}

pub fn nodes(client: Client) -> (Events<Node>, Watched) {
    let w = watcher::watcher(Api::<Node>::all(client), watcher::Config::default()).default_backoff().boxed();
    (w, Watched { resource: "nodes", scope: "at cluster scope".into() })
}

/// Only the pods scheduled to this node: the API server filters, so a big cluster costs a node nothing.
pub fn pods(client: Client, node: &str) -> (Events<Pod>, Watched) {
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let w = watcher::watcher(Api::<Pod>::all(client), cfg).default_backoff().boxed();
    (w, Watched { resource: "pods", scope: "at cluster scope (field selector spec.nodeName)".into() })
}

pub fn configmap(client: Client, namespace: &str, name: &str) -> (Events<ConfigMap>, Watched) {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let w = watcher::watcher(Api::<ConfigMap>::namespaced(client, namespace), cfg).default_backoff().boxed();
    (w, Watched { resource: "configmaps", scope: format!("in namespace {namespace}") })
}

/// A watch error as a person needs it: a 403 names the verb, resource and scope the RBAC rules lack.
pub fn explain(e: &watcher::Error, w: &Watched) -> String {
    use watcher::Error as W;
    let (verb, status) = match e {
        W::InitialListFailed(k) => ("list", api_status(k)),
        W::WatchStartFailed(k) | W::WatchFailed(k) => ("watch", api_status(k)),
        W::WatchError(s) => ("watch", Some((s.code, s.message.clone()))),
        W::NoResourceVersion => return format!("the API server's list of {} had no resourceVersion; retrying", w.resource),
    };
    let (resource, scope) = (w.resource, &w.scope);
    match status {
        Some((403, msg)) => format!(
            "forbidden: the API server does not let this agent {verb} {resource} {scope} ({msg}); its ServiceAccount \
             needs get, list and watch on {resource} (deploy/10-rbac.yaml grants exactly that)"
        ),
        Some((401, msg)) => format!("unauthorized: the API server refused this agent's credentials ({msg}); is the ServiceAccount token mounted?"),
        Some((code, msg)) => format!("cannot {verb} {resource} {scope}: the API server answered {code}: {msg}"),
        None => format!("cannot {verb} {resource} {scope}: {e}; retrying"),
    }
}

fn api_status(e: &kube::Error) -> Option<(u16, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.message.clone())),
        _ => None,
    }
}
