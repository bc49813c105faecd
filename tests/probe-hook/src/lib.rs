//! pre-add tries a file, the environment and a TCP connection, counts its calls, and logs what it got: the
//! kernel tests read that log to show the sandbox and a fresh instance per call.

use wasmcni_hooks_sdk::{export_hook, Attachment, HookError, Level, Plan};

struct ProbeHook;

/// Survives between calls only if the host reuses an instance (it must not).
static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl wasmcni_hooks_sdk::Hook for ProbeHook {
    fn pre_add(_a: Attachment, plan: Plan) -> Result<Plan, HookError> {
        let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let verdict = |ok: bool| if ok { "allowed" } else { "denied" };
        let file = verdict(std::fs::read("/etc/hostname").is_ok() || std::fs::read_dir("/").is_ok());
        let env = std::env::vars().count();
        let tcp = verdict(std::net::TcpStream::connect("127.0.0.1:9").is_ok());
        wasmcni_hooks_sdk::log(Level::Info, &format!("probe: file={file} env={env} tcp={tcp} calls={calls}"));
        Ok(plan)
    }
}

export_hook!(ProbeHook);
