//! The ADD result, kept in one internal form and written in the shape of the requested `cniVersion`
//! (spec §"Success" and the 0.x conventions), and read back from any version for `prevResult`.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::conf::Dns;
use super::version::{Shape, Version};
use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with the prefix length of its subnet, e.g. 10.22.0.5/24.
    pub address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    // CNI 1.1 additions; dropped when writing older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

impl Route {
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Self {
        Route { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(default)]
    pub interfaces: Vec<Interface>,
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

fn family(ip: &IpNet) -> &'static str {
    match ip {
        IpNet::V4(_) => "4",
        IpNet::V6(_) => "6",
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("result types always serialize")
}

impl CniResult {
    /// The result as the runtime that asked in `version` expects it.
    pub fn to_json(&self, version: &Version) -> Value {
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version.as_str()));
        match version.shape() {
            Shape::Legacy => {
                for (key, fam) in [("ip4", "4"), ("ip6", "6")] {
                    let Some(ip) = self.ips.iter().find(|i| family(&i.address) == fam) else { continue };
                    let routes: Vec<Value> = self
                        .routes
                        .iter()
                        .filter(|r| family(&r.dst) == fam)
                        .map(|r| to_value(&Route::new(r.dst, r.gw)))
                        .collect();
                    let mut obj = Map::new();
                    obj.insert("ip".into(), json!(ip.address.to_string()));
                    if let Some(gw) = ip.gateway {
                        obj.insert("gateway".into(), json!(gw.to_string()));
                    }
                    if !routes.is_empty() {
                        obj.insert("routes".into(), Value::Array(routes));
                    }
                    out.insert(key.into(), Value::Object(obj));
                }
            }
            shape => {
                let interfaces: Vec<Value> = self
                    .interfaces
                    .iter()
                    .map(|i| {
                        let mut i = i.clone();
                        if shape != Shape::V11 {
                            i.mtu = None;
                        }
                        to_value(&i)
                    })
                    .collect();
                let ips: Vec<Value> = self
                    .ips
                    .iter()
                    .map(|ip| {
                        let mut v = to_value(ip);
                        if shape == Shape::V03 {
                            v["version"] = json!(family(&ip.address));
                        }
                        v
                    })
                    .collect();
                let routes: Vec<Value> = self
                    .routes
                    .iter()
                    .map(|r| if shape == Shape::V11 { to_value(r) } else { to_value(&Route::new(r.dst, r.gw)) })
                    .collect();
                if !interfaces.is_empty() {
                    out.insert("interfaces".into(), Value::Array(interfaces));
                }
                out.insert("ips".into(), Value::Array(ips));
                if !routes.is_empty() {
                    out.insert("routes".into(), Value::Array(routes));
                }
            }
        }
        if !self.dns.is_empty() {
            out.insert("dns".into(), to_value(&self.dns));
        }
        Value::Object(out)
    }

    /// Reads a result of any supported version (a `prevResult`, or a delegated plugin's output).
    pub fn from_json(v: &Value) -> Result<Self, Error> {
        let decode = |source| Error::Decode { what: "previous result", source };
        if v.get("ip4").is_some() || v.get("ip6").is_some() {
            #[derive(Deserialize)]
            struct Legacy {
                ip: IpNet,
                #[serde(default)]
                gateway: Option<IpAddr>,
                #[serde(default)]
                routes: Vec<Route>,
            }
            let mut res = CniResult::default();
            for key in ["ip4", "ip6"] {
                if let Some(l) = v.get(key) {
                    let l: Legacy = Legacy::deserialize(l).map_err(decode)?;
                    res.ips.push(IpConfig { address: l.ip, gateway: l.gateway, interface: None });
                    res.routes.extend(l.routes);
                }
            }
            if let Some(dns) = v.get("dns") {
                res.dns = Dns::deserialize(dns).map_err(decode)?;
            }
            return Ok(res);
        }
        // 0.3.x's extra `ips[].version` is simply ignored by serde.
        CniResult::deserialize(v).map_err(decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface { name: "wcni0123456789a".into(), mac: "aa:bb:cc:dd:ee:01".into(), mtu: Some(1400), sandbox: None },
                Interface {
                    name: "eth0".into(),
                    mac: "aa:bb:cc:dd:ee:02".into(),
                    mtu: Some(1400),
                    sandbox: Some("/var/run/netns/p".into()),
                },
            ],
            ips: vec![IpConfig {
                address: "10.22.0.5/24".parse().unwrap(),
                gateway: Some("10.22.0.1".parse().unwrap()),
                interface: Some(1),
            }],
            routes: vec![Route { mtu: Some(1400), ..Route::new("0.0.0.0/0".parse().unwrap(), Some("10.22.0.1".parse().unwrap())) }],
            dns: Dns { nameservers: vec!["10.22.0.10".into()], ..Default::default() },
        }
    }

    fn at(v: &str) -> Value {
        sample().to_json(&Version::parse(v).unwrap())
    }

    #[test]
    fn legacy_versions_use_ip4() {
        for v in ["0.1.0", "0.2.0"] {
            let j = at(v);
            assert_eq!(j["cniVersion"], v);
            assert_eq!(j["ip4"]["ip"], "10.22.0.5/24");
            assert_eq!(j["ip4"]["gateway"], "10.22.0.1");
            assert_eq!(j["ip4"]["routes"][0]["dst"], "0.0.0.0/0");
            assert!(j["ip4"]["routes"][0].get("mtu").is_none());
            assert!(j.get("ips").is_none() && j.get("interfaces").is_none() && j.get("ip6").is_none());
            assert_eq!(j["dns"]["nameservers"][0], "10.22.0.10");
        }
    }

    #[test]
    fn v03_and_v04_carry_ip_version() {
        for v in ["0.3.0", "0.3.1", "0.4.0"] {
            let j = at(v);
            assert_eq!(j["ips"][0]["version"], "4");
            assert_eq!(j["ips"][0]["interface"], 1);
            assert_eq!(j["interfaces"][1]["sandbox"], "/var/run/netns/p");
            assert!(j["interfaces"][0].get("mtu").is_none());
            assert!(j.get("ip4").is_none());
        }
    }

    #[test]
    fn v1_drops_version_and_v11_adds_mtu() {
        let j = at("1.0.0");
        assert!(j["ips"][0].get("version").is_none());
        assert!(j["interfaces"][0].get("mtu").is_none());
        assert!(j["routes"][0].get("mtu").is_none());
        let j = at("1.1.0");
        assert_eq!(j["interfaces"][0]["mtu"], 1400);
        assert_eq!(j["routes"][0]["mtu"], 1400);
    }

    #[test]
    fn every_version_reads_back() {
        for v in crate::cni::version::SUPPORTED {
            let back = CniResult::from_json(&at(v)).unwrap();
            assert_eq!(back.ips[0].address, sample().ips[0].address, "{v}");
            assert_eq!(back.ips[0].gateway, sample().ips[0].gateway, "{v}");
            assert_eq!(back.routes[0].dst, sample().routes[0].dst, "{v}");
        }
    }
}
