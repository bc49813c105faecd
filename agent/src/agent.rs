//! The agent's loop: events from the sources (API watches, or the nodes file at every resync) update what
//! the agent knows; a change, or the resync tick, runs one reconcile pass. Sources and side effects are
//! passed in, so tests run this very loop against a fake API server and fake routes.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::runtime::watcher::Event;

use crate::args::Args;
use crate::hooks::source::{self, HookFiles};
use crate::hooks::store::SetDir;
use crate::hooks::validate::Validate;
use crate::hooks::{HookSync, Offer};
use crate::install::Installer;
use crate::node::{self, NodeCache};
use crate::pods::{PodDir, PodStore, PodSync};
use crate::reconcile::{Hooks, Pass, Reconciler};
use crate::routes::RouteTable;
use crate::status::Shared;
use crate::watch::{explain, Events, Watched};

pub enum NodeSource {
    Api(Events<Node>, Watched),
    File(PathBuf),
}

pub struct Sources {
    pub nodes: NodeSource,
    pub pods: Option<(Events<Pod>, Watched)>,
    pub configmap: Option<(Events<ConfigMap>, Watched)>,
}

pub struct Deps<R, I, V> {
    pub routes: R,
    pub installer: I,
    pub validator: V,
}

/// A node path under `--root`.
pub fn real(root: Option<&Path>, p: &Path) -> PathBuf {
    match root {
        Some(r) => r.join(p.strip_prefix("/").unwrap_or(p)),
        None => p.to_path_buf(),
    }
}

fn or_pending<K: Send + 'static>(s: Option<(Events<K>, Watched)>) -> (Events<K>, Option<Watched>) {
    match s {
        Some((e, w)) => (e, Some(w)),
        None => (futures::stream::pending().boxed(), None),
    }
}

/// Runs until `shutdown` completes. Leaves routes, conflist and hooks in place when it stops: pods keep
/// their network while the agent restarts or is upgraded.
pub async fn run<R, I, V>(args: &Args, src: Sources, deps: Deps<R, I, V>, status: Shared, shutdown: impl Future<Output = ()>)
where
    R: RouteTable,
    I: Installer,
    V: Validate,
{
    let root = args.root.as_deref();
    let mut rec = Reconciler::new(args.node_name.clone(), deps.routes, deps.installer);
    let mut hooks = args.hooks_enabled().then(|| HookSync::new(SetDir::new(real(root, &args.hook_dir)), deps.validator));
    let mut pods = PodSync::new(PodDir::new(&real(root, &args.run_dir)));
    let mut nodes = NodeCache::default();
    let (mut node_events, node_watch, nodes_file) = match src.nodes {
        NodeSource::Api(e, w) => (e, Some(w), None),
        NodeSource::File(f) => (futures::stream::pending().boxed(), None, Some(f)),
    };
    let (mut pod_events, pod_watch) = or_pending(src.pods);
    let cm_name = src.configmap.as_ref().map(|_| format!("{}/{}", args.hooks_namespace, args.hooks_configmap.clone().unwrap_or_default()));
    let (mut cm_events, cm_watch) = or_pending(src.configmap);
    let mut cm: Option<ConfigMap> = None;
    let mut cm_relist: Option<Option<ConfigMap>> = None;
    let mut cm_synced = cm_watch.is_none();
    let mut tick = tokio::time::interval(args.resync);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    let mut was_waiting: Option<Option<String>> = None;
    let mut throttle = Throttle::default();
    crate::info!("agent.started", node = args.node_name, mode = if nodes_file.is_some() { "offline" } else { "api" });

    loop {
        let (mut dirty, mut hooks_dirty) = (false, false);
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                (dirty, hooks_dirty) = (true, true);
                if let Some(f) = &nodes_file {
                    // A broken file keeps the last good set: removing every route for a typo is worse.
                    match node::read_file(f) {
                        Ok(set) => {
                            nodes.live = set;
                            nodes.synced = true;
                        }
                        Err(e) => fail(&status, &mut throttle, "nodes_file.error", e.to_string(), !nodes.synced),
                    }
                }
                let tracked = pods.store.list().map(|l| l.len()).unwrap_or(0);
                lock(&status).pods_tracked = tracked;
            }
            Some(ev) = node_events.next() => match ev {
                Ok(e) => dirty = nodes.apply(e),
                Err(e) => fail(&status, &mut throttle, "watch.error", explain(&e, node_watch.as_ref().expect("api mode")), !nodes.synced),
            },
            Some(ev) = cm_events.next() => match ev {
                Ok(Event::Init) => cm_relist = Some(None),
                Ok(Event::InitApply(c)) => cm_relist = Some(Some(c)),
                Ok(Event::InitDone) => {
                    cm = cm_relist.take().flatten();
                    (cm_synced, hooks_dirty) = (true, true);
                }
                Ok(Event::Apply(c)) => (cm, hooks_dirty) = (Some(c), true),
                Ok(Event::Delete(_)) => (cm, hooks_dirty) = (None, true),
                Err(e) => fail(&status, &mut throttle, "watch.error", explain(&e, cm_watch.as_ref().expect("configmap watch")), false),
            },
            Some(ev) = pod_events.next() => match ev {
                Ok(e) => match pods.apply(e) {
                    Ok(a) => if let Some(n) = a.listed {
                        crate::info!("pods.listed", pods = n, removed = a.removed);
                        lock(&status).pods_tracked = n;
                    },
                    Err(e) => fail(&status, &mut throttle, "pods.error", format!("cannot write pod metadata: {e}"), false),
                },
                Err(e) => fail(&status, &mut throttle, "watch.error", explain(&e, pod_watch.as_ref().expect("pod watch")), false),
            },
        }
        if hooks_dirty && cm_synced {
            if let Some(h) = hooks.as_mut() {
                dirty |= offer_hooks(h, args, cm.as_ref(), &status).await;
            }
        }
        if dirty && nodes.synced {
            let state = hook_state(hooks.as_ref(), cm_synced, cm_name.as_deref(), args);
            let pass = rec.pass(&nodes.live, &state).await;
            record(&status, &pass);
            if was_waiting.as_ref() != Some(&pass.waiting) {
                match &pass.waiting {
                    None => crate::info!("agent.ready", routes = pass.routes_managed),
                    Some(why) => crate::warn!("agent.waiting", reason = why),
                }
                was_waiting = Some(pass.waiting);
            }
        }
    }
    crate::info!("agent.stopped", note = "routes, conflist and hooks stay in place");
}

