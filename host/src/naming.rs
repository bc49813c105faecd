//! How wasmcni names what it makes on a node, in one place, so that what finds those things again (DEL by
//! name, GC's leak sweep) reads exactly what ADD wrote. Masquerade chains follow the reference plugins'
//! scheme instead (firewall::chain_name, firewall::comment).

use sha2::{Digest, Sha256, Sha512};

/// Names that end up in file names and rule comments (networks, container ids, hooks) keep to letters,
/// digits, '-', '_' and '.' (the spec's rule for container ids).
pub fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_safe_char)
}

/// "<network>/<container id>/<ifname>": network names and ifnames have no '/', so it splits back.
pub fn attachment_key(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{network}/{container_id}/{ifname}")
}

/// The (container id, ifname) of an attachment key of `network`; None for another network's.
pub fn parse_attachment_key(text: &str, network: &str) -> Option<(String, String)> {
    let rest = text.strip_prefix(network)?.strip_prefix('/')?;
    let (id, ifname) = rest.rsplit_once('/')?;
    (!id.is_empty() && !ifname.is_empty()).then(|| (id.to_string(), ifname.to_string()))
}

/// The node-side veth name: deterministic (DEL and GC find it without state) and within IFNAMSIZ.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let digest = Sha256::digest(format!("{container_id}/{ifname}").as_bytes());
    format!("wcni{}", &crate::netaddr::hex(&digest, "")[..11])
}

pub const VETH_ALIAS_PREFIX: &str = "wasmcni ";

/// The alias ADD writes into the node-side veth.
pub fn veth_alias(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{VETH_ALIAS_PREFIX}{}", attachment_key(network, container_id, ifname))
}

/// One hook's rule chain for one attachment (iptables chain names are at most 28 characters).
pub fn hook_chain(network: &str, container_id: &str, ifname: &str, hook: &str) -> String {
    let digest = Sha512::digest(format!("{}/{hook}", attachment_key(network, container_id, ifname)).as_bytes());
    format!("WCNI-{}", &crate::netaddr::hex(&digest, "")[..23])
}

pub const HOOK_COMMENT_PREFIX: &str = "wasmcni hook ";

/// The comment on every rule of that chain: "wasmcni hook <hook>: <attachment key>".
pub fn hook_comment(network: &str, container_id: &str, ifname: &str, hook: &str) -> String {
    format!("{HOOK_COMMENT_PREFIX}{hook}: {}", attachment_key(network, container_id, ifname))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_short_distinct_and_keys_split_back() {
        let a = host_veth_name("ctr", "eth0");
        assert_eq!(a.len(), 15);
        assert_eq!(a, host_veth_name("ctr", "eth0"));
        assert_ne!(a, host_veth_name("ctr", "eth1"));
        assert_ne!(a, host_veth_name("ctr2", "eth0"));
        assert_eq!(hook_chain("n", "c", "eth0", "h").len(), 28);
        assert_ne!(hook_chain("n", "c", "eth0", "h"), hook_chain("n", "c", "eth0", "g"));
        let key = attachment_key("net", "c/1", "eth0");
        assert_eq!(parse_attachment_key(&key, "net"), Some(("c/1".into(), "eth0".into())));
        assert_eq!(parse_attachment_key(&key, "ne"), None);
    }
}
