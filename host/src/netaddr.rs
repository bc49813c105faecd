//! Address arithmetic over both families, as plain integers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

pub fn is_v4(ip: IpAddr) -> bool {
    ip.is_ipv4()
}

pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

pub fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// `ip + delta`, wrapping inside the family's space.
pub fn add(ip: IpAddr, delta: i128) -> IpAddr {
    let max: u128 = if is_v4(ip) { u32::MAX as u128 } else { u128::MAX };
    let v = (to_u128(ip) as i128).wrapping_add(delta) as u128 & max;
    from_u128(v, is_v4(ip))
}

pub fn last_addr(net: &IpNet) -> IpAddr {
    net.broadcast()
}

/// Lower-case hex of `bytes` joined by `sep` ("" for digests, ":" for MACs).
pub fn hex(bytes: &[u8], sep: &str) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(sep)
}

/// Parses "aa:bb:cc:dd:ee:ff" (either case) and requires a unicast, non-zero address: one a pod can use.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{s:?} is not a MAC address like 02:00:00:00:00:01");
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(&parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if out[0] & 1 == 1 {
        return Err(format!("{s} is a multicast address"));
    }
    if out == [0; 6] {
        return Err("the zero address is not usable".into());
    }
    Ok(out)
}

/// The address as a host prefix (/32 or /128).
pub fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let ip: IpAddr = "10.0.0.255".parse().unwrap();
        assert_eq!(add(ip, 1).to_string(), "10.0.1.0");
        assert_eq!(add(ip, -255).to_string(), "10.0.0.0");
        assert_eq!(add("fd00::ffff".parse().unwrap(), 1).to_string(), "fd00::1:0");
        assert_eq!(last_addr(&"10.1.0.0/16".parse().unwrap()).to_string(), "10.1.255.255");
        assert_eq!(host_net(ip).to_string(), "10.0.0.255/32");
    }
}
