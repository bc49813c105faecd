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