/// The same error repeats on every retry of a watch (a 403 about once a second): log it once a minute.
#[derive(Default)]
struct Throttle(HashMap<String, Instant>);

impl Throttle {
    fn should_log(&mut self, message: &str) -> bool {
        let now = Instant::now();
        self.0.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
        match self.0.get(message) {
            Some(_) => false,
            None => {
                self.0.insert(message.to_string(), now);
                true
            }
        }
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, crate::status::Status> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

fn fail(status: &Shared, throttle: &mut Throttle, event: &str, message: String, blocks_ready: bool) {
    if throttle.should_log(&message) {
        crate::error!(event, message = message);
    }
    let mut s = lock(status);
    s.watch_errors_total += u64::from(event == "watch.error");
    if blocks_ready {
        s.waiting = Some(message.clone());
    }
    s.last_error = Some(message);
}

fn record(status: &Shared, p: &Pass) {
    let mut s = lock(status);
    s.waiting = p.waiting.clone();
    s.routes_managed = p.routes_managed;
    s.nodes_skipped = p.nodes_skipped;
    if p.errors.is_empty() {
        s.last_sync = Some(SystemTime::now());
        s.last_error = None;
    } else {
        s.reconcile_errors_total += 1;
        let e = p.errors.join("; ");
        crate::error!("reconcile.error", message = e);
        s.last_error = Some(e);
    }
}

fn hook_state<V: Validate>(h: Option<&HookSync<V>>, cm_synced: bool, cm_name: Option<&str>, args: &Args) -> Hooks {
    let Some(h) = h else { return Hooks::Disabled };
    if h.current().is_some() {
        return Hooks::Ready(SetDir::new(args.hook_dir.clone()).manifest_link());
    }
    Hooks::Waiting(match (h.rejected(), cm_name) {
        (Some((v, why)), _) => format!("hook set {v} was rejected and there is no earlier valid set: {why}"),
        (None, Some(name)) if !cm_synced => format!("waiting for the hooks ConfigMap {name}"),
        (None, _) => "no hook set yet".into(),
    })
}

/// Offers the current hook files; returns whether the node's hook set changed.
async fn offer_hooks<V: Validate>(h: &mut HookSync<V>, args: &Args, cm: Option<&ConfigMap>, status: &Shared) -> bool {
    let files = match args.hooks_image_dir.as_deref().map(|d| source::from_dir(&real(args.root.as_deref(), d))) {
        Some(Err(e)) => {
            crate::error!("hooks.error", message = e);
            lock(status).last_error = Some(e.to_string());
            return false;
        }
        Some(Ok(f)) => f,
        None => HookFiles::default(),
    };
    let files = match cm.map(|c| source::overlay_configmap(files.clone(), c)) {
        Some(Err(e)) => Err(e.to_string()),
        Some(Ok(f)) => Ok(f),
        None => Ok(files),
    };
    let offer = match files {
        Ok(f) => h.offer(f).await,
        Err(reason) => Offer::Rejected { version: "unreadable".into(), reason },
    };
    let mut s = lock(status);
    s.hook_version = h.current();
    match offer {
        Offer::Switched { from, to } => {
            crate::info!("hooks.switched", from = from.unwrap_or_else(|| "none".into()), to = to);
            s.hook_rejected = None;
            true
        }
        Offer::Rejected { version, reason } => {
            crate::error!("hooks.rejected", version = version, reason = reason, kept = s.hook_version.clone().unwrap_or_else(|| "none".into()));
            s.hook_rejected_total += 1;
            s.hook_rejected = Some((version, reason));
            false
        }
        Offer::Unchanged(_) => {
            s.hook_rejected = None;
            false
        }
        Offer::StillRejected { .. } => false,
    }
}
