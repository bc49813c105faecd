//! wasmcni: a CNI plugin that wires pods with a routed veth, built-in IPAM and masquerade, and runs
//! WebAssembly hooks at pre-ADD, post-ADD and DEL.

pub mod cli;
pub mod cni;
pub mod error;
pub mod firewall;
#[doc(hidden)]
pub mod fuzzing;
pub mod fsutil;
pub mod hooks;
pub mod install;
pub mod ipam;
pub mod logging;
pub mod naming;
pub mod netaddr;
pub mod netlink;
pub mod netns;
pub mod ops;
pub mod plan;
pub mod threads;
pub mod trust;
