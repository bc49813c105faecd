//! Between the host's types and the WIT types. Outbound conversions cannot fail; inbound ones (what a hook
//! returns) go through `validate`.

use super::manifest::HookSpec;
use super::engine::wit;
use crate::cni::conf::Dns;
use crate::cni::request::Request;
use crate::cni::result::{CniResult, Route};
use crate::plan::Plan;

/// The attachment as hooks see it; `config` is each hook's own, set per call (see `for_hook`). `meta` is what
/// the node agent knows of the pod (labels, annotations, service account), when it does.
pub fn attachment(req: &Request, meta: Option<&super::podmeta::PodMeta>) -> wit::Attachment {
    let pairs = |m: &std::collections::BTreeMap<String, String>| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let arg = |k: &str| req.arg(k).filter(|v| !v.is_empty()).map(String::from);
    wit::Attachment {
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
        netns: req.netns.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        network: req.conf.name.clone(),
        pod_namespace: arg("K8S_POD_NAMESPACE"),
        pod_name: arg("K8S_POD_NAME"),
        pod_uid: arg("K8S_POD_UID"),
        args: req.args.clone(),
        runtime_config: req.conf.runtime_config.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "{}".into()),
        config: String::new(),
        pod_labels: meta.map(|m| pairs(&m.labels)).unwrap_or_default(),
        pod_annotations: meta.map(|m| pairs(&m.annotations)).unwrap_or_default(),
        service_account: meta.and_then(|m| m.service_account.clone()),
    }
}

/// `att` with `spec`'s config: built once per stage, only the config changes from hook to hook.
pub fn for_hook<'a>(att: &'a mut wit::Attachment, spec: &HookSpec) -> &'a wit::Attachment {
    att.config = spec.config_json();
    att
}

pub fn dns(d: &Dns) -> wit::Dns {
    wit::Dns {
        nameservers: d.nameservers.clone(),
        domain: d.domain.clone(),
        search: d.search.clone(),
        options: d.options.clone(),
    }
}

pub fn route(r: &Route) -> wit::Route {
    wit::Route { dst: r.dst.to_string(), gw: r.gw.map(|g| g.to_string()) }
}

pub fn plan(p: &Plan) -> wit::Plan {
    wit::Plan {
        ips: p.requested_ips.iter().map(|i| i.to_string()).collect(),
        routes: p.routes.iter().map(route).collect(),
        mtu: p.mtu,
        mac: p.mac.map(|m| crate::netaddr::hex(&m, ":")),
        dns: dns(&p.dns),
    }
}

pub fn result(r: &CniResult) -> wit::AddResult {
    wit::AddResult {
        interfaces: r
            .interfaces
            .iter()
            .map(|i| wit::Iface { name: i.name.clone(), mac: i.mac.clone(), sandbox: i.sandbox.clone() })
            .collect(),
        ips: r
            .ips
            .iter()
            .map(|i| wit::IpConfig {
                address: i.address.to_string(),
                gateway: i.gateway.map(|g| g.to_string()),
                iface: i.interface.map(|n| n as u32),
            })
            .collect(),
        routes: r.routes.iter().map(route).collect(),
        dns: dns(&r.dns),
    }
}
