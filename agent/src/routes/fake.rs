//! A routing table in memory, with routes "of others" that the agent must never touch.

use std::cell::RefCell;

use ipnet::IpNet;

use super::{Route, RouteError, RouteTable};

#[derive(Default)]
pub struct FakeTable {
    pub connected: Vec<IpNet>,
    pub ours: RefCell<Vec<Route>>,
    pub foreign: Vec<Route>,
    pub calls: RefCell<Vec<String>>,
}

impl RouteTable for FakeTable {
    async fn connected(&self) -> Result<Vec<IpNet>, RouteError> {
        Ok(self.connected.clone())
    }
    async fn ours(&self) -> Result<Vec<Route>, RouteError> {
        Ok(self.ours.borrow().clone())
    }
    async fn add(&self, r: &Route) -> Result<(), RouteError> {
        self.calls.borrow_mut().push(format!("add {r}"));
        if self.foreign.iter().any(|f| f.dst == r.dst) {
            return Err(RouteError::Foreign(r.dst));
        }
        self.ours.borrow_mut().push(r.clone());
        Ok(())
    }
    async fn replace(&self, r: &Route) -> Result<(), RouteError> {
        self.calls.borrow_mut().push(format!("replace {r}"));
        self.ours.borrow_mut().retain(|o| o.dst != r.dst);
        self.ours.borrow_mut().push(r.clone());
        Ok(())
    }
    async fn delete(&self, r: &Route) -> Result<(), RouteError> {
        self.calls.borrow_mut().push(format!("delete {r}"));
        self.ours.borrow_mut().retain(|o| o != r);
        Ok(())
    }
}
