//! Kernel end-to-end tests. They need root (CI runs as root) and fail loudly without it: a skipped kernel test
//! would hide exactly the bugs it exists to catch.

mod fw;
mod support;

mod backends;
mod bridge;
mod chaining;
mod cli;
mod compat;
mod delegated;
mod dualstack;
mod connectivity;
mod crash;
mod examples;
mod failures;
mod hooks;
mod hostile;
mod lifecycle;
mod logs;
mod podmeta;
mod trust;
mod versions;

#[test]
fn runs_as_root() {
    assert!(nix::unistd::geteuid().is_root(), "the e2e tests create network namespaces and must run as root");
}
