//! Fixtures: one TOML file per case, for a hook in any language. A fixture gives the stage, the inputs
//! (attachment, config, plan or result, the network's ranges) and what to expect (plan fields, the rule list,
//! or an error), and runs the built component through the same runner and validation the plugin uses.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::manifest::{HookSpec, Stage};
use super::call::{Failure, LoadedHook};
use super::engine::{wit, HookEngine};
use super::validate;
use crate::ipam::IpamConfig;

/// What a fixture calls: one of the stages, or the hook's check of its config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FixtureStage {
    PreAdd,
    PostAdd,
    Del,
    ValidateConfig,
}

impl FixtureStage {
    fn manifest_stage(self) -> Stage {
        match self {
            FixtureStage::PreAdd | FixtureStage::ValidateConfig => Stage::PreAdd,
            FixtureStage::PostAdd => Stage::PostAdd,
            FixtureStage::Del => Stage::Del,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    pub description: String,
    pub stage: FixtureStage,
    #[serde(default)]
    pub network: Option<NetworkIn>,
    #[serde(default)]
    pub attachment: AttachmentIn,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub plan: PlanIn,
    #[serde(default)]
    pub result: ResultIn,
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Per-call limits, as in the manifest.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub memory_mb: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkIn {
    pub subnet: String,
    /// "ptp" (the default) or "bridge": the result then lists the bridge first, as the plugin's does.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub bridge: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AttachmentIn {
    container_id: Option<String>,
    ifname: Option<String>,
    netns: Option<String>,
    network: Option<String>,
    pod_namespace: Option<String>,
    pod_name: Option<String>,
    pod_uid: Option<String>,
    #[serde(default)]
    args: Vec<(String, String)>,
    runtime_config: Option<Value>,
    /// What the node agent would know of the pod (empty by default, as without the agent).
    #[serde(default)]
    pod_labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pod_annotations: std::collections::BTreeMap<String, String>,
    service_account: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PlanIn {
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    routes: Vec<RouteIn>,
    mtu: Option<u32>,
    mac: Option<String>,
    #[serde(default)]
    nameservers: Vec<String>,
}

#[derive(Deserialize, Clone, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteIn {
    dst: String,
    gw: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResultIn {
    /// Pod addresses with prefix length; the gateway is the subnet's first address.
    #[serde(default)]
    ips: Vec<String>,
    #[serde(default)]
    nameservers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// pre-add: these fields of the returned plan (fields not listed are not compared).
    plan: Option<Map<String, Value>>,
    /// post-add: the whole rule list, in order.
    rules: Option<Vec<Map<String, Value>>>,
    /// Any stage: the call fails with a message containing this.
    error: Option<String>,
}

/// The stage's answer, as JSON (what `wasmcni hook run` prints and fixtures compare).
pub type Answer = Result<Value, String>;

impl Fixture {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
    }

    /// Overrides the pod's namespace and name (for `hook run`).
    pub fn set_pod(&mut self, namespace: Option<String>, name: Option<String>) {
        if namespace.is_some() {
            self.attachment.pod_namespace = namespace;
        }
        if name.is_some() {
            self.attachment.pod_name = name;
        }
    }

    pub fn spec(&self, module: &Path) -> HookSpec {
        let mut spec = HookSpec::new("fixture", module.to_path_buf(), vec![self.stage.manifest_stage()]);
        spec.timeout_ms = self.timeout_ms.unwrap_or(spec.timeout_ms);
        spec.memory_mb = self.memory_mb.unwrap_or(spec.memory_mb);
        spec.config = self.config.clone();
        spec
    }

    fn attachment(&self, hook: &LoadedHook) -> wit::Attachment {
        let a = &self.attachment;
        wit::Attachment {
            container_id: a.container_id.clone().unwrap_or_else(|| "fixture".into()),
            ifname: a.ifname.clone().unwrap_or_else(|| "eth0".into()),
            netns: a.netns.clone().unwrap_or_else(|| "/var/run/netns/fixture".into()),
            network: a.network.clone().unwrap_or_else(|| "podnet".into()),
            pod_namespace: Some(a.pod_namespace.clone().unwrap_or_else(|| "default".into())),
            pod_name: Some(a.pod_name.clone().unwrap_or_else(|| "test".into())),
            pod_uid: a.pod_uid.clone(),
            args: a.args.clone(),
            runtime_config: a.runtime_config.as_ref().map(Value::to_string).unwrap_or_else(|| "{}".into()),
            config: hook.spec.config_json(),
            pod_labels: a.pod_labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            pod_annotations: a.pod_annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            service_account: a.service_account.clone(),
        }
    }

    fn subnet(&self) -> &str {
        self.network.as_ref().map(|n| n.subnet.as_str()).unwrap_or("10.0.0.0/8")
    }

    /// Calls the stage and validates the answer exactly as the plugin would.
    pub fn run(&self, hook: &LoadedHook) -> Answer {
        let att = self.attachment(hook);
        let dns = |ns: &[String]| wit::Dns { nameservers: ns.to_vec(), domain: None, search: vec![], options: vec![] };
        let fail = |f: Failure| f.to_string();
        // The network as the plugin would read it: ranges and gateway defaulted like host-local's.
        let ipam = IpamConfig::parse(&json!({"subnet": self.subnet()})).map_err(|e| format!("network.subnet: {e}"))?;
        match self.stage {
            FixtureStage::PreAdd => {
                let p = &self.plan;
                let plan = wit::Plan {
                    ips: p.ips.clone(),
                    routes: p.routes.iter().map(|r| wit::Route { dst: r.dst.clone(), gw: r.gw.clone() }).collect(),
                    mtu: p.mtu,
                    mac: p.mac.clone(),
                    dns: dns(&p.nameservers),
                };
                let out = hook.pre_add(&att, &plan).map_err(fail)?;
                let checked = validate::plan(out, Some(&ipam)).map_err(|e| fail(Failure::Invalid(e)))?;
                // Absent values are left out rather than null: TOML, where expectations are written, has no null.
                let routes: Vec<Value> = checked
                    .routes
                    .iter()
                    .map(|r| match r.gw {
                        Some(gw) => json!({"dst": r.dst.to_string(), "gw": gw.to_string()}),
                        None => json!({"dst": r.dst.to_string()}),
                    })
                    .collect();
                let mut out = json!({
                    "ips": checked.requested_ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
                    "routes": routes,
                    "nameservers": checked.dns.nameservers,
                });
                if let Some(mtu) = checked.mtu {
                    out["mtu"] = json!(mtu);
                }
                if let Some(mac) = checked.mac {
                    out["mac"] = json!(crate::netaddr::hex(&mac, ":"));
                }
                Ok(out)
            }
            FixtureStage::PostAdd => {
                let gw = ipam.ranges[0][0].gateway.to_string();
                let iface = |name: &str, mac: &str, sandbox: Option<String>| wit::Iface { name: name.into(), mac: mac.into(), sandbox };
                let network = self.network.as_ref();
                let bridge = network
                    .filter(|n| n.mode.as_deref() == Some("bridge"))
                    .map(|n| iface(n.bridge.as_deref().unwrap_or("cni0"), "02:00:00:00:00:03", None));
                // Laid out exactly as the plugin lays out its result (the SDK's builders use the same function).
                let (interfaces, pod) = wasmcni_hooks_sdk::layout::interfaces(
                    bridge,
                    iface("wcnifixture0000", "02:00:00:00:00:01", None),
                    iface(&att.ifname, "02:00:00:00:00:02", Some(att.netns.clone())),
                );
                let result = wit::AddResult {
                    interfaces,
                    ips: self
                        .result
                        .ips
                        .iter()
                        .map(|a| wit::IpConfig { address: a.clone(), gateway: Some(gw.clone()), iface: Some(pod) })
                        .collect(),
                    routes: vec![],
                    dns: dns(&self.result.nameservers),
                };
                let rules = hook.post_add(&att, &result).map_err(fail)?;
                let rules = validate::rules(rules).map_err(|e| fail(Failure::Invalid(e)))?;
                Ok(Value::Array(rules.iter().map(rule_json).collect()))
            }
            FixtureStage::Del => hook.del(&att).map(|_| json!("ok")).map_err(fail),
            FixtureStage::ValidateConfig => hook.validate_config(&att.config).map(|_| json!("ok")).map_err(fail),
        }
    }

    /// None when the answer is what the fixture expects, else a readable explanation with a diff.
    pub fn check(&self, answer: &Answer) -> Option<String> {
        // No expectations: the call must simply succeed (the usual del fixture).
        let Some(expect) = &self.expect else { return answer.as_ref().err().map(|e| format!("the hook failed: {e}")) };
        let misplaced = match self.stage {
            FixtureStage::PreAdd => expect.rules.is_some().then_some("expect.rules is for post-add fixtures"),
            FixtureStage::PostAdd => expect.plan.is_some().then_some("expect.plan is for pre-add fixtures"),
            FixtureStage::Del | FixtureStage::ValidateConfig => {
                (expect.rules.is_some() || expect.plan.is_some()).then_some("a del or validate-config fixture can only expect an error")
            }
        };
        if let Some(m) = misplaced {
            return Some(m.to_string());
        }
        match (answer, &expect.error) {
            (Err(e), Some(want)) if e.contains(want.as_str()) => None,
            (Err(e), Some(want)) => Some(format!("expected an error containing {want:?}, got: {e}")),
            (Err(e), None) => Some(format!("the hook failed: {e}")),
            (Ok(v), Some(want)) => Some(format!("expected an error containing {want:?}, got an answer:\n{}", pretty(v))),
            (Ok(v), None) => match self.stage {
                FixtureStage::PreAdd => {
                    let want = expect.plan.clone().unwrap_or_default();
                    let got: Map<String, Value> =
                        want.keys().map(|k| (k.clone(), v.get(k).cloned().unwrap_or(Value::Null))).collect();
                    let want = Value::Object(want.into_iter().collect());
                    diff(&want, &Value::Object(got))
                }
                FixtureStage::PostAdd => {
                    let want: Vec<Value> = expect.rules.clone().unwrap_or_default().into_iter().map(normalize_rule).collect();
                    diff(&Value::Array(want), v)
                }
                FixtureStage::Del | FixtureStage::ValidateConfig => None,
            },
        }
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn diff(want: &Value, got: &Value) -> Option<String> {
    if want == got {
        return None;
    }
    let (w, g) = (pretty(want), pretty(got));
    let text = similar::TextDiff::from_lines(&w, &g).unified_diff().header("expected", "actual").to_string();
    Some(format!("the answer differs from the fixture's expect:\n{text}"))
}

fn rule_json(r: &crate::firewall::HookRule) -> Value {
    use crate::firewall::{Action, Direction, Protocol};
    let mut m = Map::new();
    m.insert("direction".into(), json!(match r.direction { Direction::Ingress => "ingress", Direction::Egress => "egress" }));
    m.insert(
        "protocol".into(),
        json!(match r.protocol { Protocol::Any => "any", Protocol::Tcp => "tcp", Protocol::Udp => "udp", Protocol::Icmp => "icmp" }),
    );
    if let Some((a, b)) = r.ports {
        m.insert("ports".into(), json!(if a == b { a.to_string() } else { format!("{a}-{b}") }));
    }
    if let Some(p) = r.peer {
        m.insert("peer".into(), json!(p.to_string()));
    }
    m.insert("action".into(), json!(match r.action { Action::Accept => "accept", Action::Drop => "drop", Action::Reject => "reject" }));
    if let Some(l) = &r.log_prefix {
        m.insert("log_prefix".into(), json!(l));
    }
    Value::Object(m)
}

/// Expected rules may leave out `protocol` (any) and write ports as a number.
fn normalize_rule(mut m: Map<String, Value>) -> Value {
    m.entry("protocol").or_insert(json!("any"));
    if let Some(p) = m.get("ports").and_then(Value::as_u64) {
        m.insert("ports".into(), json!(p.to_string()));
    }
    Value::Object(m)
}

/// Runs one fixture file against `module`: Ok(description) when the answer is as expected, else why not.
pub fn run_one(engine: &HookEngine, cache: &super::cache::Cache, path: &Path, module: &Path) -> Result<String, String> {
    let f = Fixture::load(path)?;
    let hook = engine.load(f.spec(module), cache).map_err(|e| e.to_string())?;
    match f.check(&f.run(&hook)) {
        None => Ok(f.description.trim().to_string()),
        Some(why) => Err(format!("{}\n{}", f.description, indent(&why))),
    }
}

/// Every fixture against `module`, in order, with its outcome: what `wasmcni hook test` prints.
pub fn run_all(engine: &HookEngine, cache: &super::cache::Cache, fixtures: &[PathBuf], module: &Path) -> Vec<(PathBuf, Result<String, String>)> {
    fixtures.iter().map(|p| (p.clone(), run_one(engine, cache, p, module))).collect()
}

/// The component test helper for Rust tests (`wasmcni` as a dev-dependency): runs every `*.toml` in
/// `fixtures_dir` against the built `module` through the plugin's runner. Err lists each failure with its
/// diff.
pub fn test_component(module: &Path, fixtures_dir: &Path) -> Result<usize, String> {
    let engine = HookEngine::new().map_err(|e| e.to_string())?;
    let cache = engine.user_cache();
    let mut paths: Vec<_> = std::fs::read_dir(fixtures_dir)
        .map_err(|e| format!("{}: {e}", fixtures_dir.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let failures: Vec<String> = run_all(&engine, &cache, &paths, module)
        .into_iter()
        .filter_map(|(p, outcome)| outcome.err().map(|why| format!("{}: {why}", p.display())))
        .collect();
    if failures.is_empty() {
        Ok(paths.len())
    } else {
        Err(failures.join("\n"))
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(text: &str) -> Fixture {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn without_expect_the_call_must_succeed() {
        let f = fixture("stage = \"del\"");
        assert_eq!(f.check(&Ok(json!("ok"))), None);
        assert!(f.check(&Err("trapped".into())).unwrap().contains("the hook failed: trapped"));
    }

    #[test]
    fn expectations_for_another_stage_are_refused() {
        let f = fixture("stage = \"pre-add\"\n[expect]\nrules = []");
        assert!(f.check(&Ok(json!({}))).unwrap().contains("expect.rules is for post-add"));
    }

    #[test]
    fn plan_fields_are_compared_only_where_listed_and_rules_in_full() {
        let f = fixture("stage = \"pre-add\"\n[expect]\nplan = { mtu = 1400 }");
        assert_eq!(f.check(&Ok(json!({"ips": ["10.0.0.9"], "mtu": 1400}))), None);
        let diff = f.check(&Ok(json!({"mtu": 1500}))).unwrap();
        assert!(diff.contains("-  \"mtu\": 1400") && diff.contains("+  \"mtu\": 1500"), "{diff}");
        let f = fixture("stage = \"post-add\"\n[expect]\nrules = [{ direction = \"egress\", ports = 53, action = \"accept\" }]");
        let got = json!([{"direction": "egress", "protocol": "any", "ports": "53", "action": "accept"}]);
        assert_eq!(f.check(&Ok(got)), None, "protocol defaults to any, ports may be a number");
        assert!(f.check(&Ok(json!([]))).is_some());
    }
}
