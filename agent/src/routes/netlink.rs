//! `RouteTable` on the kernel: rtnetlink in the agent's own network namespace (the node's, with
//! hostNetwork), main table only.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType};
use rtnetlink::{Handle, RouteMessageBuilder};

use super::{Route, RouteError, RouteTable, PROTOCOL};

const EEXIST: i32 = 17;

pub struct Kernel {
    handle: Handle,
}

impl Kernel {
    /// Must be called inside the tokio runtime: the socket's connection task is spawned on it.
    pub fn connect() -> Result<Kernel, RouteError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|e| RouteError::Netlink(format!("cannot open a netlink socket: {e}")))?;
        tokio::spawn(conn);
        Ok(Kernel { handle })
    }

    fn message(r: &Route) -> Result<RouteMessage, RouteError> {
        let b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(r.dst.addr(), r.dst.prefix_len())
            .and_then(|b| b.gateway(r.via))
            .map_err(|e| RouteError::Netlink(format!("{r}: {e:?}")))?;
        Ok(b.protocol(RouteProtocol::Other(PROTOCOL)).kind(RouteType::Unicast).build())
    }

    async fn dump(&self, v6: bool) -> Result<Vec<RouteMessage>, RouteError> {
        let msg = if v6 { RouteMessageBuilder::<Ipv6Addr>::new().build() } else { RouteMessageBuilder::<Ipv4Addr>::new().build() };
        self.handle.route().get(msg).execute().try_collect().await.map_err(nl)
    }
}

fn nl(e: rtnetlink::Error) -> RouteError {
    RouteError::Netlink(e.to_string())
}

fn ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn is_exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code().abs() == EEXIST)
}

impl RouteTable for Kernel {
    async fn connected(&self) -> Result<Vec<IpNet>, RouteError> {
        let addrs: Vec<_> = self.handle.address().get().execute().try_collect().await.map_err(nl)?;
        Ok(addrs
            .iter()
            .filter_map(|m| {
                let a = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                })?;
                let net = IpNet::new(a, m.header.prefix_len).ok()?;
                // A host address (/32, /128) makes nothing else on-link.
                (net.prefix_len() < net.max_prefix_len() && !a.is_loopback()).then(|| net.trunc())
            })
            .collect())
    }

    async fn ours(&self) -> Result<Vec<Route>, RouteError> {
        let mut out = Vec::new();
        for v6 in [false, true] {
            for m in self.dump(v6).await? {
                if m.header.protocol != RouteProtocol::Other(PROTOCOL) {
                    continue;
                }
                let dst = m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Destination(d) => ip(d),
                    _ => None,
                });
                let via = m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(g) => ip(g),
                    _ => None,
                });
                if let (Some(d), Some(via)) = (dst, via) {
                    if let Ok(dst) = IpNet::new(d, m.header.destination_prefix_length) {
                        out.push(Route { dst, via });
                    }
                }
            }
        }
        Ok(out)
    }

    async fn add(&self, r: &Route) -> Result<(), RouteError> {
        match self.handle.route().add(Self::message(r)?).execute().await {
            Err(e) if is_exists(&e) => Err(RouteError::Foreign(r.dst)),
            other => other.map_err(nl),
        }
    }

    async fn replace(&self, r: &Route) -> Result<(), RouteError> {
        self.handle.route().add(Self::message(r)?).replace().execute().await.map_err(nl)
    }

    async fn delete(&self, r: &Route) -> Result<(), RouteError> {
        // The protocol is part of the match: the kernel deletes only a route that carries ours.
        self.handle.route().del(Self::message(r)?).execute().await.map_err(nl)
    }
}
