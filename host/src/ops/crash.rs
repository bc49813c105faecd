//! ADD's steps: each is logged at debug level when done (with the milliseconds since start, so a debug log
//! shows where an ADD's time goes), and is a test-only crash point: with the `crash-points` feature,
//! `WASMCNI_CRASH_AFTER=<step>` makes the binary SIGKILL itself right after that step, as a runtime's
//! timeout or the OOM killer would. Without the feature the variable is never read.

/// Every step ADD passes, in order (the kernel tests kill it after each one in turn).
pub const ADD_STEPS: &[&str] = &[
    "locked",
    "planned",
    "reserved",
    "bridge-ready",
    "rules-decided",
    "recorded-intent",
    "firewall-started",
    "veth-created",
    "pod-addressed",
    "host-configured",
    "firewall-applied",
    "pod-up",
    "recorded",
];

#[cfg(feature = "crash-points")]
pub fn after(step: &str) {
    debug_assert!(ADD_STEPS.contains(&step), "unknown crash point {step}");
    log::debug!("step {step} done");
    if std::env::var("WASMCNI_CRASH_AFTER").is_ok_and(|s| s == step) {
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn after(step: &str) {
    log::debug!("step {step} done");
}
