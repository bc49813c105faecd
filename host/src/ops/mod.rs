//! The CNI operations. Each one orchestrates the modules below it (cni, ipam, netlink, firewall, hooks);
//! none of those call back up here. Side effects on the kernel and on netfilter come in through `Deps`, so
//! the operations run against the real node or against recording fakes in unit tests.

pub mod add;
pub mod check;
pub mod crash;
pub mod del;
pub mod dispatch;
pub mod gc;
pub mod locks;
mod overlap;
pub mod record;
pub mod status;
pub mod undo;

#[cfg(test)]
mod tests;

use crate::firewall::Firewalls;
use crate::netlink::Kernel;

/// What the operations act through.
pub struct Deps<'a> {
    pub kernel: &'a dyn Kernel,
    pub firewalls: &'a dyn Firewalls,
}
