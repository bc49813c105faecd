//! How wasmcni names what it makes on a node, in one place, so that what finds those things again (DEL by
//! name, GC's leak sweep) reads exactly what ADD wrote. Masquerade chains follow the reference plugins'
//! scheme instead (firewall::chain_name, firewall::comment).

use sha2::{Digest, Sha256};

/// The spec's rule for network names and container ids: a letter or digit first, then letters, digits,
/// '_', '.' and '-'. Such a name is never "." or "..", never holds a '/', and so is safe as one path
/// component, in an interface alias and in a rule comment. Hook names follow it too.
pub fn is_safe_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

pub fn is_safe_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) && s.chars().all(is_safe_char)
}

/// Longest names accepted. They end up together in one rule comment (iptables allows 255 bytes: the hook
/// comment holds hook, network, container id and ifname) and in file names (255 bytes).
pub const MAX_NETWORK_NAME: usize = 64;
pub const MAX_CONTAINER_ID: usize = 128;
pub const MAX_HOOK_NAME: usize = 24;

/// Why `s` is not a safe name of at most `max` bytes, in words for the user; None when it is one.
pub fn name_problem(s: &str, max: usize) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > max {
        return Some(format!("is {} bytes long, more than {max}", s.len()));
    }
    if !is_safe_name(s) {
        return Some(format!(
            "{s:?} must start with a letter or digit and hold only letters, digits, '_', '.' and '-'"
        ));
    }
    None
}

/// Linux's rule for interface names (dev_valid_name): 1 to 15 bytes, not "." or "..", no '/', ':' or
/// whitespace. Applies to CNI_IFNAME and to a bridge name.
pub fn ifname_problem(name: &str) -> Option<String> {
    let shown = name;
    if name.is_empty() {
        return Some("is empty".into());
    }
    if name.len() > 15 {
        return Some(format!("{shown:?} is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Some(format!("{shown:?} is not a valid interface name"));
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()) {
        return Some(format!("{shown:?} contains '/', ':', whitespace or a control character"));
    }
    None
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

/// A MAC derived from `seed`: locally administered, unicast, stable for the same seed (veth ends, bridges).
pub fn derived_mac(seed: &str) -> [u8; 6] {
    let d = Sha256::digest(seed.as_bytes());
    [(d[0] & 0xfc) | 0x02, d[1], d[2], d[3], d[4], d[5]]
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
        let key = attachment_key("net", "c/1", "eth0");
        assert_eq!(parse_attachment_key(&key, "net"), Some(("c/1".into(), "eth0".into())));
        assert_eq!(parse_attachment_key(&key, "ne"), None);
    }
}
