//! wasmcni-agent: one per node (a DaemonSet). Waits for the node's pod CIDRs, installs the plugin through
//! `wasmcni install`, keeps host-gw routes to the other nodes' pods, validates and switches hook sets, and
//! keeps pod metadata where an ADD reads it. Never on the per-pod path: ADD does not need it running.

pub mod log;

pub mod agent;
pub mod args;
pub mod hooks;
pub mod http;
pub mod install;
pub mod node;
pub mod pods;
pub mod reconcile;
pub mod routes;
pub mod start;
pub mod status;
pub mod watch;
