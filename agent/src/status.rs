//! What the agent knows about itself, shared between the reconcile loop and the HTTP endpoints:
//! `/readyz` text for people and kubelet, `/metrics` in Prometheus text format.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default, Clone)]
pub struct Status {
    /// Why the node is not ready yet (no podCIDRs, no valid hook set, install failed...); None when ready.
    pub waiting: Option<String>,
    pub routes_managed: usize,
    pub nodes_skipped: usize,
    pub reconcile_errors_total: u64,
    pub watch_errors_total: u64,
    pub last_sync: Option<SystemTime>,
    pub last_error: Option<String>,
    pub hook_version: Option<String>,
    /// The last refused hook set and why, while it is the one on offer.
    pub hook_rejected: Option<(String, String)>,
    pub hook_rejected_total: u64,
    pub pods_tracked: usize,
}

pub type Shared = Arc<Mutex<Status>>;

pub fn shared() -> Shared {
    Arc::new(Mutex::new(Status { waiting: Some("starting".into()), ..Status::default() }))
}

impl Status {
    pub fn ready(&self) -> bool {
        self.waiting.is_none()
    }

    /// The /readyz body: the verdict first, then the details that explain it.
    pub fn readyz(&self) -> String {
        let mut s = match &self.waiting {
            None => "ready\n".to_string(),
            Some(why) => format!("not ready: {why}\n"),
        };
        let _ = writeln!(s, "routes managed: {}, nodes skipped: {}", self.routes_managed, self.nodes_skipped);
        if let Some(v) = &self.hook_version {
            let _ = writeln!(s, "hook set: {v}");
        }
        if let Some((v, why)) = &self.hook_rejected {
            let _ = writeln!(s, "hook set {v} rejected (the previous set stays): {why}");
        }
        if let Some(e) = &self.last_error {
            let _ = writeln!(s, "last error: {e}");
        }
        s
    }

    pub fn metrics(&self) -> String {
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = write!(s, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{value}\n");
        };
        metric("wasmcni_agent_ready", "gauge", "1 when this node's pod network is installed and routed.", format!(" {}", u8::from(self.ready())));
        metric("wasmcni_agent_routes_managed", "gauge", "Routes to other nodes' pod ranges this agent keeps.", format!(" {}", self.routes_managed));
        metric("wasmcni_agent_nodes_skipped", "gauge", "Other nodes with no route (not on-link, no InternalIP of the family).", format!(" {}", self.nodes_skipped));
        metric("wasmcni_agent_reconcile_errors_total", "counter", "Reconcile passes that failed in part or whole.", format!(" {}", self.reconcile_errors_total));
        metric("wasmcni_agent_watch_errors_total", "counter", "Errors from the API watches (each retried with backoff).", format!(" {}", self.watch_errors_total));
        let ts = self.last_sync.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        metric("wasmcni_agent_last_sync_timestamp_seconds", "gauge", "When the last reconcile pass succeeded (Unix time).", format!(" {ts:.3}"));
        if let Some(v) = &self.hook_version {
            metric("wasmcni_agent_hook_set_info", "gauge", "The hook set in use on this node.", format!("{{version=\"{v}\"}} 1"));
        }
        metric("wasmcni_agent_hook_set_rejected_total", "counter", "Hook sets refused by validation.", format!(" {}", self.hook_rejected_total));
        metric("wasmcni_agent_pods_tracked", "gauge", "Pods of this node whose metadata is kept for hooks.", format!(" {}", self.pods_tracked));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_and_metrics_say_what_is_going_on() {
        let mut st = Status { waiting: Some("node n1 has no spec.podCIDRs yet".into()), ..Status::default() };
        assert!(st.readyz().starts_with("not ready: node n1 has no spec.podCIDRs yet\n"));
        st.waiting = None;
        st.routes_managed = 2;
        st.hook_version = Some("0123abcd0123abcd".into());
        st.hook_rejected = Some(("ffff".into(), "hook x: sha256 mismatch".into()));
        st.last_sync = Some(UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000));
        assert!(st.readyz().starts_with("ready\n") && st.readyz().contains("hook set ffff rejected"));
        let m = st.metrics();
        for line in [
            "wasmcni_agent_ready 1",
            "wasmcni_agent_routes_managed 2",
            "wasmcni_agent_last_sync_timestamp_seconds 1700000000.000",
            "wasmcni_agent_hook_set_info{version=\"0123abcd0123abcd\"} 1",
            "# TYPE wasmcni_agent_reconcile_errors_total counter",
        ] {
            assert!(m.lines().any(|l| l == line), "missing {line:?} in\n{m}");
        }
    }
}
