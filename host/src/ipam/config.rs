//! Parsing and validating the `ipam` section of the netconf.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::Error;
use crate::cni::result::Route;
use crate::netaddr::{add, is_v4, last_addr, to_u128};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// One contiguous range inside a subnet, with everything defaulted and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub subnet: IpNet,
    pub start: IpAddr,
    pub end: IpAddr,
    pub gateway: IpAddr,
}

impl Range {
    pub fn contains(&self, ip: IpAddr) -> bool {
        is_v4(ip) == is_v4(self.start) && to_u128(ip) >= to_u128(self.start) && to_u128(ip) <= to_u128(self.end)
    }
}

/// Ranges from which one address is taken (host-local: a "range set").
pub type RangeSet = Vec<Range>;

#[derive(Debug, Clone, PartialEq)]
pub struct IpamConfig {
    pub ranges: Vec<RangeSet>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRange {
    subnet: IpNet,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIpam {
    #[serde(default)]
    ranges: Vec<Vec<RawRange>>,
    #[serde(default)]
    subnet: Option<IpNet>,
    #[serde(default)]
    range_start: Option<IpAddr>,
    #[serde(default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    data_dir: Option<PathBuf>,
}

impl IpamConfig {
    pub fn parse(v: &Value) -> Result<Self, Error> {
        Self::load(v, None, true)
    }

    /// The config with the `ipRanges` capability (runtimeConfig.ipRanges) applied. host-local puts the
    /// runtime's range sets in front of the configured ones and takes one address per set; wasmcni gives one
    /// address per family, so a configured set of a family the runtime covers is left out (the runtime's
    /// wins) and the other family's stays: runtime IPv4 + configured IPv6 is dual-stack. Without
    /// `need_ranges` (commands that never allocate) a config with no ranges at all is fine: ADD gets them
    /// from the runtime, and only the data dir matters.
    pub fn load(v: &Value, ip_ranges: Option<&Value>, need_ranges: bool) -> Result<Self, Error> {
        let raw: RawIpam = crate::cni::fields::deserialize(v, "ipam").map_err(Error::Config)?;
        let mut sets = raw.ranges;
        if let Some(subnet) = raw.subnet {
            if !sets.is_empty() {
                return Err(Error::Config("give either \"ranges\" or \"subnet\", not both".into()));
            }
            sets.push(vec![RawRange {
                subnet,
                range_start: raw.range_start,
                range_end: raw.range_end,
                gateway: raw.gateway,
            }]);
        }
        if let Some(runtime) = ip_ranges.filter(|r| r.as_array().is_some_and(|a| !a.is_empty())) {
            let mut runtime: Vec<Vec<RawRange>> = crate::cni::fields::deserialize(runtime, "runtimeConfig.ipRanges").map_err(Error::Config)?;
            let family = |set: &Vec<RawRange>| set.first().map(|r| r.subnet.addr().is_ipv4());
            let covered: Vec<_> = runtime.iter().map(family).collect();
            runtime.extend(sets.into_iter().filter(|set| !covered.contains(&family(set))));
            sets = runtime;
        }
        let data_dir = raw.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        if !data_dir.is_absolute() {
            return Err(Error::Config(format!("field ipam.dataDir: {} is not an absolute path", data_dir.display())));
        }
        if sets.is_empty() && !need_ranges {
            return Ok(IpamConfig { ranges: Vec::new(), routes: raw.routes, data_dir });
        }
        if sets.is_empty() || sets.iter().any(Vec::is_empty) {
            return Err(Error::Config("no address ranges: set \"subnet\" or \"ranges\"".into()));
        }
        let ranges: Vec<RangeSet> = sets
            .into_iter()
            .map(|set| set.into_iter().map(Range::from_raw).collect::<Result<Vec<_>, _>>())
            .collect::<Result<_, _>>()?;
        check_overlaps(&ranges)?;
        // One address per family: the pod gets one default route per family, via that set's gateway.
        for (i, set) in ranges.iter().enumerate() {
            let v4 = set[0].start.is_ipv4();
            if set.iter().any(|r| r.start.is_ipv4() != v4) {
                return Err(Error::Config(format!("range set {i} mixes IPv4 and IPv6 ranges")));
            }
            if ranges[..i].iter().any(|s| s[0].start.is_ipv4() == v4) {
                return Err(Error::Config(format!(
                    "range sets {} and {i} are both {}: use one range set per family (list several ranges inside it)",
                    ranges[..i].iter().position(|s| s[0].start.is_ipv4() == v4).unwrap_or_default(),
                    if v4 { "IPv4" } else { "IPv6" }
                )));
            }
        }
        // A routed pod reaches only its gateway on-link: a route's next hop must be that gateway (or absent).
        let gateways: Vec<IpAddr> = ranges.iter().flatten().map(|r| r.gateway).collect();
        for (i, r) in raw.routes.iter().enumerate() {
            if let Some(gw) = r.gw {
                if !gateways.contains(&gw) {
                    return Err(Error::Config(format!("routes[{i}].gw {gw} is not a range gateway (a routed pod reaches only its gateway)")));
                }
            }
        }
        Ok(IpamConfig {
            ranges,
            routes: raw.routes,
            data_dir,
        })
    }
}

impl Range {
    fn from_raw(r: RawRange) -> Result<Range, Error> {
        let subnet = r.subnet.trunc();
        let bad = |msg: String| Error::Config(format!("range {subnet}: {msg}"));
        let v4 = matches!(subnet, IpNet::V4(_));
        // host-local leaves out the network address and, for IPv4, the broadcast address.
        let first = add(subnet.network(), 1);
        let last = if v4 { add(last_addr(&subnet), -1) } else { last_addr(&subnet) };
        if subnet.prefix_len() > subnet.max_prefix_len() - 2 {
            return Err(bad("subnet is too small to hold a gateway and a pod".into()));
        }
        let start = r.range_start.unwrap_or(first);
        let end = r.range_end.unwrap_or(last);
        let gateway = r.gateway.unwrap_or(first);
        for (name, ip) in [("rangeStart", start), ("rangeEnd", end), ("gateway", gateway)] {
            if !subnet.contains(&ip) {
                return Err(bad(format!("{name} {ip} is outside the subnet")));
            }
        }
        for (name, ip) in [("rangeStart", start), ("rangeEnd", end)] {
            if to_u128(ip) < to_u128(first) || to_u128(ip) > to_u128(last) {
                return Err(bad(format!("{name} {ip} is the network or broadcast address")));
            }
        }
        if to_u128(start) > to_u128(end) {
            return Err(bad(format!("rangeStart {start} is after rangeEnd {end}")));
        }
        Ok(Range { subnet, start, end, gateway })
    }
}

fn check_overlaps(sets: &[RangeSet]) -> Result<(), Error> {
    let all: Vec<&Range> = sets.iter().flatten().collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.contains(b.start) || a.contains(b.end) || b.contains(a.start) {
                return Err(Error::Config(format!("ranges {}-{} and {}-{} overlap", a.start, a.end, b.start, b.end)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn flat_subnet_gets_host_local_defaults() {
        let c = IpamConfig::parse(&json!({"type":"builtin","subnet":"10.22.0.7/24","dataDir":"/tmp/x"})).unwrap();
        let r = &c.ranges[0][0];
        assert_eq!(r.subnet.to_string(), "10.22.0.0/24");
        assert_eq!(r.start.to_string(), "10.22.0.1");
        assert_eq!(r.end.to_string(), "10.22.0.254");
        assert_eq!(r.gateway.to_string(), "10.22.0.1");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn ranges_form_with_explicit_bounds_and_routes() {
        let c = IpamConfig::parse(&json!({"ranges":[[{"subnet":"10.1.0.0/16","rangeStart":"10.1.2.10",
            "rangeEnd":"10.1.2.20","gateway":"10.1.0.254"}]],"routes":[{"dst":"192.168.0.0/16"}]}))
        .unwrap();
        let r = &c.ranges[0][0];
        assert_eq!((r.start.to_string(), r.end.to_string()), ("10.1.2.10".into(), "10.1.2.20".into()));
        assert_eq!(r.gateway.to_string(), "10.1.0.254");
        assert_eq!(c.routes[0].dst.to_string(), "192.168.0.0/16");
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn ip_ranges_capability_replaces_the_configured_ranges() {
        let raw = json!({"type":"builtin","subnet":"10.22.0.0/24","gateway":"10.22.0.9"});
        let over = json!([[{"subnet":"10.23.0.0/24","rangeStart":"10.23.0.50"}]]);
        let c = IpamConfig::load(&raw, Some(&over), true).unwrap();
        assert_eq!(c.ranges.len(), 1);
        assert_eq!((c.ranges[0][0].subnet.to_string(), c.ranges[0][0].start.to_string()), ("10.23.0.0/24".into(), "10.23.0.50".into()));
        assert_eq!(c.ranges[0][0].gateway.to_string(), "10.23.0.1");
        // An empty list (a runtime that has the capability but no ranges to give) keeps the config's.
        let same = IpamConfig::load(&raw, Some(&json!([])), true).unwrap();
        assert_eq!(same.ranges[0][0].gateway.to_string(), "10.22.0.9");
        // The other family's configured set stays: dual-stack, runtime's first (host-local's order).
        let dual = json!({"ranges":[[{"subnet":"fd00::/64"}],[{"subnet":"10.22.0.0/24"}]]});
        let c = IpamConfig::load(&dual, Some(&over), true).unwrap();
        let subnets: Vec<String> = c.ranges.iter().map(|s| s[0].subnet.to_string()).collect();
        assert_eq!(subnets, vec!["10.23.0.0/24", "fd00::/64"]);
        // A config with no ranges of its own gets them all from the runtime, and commands that never
        // allocate still find the data dir without them.
        let none = json!({"type":"builtin","dataDir":"/tmp/d"});
        assert_eq!(IpamConfig::load(&none, Some(&over), true).unwrap().ranges.len(), 1);
        assert!(IpamConfig::parse(&none).is_err());
        assert_eq!(IpamConfig::load(&none, None, false).unwrap().data_dir, PathBuf::from("/tmp/d"));
        // Only a missing range list is forgiven: anything else wrong stays an error.
        assert!(IpamConfig::load(&json!({"type":"builtin","dataDir":42}), None, false).is_err());
        assert!(IpamConfig::load(&json!({"type":"builtin","subnet":"10.0.0.0/31"}), None, false).is_err());
    }

    #[test]
    fn rejects_bad_ranges() {
        for bad in [
            json!({}),
            json!({"subnet":"10.0.0.0/24","ranges":[[{"subnet":"10.1.0.0/24"}]]}),
            json!({"subnet":"10.0.0.0/31"}),
            json!({"subnet":"10.0.0.0/24","rangeStart":"10.0.1.5"}),
            json!({"subnet":"10.0.0.0/24","rangeStart":"10.0.0.9","rangeEnd":"10.0.0.3"}),
            json!({"subnet":"10.0.0.0/24","rangeEnd":"10.0.0.255"}),
            json!({"subnet":"10.0.0.0/24","gateway":"10.9.0.1"}),
            json!({"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.0/25"}]]}),
            json!({"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/24"}]]}),
            json!({"subnet":"10.0.0.0/24","routes":[{"dst":"192.168.0.0/16","gw":"10.0.0.9"}]}),
            json!({"subnet":"not-a-cidr"}),
        ] {
            assert!(IpamConfig::parse(&bad).is_err(), "{bad}");
        }
    }
}
