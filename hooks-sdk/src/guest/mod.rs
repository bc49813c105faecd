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
pub use helpers::{config, error, in_any, label, parse_cidr, parse_config, pod, pod_addresses, RuleBuilder};
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

    /// Checks the hook's `config` table (JSON text) when the hook is loaded, before any pod meets it
    /// (STATUS, `wasmcni hook check`, `hook compile`, the node agent's switch to a new hook set). Name the
    /// field in the error. The default accepts any config: `config::<YourConfig>` in the stages still reports
    /// a bad one, but only when a pod is being added.
    fn validate_config(_config: &str) -> Result<(), HookError> {
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

/// Exports `$t: Hook` as the component's `pre-add`, `post-add`, `del` and `validate-config`.
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
            fn validate_config(c: String) -> Result<(), $crate::HookError> {
                <$t as $crate::Hook>::validate_config(&c)
            }
        }

        $crate::bindings::export_hook_world!(__WasmcniHookExports with_types_in $crate::bindings);
    };
}
