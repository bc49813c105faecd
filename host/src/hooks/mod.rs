//! Where WebAssembly hooks plug into ADD and DEL. The host calls these stage points; the WASM runtime that
//! fills them in implements `Hooks`. Until a netconf names hooks, `NoHooks` changes nothing.

use crate::cni::request::Request;
use crate::cni::result::CniResult;
use crate::error::Result;
use crate::ops::plan::Plan;

pub trait Hooks {
    /// pre-ADD: runs before IPAM; may change the addressing plan, which the host then validates.
    fn pre_add(&self, req: &Request, plan: Plan) -> Result<Plan>;
    /// post-ADD: runs after the host firewall step; returns the names of the filter-table chains it created
    /// for hook rules, so they are recorded for DEL/GC and unwound if a later step fails.
    fn post_add(&self, req: &Request, result: &CniResult) -> Result<Vec<String>>;
    /// DEL: a notification; it can never make DEL fail, so it returns nothing.
    fn del(&self, req: &Request);
}

pub struct NoHooks;

impl Hooks for NoHooks {
    fn pre_add(&self, _req: &Request, plan: Plan) -> Result<Plan> {
        Ok(plan)
    }

    fn post_add(&self, _req: &Request, _result: &CniResult) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    fn del(&self, _req: &Request) {}
}

/// The hooks a request's netconf asks for. No hooks are configurable yet, so this is always `NoHooks`.
pub fn load(_req: &Request) -> Result<Box<dyn Hooks>> {
    Ok(Box::new(NoHooks))
}
