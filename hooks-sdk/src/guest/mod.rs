//! The hook side of the SDK: bindings, the `Hook` trait, `export_hook!`, helpers and test builders.

mod helpers;
pub mod testing;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "hook",
        pub_export_macro: true,
        export_macro_name: "export_hook_world",
        default_bindings_module: "wasmcni_hooks_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

pub use bindings::wasmcni::hook::types::{
    Action, AddResult, Attachment, Direction, Dns, HookError, Iface, IpConfig, Level, Plan, PortRange, Protocol,
    Route, Rule,
};
pub use helpers::{config, error, in_any, parse_cidr, pod, pod_addresses, RuleBuilder};
pub use ipnet::IpNet;

/// A hook. Implement the stages you need; the others change nothing.
pub trait Hook {
    fn pre_add(_attachment: Attachment, plan: Plan) -> Result<Plan, HookError> {
        Ok(plan)
    }

    fn post_add(_attachment: Attachment, _added: AddResult) -> Result<Vec<Rule>, HookError> {
        Ok(Vec::new())
    }

    fn del(_attachment: Attachment) -> Result<(), HookError> {
        Ok(())
    }
}

/// Logs through the plugin's log (the hook's only import). In native tests the lines are captured:
/// see `testing::logs`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    testing::capture(level, message);
}

/// Exports `$t: Hook` as the component's `pre-add`, `post-add` and `del`.
#[macro_export]
macro_rules! export_hook {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __WasmcniHookExports;

        impl $crate::bindings::Guest for __WasmcniHookExports {
            fn pre_add(a: $crate::Attachment, p: $crate::Plan) -> Result<$crate::Plan, $crate::HookError> {
                <$t as $crate::Hook>::pre_add(a, p)
            }
            fn post_add(a: $crate::Attachment, r: $crate::AddResult) -> Result<Vec<$crate::Rule>, $crate::HookError> {
                <$t as $crate::Hook>::post_add(a, r)
            }
            fn del(a: $crate::Attachment) -> Result<(), $crate::HookError> {
                <$t as $crate::Hook>::del(a)
            }
        }

        $crate::bindings::export_hook_world!(__WasmcniHookExports with_types_in $crate::bindings);
    };
}
