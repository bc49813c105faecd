//! One pass: from the nodes the agent knows to this node's state. Routes to the other nodes first (they do
//! not depend on this node's own range), then the install once this node has its pod ranges and, if hooks
//! are shipped, a valid hook set. Every side effect goes through `RouteTable` and `Installer`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ipnet::IpNet;

use crate::install::Installer;
use crate::node::NodeSet;
use crate::routes::{self, RouteTable};

/// Where the hooks stand, as the install needs to know.
#[derive(Debug, Clone, PartialEq)]
pub enum Hooks {
    /// No hook source configured: the conflist names no manifest.
    Disabled,
    /// Configured, but no valid set yet: not installing, so no pod starts without its hooks.
    Waiting(String),
    /// The manifest to name (the `current` link).
    Ready(PathBuf),
}

#[derive(Debug, Default, PartialEq)]
pub struct Pass {
    /// Why this node is not ready; None when it is.
    pub waiting: Option<String>,
    pub routes_managed: usize,
    pub nodes_skipped: usize,
    pub errors: Vec<String>,
}

pub struct Reconciler<R, I> {
    me: String,
    routes: R,
    installer: I,
    installed_for: Option<(Vec<IpNet>, Option<PathBuf>)>,
    skipped: BTreeMap<String, String>,
}

impl<R: RouteTable, I: Installer> Reconciler<R, I> {
    pub fn new(me: String, routes: R, installer: I) -> Self {
        Reconciler { me, routes, installer, installed_for: None, skipped: BTreeMap::new() }
    }

    pub fn routes(&self) -> &R {
        &self.routes
    }

    pub async fn pass(&mut self, nodes: &NodeSet, hooks: &Hooks) -> Pass {
        let mut p = Pass::default();
        self.sync_routes(nodes, &mut p).await;
        p.waiting = self.install(nodes, hooks, &mut p).await;
        p
    }

    async fn sync_routes(&mut self, nodes: &NodeSet, p: &mut Pass) {
        let connected = match self.routes.connected().await {
            Ok(c) => c,
            Err(e) => return p.errors.push(format!("cannot read this node's addresses: {e}")),
        };
        let want = routes::wanted(&self.me, nodes, &connected);
        // One line per node when its reason appears or changes, not one per pass.
        for (node, why) in &want.skipped {
            if self.skipped.get(node) != Some(why) {
                crate::warn!("node.skipped", node = node, reason = why);
            }
        }
        for node in self.skipped.keys().filter(|n| !want.skipped.contains_key(*n)) {
            crate::info!("node.routable", node = node);
        }
        self.skipped = want.skipped.clone();
        p.nodes_skipped = want.skipped.len();
        match routes::sync(&self.routes, &want.routes).await {
            Ok(s) => {
                for r in &s.added {
                    crate::info!("route.added", dst = r.dst, via = r.via);
                }
                for r in &s.replaced {
                    crate::info!("route.replaced", dst = r.dst, via = r.via);
                }
                for r in &s.removed {
                    crate::info!("route.removed", dst = r.dst, via = r.via);
                }
                p.routes_managed = s.managed;
                p.errors.extend(s.errors);
            }
            Err(e) => p.errors.push(format!("cannot list routes: {e}")),
        }
    }

    async fn install(&mut self, nodes: &NodeSet, hooks: &Hooks, p: &mut Pass) -> Option<String> {
        let Some(me) = nodes.get(&self.me) else {
            return Some(format!("node {} is not among the {} nodes known (is NODE_NAME right?)", self.me, nodes.len()));
        };
        if me.pod_cidrs.is_empty() {
            return Some(format!(
                "node {} has no spec.podCIDRs yet (kube-controller-manager assigns them with --allocate-node-cidrs and --cluster-cidr)",
                self.me
            ));
        }
        let manifest = match hooks {
            Hooks::Disabled => None,
            Hooks::Waiting(why) => return Some(why.clone()),
            Hooks::Ready(m) => Some(m.clone()),
        };
        let key = (me.pod_cidrs.clone(), manifest.clone());
        if self.installed_for.as_ref() == Some(&key) && self.installer.present() {
            return None;
        }
        match self.installer.install(&me.pod_cidrs, manifest.as_deref()).await {
            Ok(summary) => {
                let cidrs: Vec<String> = me.pod_cidrs.iter().map(ToString::to_string).collect();
                crate::info!("install.done", pod_cidrs = cidrs.join(","), result = summary);
                self.installed_for = Some(key);
                None
            }
            Err(e) => {
                p.errors.push(e.to_string());
                Some(format!("install failed: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests;
