//! Which version of the `wasmcni:hook` contract a component was built against. Its exports are plain
//! functions, so the version shows in the `wasmcni:hook/types@X` interface it imports for its types. A
//! component of another major version whose signatures happen to match must not run: the meaning of its
//! fields may differ.

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::Engine;

use super::engine::{CONTRACT, STILL_RUNS};
use super::Error;

/// Which bindings a component is called through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Current,
    V0_1,
}

const PACKAGE: &str = "wasmcni:hook/";

/// The versions of our package the component imports (empty when it imports none of it).
pub fn versions(engine: &Engine, component: &Component) -> Vec<String> {
    let ty = component.component_type();
    let mut found: Vec<String> = ty
        .imports(engine)
        .filter_map(|(name, _)| name.strip_prefix(PACKAGE))
        .map(|rest| rest.split_once('@').map(|(_, v)| v.to_string()).unwrap_or_default())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Semver compatibility as the component model applies it: 0.x versions agree on major and minor.
pub fn compatible(have: &str, speak: &str) -> bool {
    let key = |v: &str| {
        let mut parts = v.split('.');
        let (major, minor) = (parts.next().unwrap_or_default().to_string(), parts.next().unwrap_or_default().to_string());
        if major == "0" {
            (major, minor)
        } else {
            (major, String::new())
        }
    };
    !have.is_empty() && key(have) == key(speak)
}

/// The bindings to call `component` through, or why it cannot be called. A component that names no version
/// of our package is tried with the current bindings (the linker's type check then decides).
pub fn check(engine: &Engine, component: &Component, module: &Path) -> Result<Version, Error> {
    let found = versions(engine, component);
    let older: Vec<String> = STILL_RUNS.iter().map(|v| format!("@{v}")).collect();
    let speaks = format!("wasmcni:hook@{CONTRACT} (and still runs {})", older.join(", "));
    let mut version = Version::Current;
    for v in &found {
        if compatible(v, CONTRACT) {
            continue;
        }
        if STILL_RUNS.iter().any(|old| compatible(v, old)) {
            version = Version::V0_1;
            continue;
        }
        return Err(Error::Contract {
            module: module.to_path_buf(),
            found: if v.is_empty() { "an unversioned wasmcni:hook".into() } else { format!("wasmcni:hook@{v}") },
            speaks,
        });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::compatible;

    #[test]
    fn zero_x_versions_must_agree_on_the_minor() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.3", "0.1.0"));
        assert!(!compatible("0.2.0", "0.1.0"));
        assert!(!compatible("1.0.0", "0.1.0"));
        assert!(compatible("1.4.0", "1.0.0"));
        assert!(!compatible("", "0.1.0"));
    }
}
