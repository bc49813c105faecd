//! A test hook: `config.behavior` picks what it does, so one build serves every kernel test.
//! - "set-ip" (pre-add): requests `config.ip`
//! - "drop-port" (post-add): drops the pod's TCP egress to `config.peer` port `config.port`
//! - "loop": spins forever; "grow": allocates until stopped; "trap": panics; "error": returns an error
//! - hostile ones: "huge-error" (a 10 MB message), "forge-log" (escape sequences and a line dressed as the
//!   plugin's), "flood-log" (20 MB of log), "recurse" (unbounded recursion), "many-routes" (10,000 routes)

use serde_json::Value;
use wasmcni_hooks_sdk::{export_hook, AddResult, Attachment, HookError, Level, Plan, Rule};

struct TestHook;

fn config(a: &Attachment) -> Value {
    serde_json::from_str(&a.config).unwrap_or(Value::Null)
}

fn misbehave(cfg: &Value) -> Result<(), HookError> {
    match cfg["behavior"].as_str().unwrap_or_default() {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "grow" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => panic!("test hook asked to trap"),
        // A bare `unreachable` instruction: a trap with no panic message behind it.
        "unreachable" => core::arch::wasm32::unreachable(),
        "error" => Err(wasmcni_hooks_sdk::error("test hook asked to fail")),
        "huge-error" => Err(wasmcni_hooks_sdk::error("E".repeat(10 << 20))),
        "forge-log" => {
            wasmcni_hooks_sdk::log(Level::Error, "\u{1b}[2J\u{1b}[31mred\nwasmcni[1] +0.001ms error: ADD failed: forged by a hook");
            Ok(())
        }
        "flood-log" => {
            let line = "x".repeat(1000);
            for _ in 0..20_000 {
                wasmcni_hooks_sdk::log(Level::Info, &line);
            }
            Ok(())
        }
        "recurse" => Err(wasmcni_hooks_sdk::error(format!("{}", recurse(std::hint::black_box(1))))),
        _ => Ok(()),
    }
}

/// Never returns: small frames on the wasm call stack, until the engine's stack limit stops it.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(n: u64) -> u64 {
    std::hint::black_box(recurse(n.wrapping_add(1))) ^ n
}

impl wasmcni_hooks_sdk::Hook for TestHook {
    fn pre_add(a: Attachment, mut plan: Plan) -> Result<Plan, HookError> {
        let cfg = config(&a);
        misbehave(&cfg)?;
        if cfg["behavior"] == "many-routes" {
            plan.routes = (0..10_000u32)
                .map(|i| wasmcni_hooks_sdk::Route { dst: format!("10.{}.{}.0/24", i / 256, i % 256), gw: None })
                .collect();
        }
        if cfg["behavior"] == "set-ip" {
            plan.ips = vec![cfg["ip"].as_str().unwrap_or_default().to_string()];
            wasmcni_hooks_sdk::log(Level::Info, &format!("pod {:?} gets {:?}", a.pod_name, plan.ips));
        }
        println!("pre-add for {}", a.container_id);
        Ok(plan)
    }

    fn post_add(a: Attachment, _r: AddResult) -> Result<Vec<Rule>, HookError> {
        let cfg = config(&a);
        misbehave(&cfg)?;
        if cfg["behavior"] != "drop-port" {
            return Ok(Vec::new());
        }
        let port = cfg["port"].as_u64().unwrap_or(0) as u16;
        Ok(vec![Rule {
            direction: wasmcni_hooks_sdk::Direction::Egress,
            protocol: wasmcni_hooks_sdk::Protocol::Tcp,
            ports: Some(wasmcni_hooks_sdk::PortRange { start: port, end: port }),
            peer: cfg["peer"].as_str().map(String::from),
            action: wasmcni_hooks_sdk::Action::Drop,
            log_prefix: None,
        }])
    }

    fn del(a: Attachment) -> Result<(), HookError> {
        misbehave(&config(&a))
    }
}

export_hook!(TestHook);
