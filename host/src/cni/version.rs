//! CNI spec versions this plugin speaks and the result shape each one expects.

use crate::error::Error;

pub const SUPPORTED: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];
pub const LATEST: &str = "1.1.0";

/// The three result layouts the spec has had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// 0.1.0 and 0.2.0: `ip4` / `ip6` objects.
    Legacy,
    /// 0.3.0 to 0.4.0: `interfaces`/`ips`/`routes`, each ip carrying `version`.
    V03,
    /// 1.0.0: `ips[].version` removed.
    V10,
    /// 1.1.0: interfaces and routes gained mtu and friends.
    V11,
}

/// A validated version string. An absent `cniVersion` means 0.1.0, as libcni assumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(&'static str);

impl Version {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = if s.is_empty() { "0.1.0" } else { s };
        SUPPORTED
            .iter()
            .find(|v| **v == s)
            .map(|v| Version(v))
            .ok_or_else(|| Error::IncompatibleVersion { requested: s.to_string(), supported: SUPPORTED.join(", ") })
    }

    pub fn latest() -> Self {
        Version(LATEST)
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    pub fn shape(&self) -> Shape {
        match self.0 {
            "0.1.0" | "0.2.0" => Shape::Legacy,
            "0.3.0" | "0.3.1" | "0.4.0" => Shape::V03,
            "1.0.0" => Shape::V10,
            _ => Shape::V11,
        }
    }

    /// CHECK arrived in 0.4.0; STATUS and GC in 1.1.0.
    pub fn at_least(&self, other: &str) -> bool {
        let key = |v: &str| SUPPORTED.iter().position(|s| *s == v).unwrap_or(usize::MAX);
        key(self.0) >= key(other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_means_010_and_unknown_is_code_1() {
        assert_eq!(Version::parse("").unwrap().as_str(), "0.1.0");
        let err = Version::parse("9.9.9").unwrap_err();
        assert_eq!(err.code(), 1);
        assert!(err.to_string().contains("9.9.9"));
    }

    #[test]
    fn shapes_and_ordering() {
        assert_eq!(Version::parse("0.2.0").unwrap().shape(), Shape::Legacy);
        assert_eq!(Version::parse("0.4.0").unwrap().shape(), Shape::V03);
        assert_eq!(Version::parse("1.0.0").unwrap().shape(), Shape::V10);
        assert_eq!(Version::parse("1.1.0").unwrap().shape(), Shape::V11);
        assert!(Version::parse("1.0.0").unwrap().at_least("0.4.0"));
        assert!(!Version::parse("0.3.1").unwrap().at_least("0.4.0"));
    }
}
