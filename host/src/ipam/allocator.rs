//! Choosing an address from a range set: a requested one if it is valid and free, otherwise round-robin
//! after the last reserved address (host-local's order, so addresses are not reused immediately).

use std::net::IpAddr;

use super::{Error, RangeSet, Reserved};
use crate::netaddr::{add, to_u128};

pub fn allocate(
    set: &RangeSet,
    last_reserved: Option<IpAddr>,
    requested: Option<IpAddr>,
    taken: impl Fn(IpAddr) -> bool,
) -> Result<Option<Reserved>, Error> {
    if let Some(ip) = requested {
        let range = set.iter().find(|r| r.contains(ip)).ok_or_else(|| {
            Error::Unavailable(format!("requested address {ip} is outside the network's ranges ({})", describe(set)))
        })?;
        if ip == range.gateway {
            return Err(Error::Unavailable(format!("requested address {ip} is the gateway")));
        }
        if taken(ip) {
            return Err(Error::Unavailable(format!("requested address {ip} is already reserved")));
        }
        return Ok(Some(Reserved { ip, range: range.clone() }));
    }
    // Start just after the last reservation if it lies in this set, else at the very beginning.
    let (mut ri, mut ip) = match last_reserved.and_then(|l| set.iter().position(|r| r.contains(l)).map(|i| (i, l))) {
        Some((i, l)) => step(set, i, l),
        None => (0, set[0].start),
    };
    let total: u128 = set.iter().map(|r| to_u128(r.end) - to_u128(r.start) + 1).sum();
    for _ in 0..total {
        let range = &set[ri];
        if ip != range.gateway && !taken(ip) {
            return Ok(Some(Reserved { ip, range: range.clone() }));
        }
        (ri, ip) = step(set, ri, ip);
    }
    Ok(None)
}

/// The address after `ip`, moving to the next range (and wrapping) at a range's end.
fn step(set: &RangeSet, ri: usize, ip: IpAddr) -> (usize, IpAddr) {
    if ip == set[ri].end {
        let next = (ri + 1) % set.len();
        (next, set[next].start)
    } else {
        (ri, add(ip, 1))
    }
}

pub fn describe(set: &RangeSet) -> String {
    set.iter().map(|r| format!("{} ({}-{})", r.subnet, r.start, r.end)).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;
    use crate::ipam::IpamConfig;

    fn set(v: serde_json::Value) -> RangeSet {
        IpamConfig::parse(&v).unwrap().ranges.remove(0)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_allocation_skips_the_gateway() {
        let s = set(json!({"subnet":"10.0.0.0/24"}));
        assert_eq!(allocate(&s, None, None, |_| false).unwrap().unwrap().ip, ip("10.0.0.2"));
    }

    #[test]
    fn round_robin_continues_after_last_and_wraps() {
        let s = set(json!({"subnet":"10.0.0.0/29"})); // usable .1-.6, gateway .1
        assert_eq!(allocate(&s, Some(ip("10.0.0.3")), None, |_| false).unwrap().unwrap().ip, ip("10.0.0.4"));
        assert_eq!(allocate(&s, Some(ip("10.0.0.6")), None, |_| false).unwrap().unwrap().ip, ip("10.0.0.2"));
        let taken: HashSet<IpAddr> = [ip("10.0.0.2"), ip("10.0.0.3")].into();
        assert_eq!(allocate(&s, Some(ip("10.0.0.6")), None, |i| taken.contains(&i)).unwrap().unwrap().ip, ip("10.0.0.4"));
    }

    #[test]
    fn a_slash_30_holds_one_pod() {
        let s = set(json!({"subnet":"10.0.0.0/30"}));
        let first = allocate(&s, None, None, |_| false).unwrap().unwrap().ip;
        assert_eq!(first, ip("10.0.0.2"));
        assert!(allocate(&s, Some(first), None, |i| i == first).unwrap().is_none());
    }

    #[test]
    fn walks_across_ranges_of_a_set() {
        let s = set(json!({"ranges":[[{"subnet":"10.0.0.0/30"},{"subnet":"10.0.1.0/30"}]]}));
        let a = allocate(&s, Some(ip("10.0.0.2")), None, |i| i == ip("10.0.0.2")).unwrap().unwrap();
        assert_eq!(a.ip, ip("10.0.1.2"));
        assert_eq!(a.range.gateway, ip("10.0.1.1"));
    }

    #[test]
    fn requested_address_must_be_inside_free_and_not_the_gateway() {
        let s = set(json!({"subnet":"10.0.0.0/24"}));
        assert_eq!(allocate(&s, None, Some(ip("10.0.0.77")), |_| false).unwrap().unwrap().ip, ip("10.0.0.77"));
        assert!(allocate(&s, None, Some(ip("10.0.9.1")), |_| false).is_err());
        assert!(allocate(&s, None, Some(ip("10.0.0.1")), |_| false).is_err());
        assert!(allocate(&s, None, Some(ip("10.0.0.77")), |_| true).is_err());
    }
}
