//! The addressing plan: what the pod should get before IPAM runs. Built from the request, then handed to
//! pre-ADD hooks, which may change it.

use std::net::IpAddr;

use serde_json::Value;

use crate::cni::conf::Dns;
use crate::cni::request::Request;
use crate::cni::result::Route;
use crate::error::Error;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Specific addresses to reserve (at most one per range set).
    pub requested_ips: Vec<IpAddr>,
    /// Extra routes in the pod, beyond the default route via the gateway.
    pub routes: Vec<Route>,
    pub mtu: Option<u32>,
    /// MAC of the pod interface.
    pub mac: Option<[u8; 6]>,
    pub dns: Dns,
}

impl Plan {
    /// For log lines: what the plan asks for, in words.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.requested_ips.is_empty() {
            parts.push(format!("addresses {}", self.requested_ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")));
        }
        for r in &self.routes {
            parts.push(format!("route {}{}", r.dst, r.gw.map(|g| format!(" via {g}")).unwrap_or_default()));
        }
        if let Some(mtu) = self.mtu {
            parts.push(format!("mtu {mtu}"));
        }
        if let Some(mac) = self.mac {
            parts.push(format!("mac {}", crate::netaddr::hex(&mac, ":")));
        }
        if !self.dns.nameservers.is_empty() {
            parts.push(format!("nameservers {}", self.dns.nameservers.join(", ")));
        }
        if parts.is_empty() {
            "nothing specific (IPAM chooses)".into()
        } else {
            parts.join("; ")
        }
    }

    /// Requested addresses come from `runtimeConfig.ips`, `args.cni.ips` and CNI_ARGS `IP=` (the conventions
    /// of the reference plugins), with or without a prefix length.
    pub fn from_request(req: &Request, ipam_routes: &[Route]) -> Result<Self, Error> {
        let mut texts: Vec<String> = Vec::new();
        let list = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
                .unwrap_or_default()
        };
        texts.extend(list(req.conf.runtime_config.as_ref().and_then(|r| r.get("ips"))));
        texts.extend(list(req.conf.args.as_ref().and_then(|a| a.pointer("/cni/ips"))));
        if let Some(ips) = req.arg("IP") {
            texts.extend(ips.split(',').map(String::from));
        }
        let mut requested_ips = Vec::new();
        for t in texts {
            let addr = t.split('/').next().unwrap_or_default().trim();
            let ip: IpAddr = addr
                .parse()
                .map_err(|_| Error::InvalidConfig(format!("requested address {t:?} is not an IP address")))?;
            if !requested_ips.contains(&ip) {
                requested_ips.push(ip);
            }
        }
        // runtimeConfig.mac (the "mac" capability) and CNI_ARGS MAC=, as the reference plugins read them.
        let mac = req
            .conf
            .runtime_config
            .as_ref()
            .and_then(|r| r.get("mac"))
            .and_then(Value::as_str)
            .or_else(|| req.arg("MAC"))
            .map(crate::netaddr::parse_mac)
            .transpose()
            .map_err(|e| Error::InvalidConfig(format!("pod MAC: {e}")))?;
        Ok(Plan {
            requested_ips,
            routes: ipam_routes.to_vec(),
            mtu: req.conf.mtu,
            mac,
            dns: req.conf.dns.clone().unwrap_or_default(),
        })
    }
}
