//! Built-in IPAM, configured like the reference `host-local` (`ranges` or flat `subnet`, `rangeStart`,
//! `rangeEnd`, `gateway`, `routes`, `dataDir`) and storing reservations in its on-disk layout, so a node can
//! move between the two without losing track of addresses.

mod allocator;
mod config;
pub mod delegate;
mod mode;
mod store;

pub use allocator::allocate;
pub use config::{IpamConfig, Range, RangeSet, DEFAULT_DATA_DIR};
pub use mode::IpamMode;
pub use store::Store;

use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid ipam config: {0}")]
    Config(String),
    #[error("no free address left in {ranges} on network {network}: the pool is exhausted (free addresses with DEL/GC or use a larger range)")]
    Exhausted { network: String, ranges: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("ipam store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("IPAM plugin {plugin} failed: {msg}")]
    Delegated { plugin: String, code: u32, msg: String },
}

/// The result of a reservation: one address per range set.
#[derive(Debug, Clone, PartialEq)]
pub struct Reserved {
    pub ip: IpAddr,
    pub range: Range,
}

/// Reserves one address per range set for `id`/`ifname`; `requested` addresses (from hooks, runtimeConfig or
/// CNI_ARGS) are taken in the set that contains them. All or nothing: a failure releases what was taken.
pub fn reserve(
    cfg: &IpamConfig,
    network: &str,
    id: &str,
    ifname: &str,
    requested: &[IpAddr],
) -> Result<Vec<Reserved>, Error> {
    // No duplicate scan of every reservation (that grew with the node): the attachment record answers
    // "is this attachment already there?" before ADD gets here.
    let store = Store::open(&cfg.data_dir, network)?;
    for ip in requested {
        if !cfg.ranges.iter().flatten().any(|r| r.contains(*ip)) {
            return Err(Error::Unavailable(format!("requested address {ip} is outside the ranges of network {network}")));
        }
    }
    let mut out = Vec::new();
    let result = (|| {
        for (index, set) in cfg.ranges.iter().enumerate() {
            let want = requested.iter().copied().find(|ip| set.iter().any(|r| r.contains(*ip)));
            let alloc = allocate(set, store.last_reserved(index), want, |ip| store.is_reserved(ip))?.ok_or_else(|| {
                Error::Exhausted { network: network.into(), ranges: allocator::describe(set) }
            })?;
            if !store.reserve(alloc.ip, id, ifname, index)? {
                return Err(Error::Unavailable(format!("address {} was taken concurrently", alloc.ip)));
            }
            out.push(alloc);
        }
        Ok(())
    })();
    if let Err(e) = result {
        let taken: Vec<IpAddr> = out.iter().map(|r| r.ip).collect();
        if !taken.is_empty() {
            let _ = store.release(id, ifname, &taken);
        }
        return Err(e);
    }
    Ok(out)
}

/// The range sets with no free address left (STATUS reports them: an ADD would fail).
pub fn full_sets(cfg: &IpamConfig, network: &str) -> Result<Vec<String>, Error> {
    let Some(store) = Store::open_existing(&cfg.data_dir, network)? else { return Ok(Vec::new()) };
    let mut full = Vec::new();
    for (index, set) in cfg.ranges.iter().enumerate() {
        if allocate(set, store.last_reserved(index), None, |ip| store.is_reserved(ip))?.is_none() {
            full.push(allocator::describe(set));
        }
    }
    Ok(full)
}

/// Releases what `id`/`ifname` holds (`ips` when known); nothing held is success (DEL must be idempotent).
pub fn release(data_dir: &std::path::Path, network: &str, id: &str, ifname: &str, ips: &[IpAddr]) -> Result<Vec<IpAddr>, Error> {
    match Store::open_existing(data_dir, network)? {
        Some(store) => store.release(id, ifname, ips),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reserve_is_all_or_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = IpamConfig::parse(&json!({"subnet":"10.9.0.0/30","dataDir":tmp.path()})).unwrap();
        let got = reserve(&cfg, "n", "c1", "eth0", &[]).unwrap();
        assert_eq!(got[0].ip.to_string(), "10.9.0.2");
        let full = reserve(&cfg, "n", "c2", "eth0", &[]).unwrap_err();
        assert!(matches!(full, Error::Exhausted { .. }), "{full}");
        assert!(full.to_string().contains("exhausted"));
        assert_eq!(release(&cfg.data_dir, "n", "c1", "eth0", &[]).unwrap().len(), 1);
        assert_eq!(reserve(&cfg, "n", "c2", "eth0", &[]).unwrap()[0].ip.to_string(), "10.9.0.2");
        assert!(release(&tmp.path().join("nothing"), "n", "c9", "eth0", &[]).unwrap().is_empty());
    }
}
