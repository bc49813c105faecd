//! The Rust SDK for wasmcni hooks: the bindings generated from `wit/hook.wit` (the contract's only copy),
//! a `Hook` trait whose methods default to "change nothing", `export_hook!` to turn an implementation into
//! the component's exports, helpers for what hooks do all day, and `testing` for native unit tests.
//!
//! ```
//! use wasmcni_hooks_sdk::{export_hook, Hook, Attachment, Plan, HookError};
//! struct MyHook;
//! impl Hook for MyHook {
//!     fn pre_add(a: Attachment, mut plan: Plan) -> Result<Plan, HookError> { plan.mtu = Some(1400); Ok(plan) }
//! }
//! export_hook!(MyHook);
//! # fn main() {
//! #     let plan = wasmcni_hooks_sdk::testing::plan();
//! #     let out = MyHook::pre_add(wasmcni_hooks_sdk::testing::attachment().build(), plan).unwrap();
//! #     assert_eq!(out.mtu, Some(1400));
//! # }
//! ```

pub mod layout;

#[cfg(feature = "guest")]
mod guest;
#[cfg(feature = "guest")]
pub use guest::*;
