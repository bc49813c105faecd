//! Helper threads that run beside the thread that starts them, not after it.
//!
//! Linux queues a new thread on its creator's CPU. While the creator keeps working, the new thread can
//! wait there until the creator blocks or for milliseconds (a probe here: up to 3 ms on an idle 2-CPU VM,
//! where the other CPU picks it up only at its next balance), so the overlap it was started for never
//! happens. `spawn` moves the queued thread to another CPU the process may use before it first runs (one
//! syscall for the creator, which does not wait); the thread then takes back the process's full affinity.

use std::os::unix::thread::JoinHandleExt;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The CPU the calling thread runs on.
fn current_cpu() -> Option<usize> {
    nix::sched::sched_getcpu().ok()
}

/// Where the calling thread may run, and the same without the CPU it runs on now (None when that leaves
/// nothing, or the kernel will not say).
fn elsewhere() -> Option<(CpuSet, CpuSet)> {
    let cpu = current_cpu()?;
    let allowed = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let mut others = allowed;
    others.unset(cpu).ok()?;
    (0..CpuSet::count()).any(|c| others.is_set(c).unwrap_or(false)).then_some((allowed, others))
}

/// `std::thread::Builder::spawn` with a name, the new thread moved off this CPU before it first runs.
pub fn spawn<T, F>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let masks = elsewhere();
    let allowed = masks.as_ref().map(|(a, _)| *a);
    // The thread waits for word that it has been placed: glibc finds a thread by the kernel id it stores,
    // which reads 0 (the caller itself) once the thread has exited, and a thread that ran before the move
    // would otherwise be pinned after it had taken its affinity back.
    let (placed, wait_placed) = std::sync::mpsc::sync_channel::<()>(1);
    let handle = std::thread::Builder::new().name(name.into()).spawn(move || {
        if let Some(allowed) = allowed {
            let _ = wait_placed.recv();
            // Anywhere again, now that it runs (staying where it is).
            let _ = sched_setaffinity(Pid::from_raw(0), &allowed);
        }
        f()
    })?;
    if let Some((_, others)) = masks {
        let set = cpu_set(&others);
        // std's handle is an integer; musl's pthread_t is a pointer, glibc's the same integer.
        let thread = handle.as_pthread_t() as libc::pthread_t;
        // SAFETY: the thread is alive (it waits for `placed` before anything else) and `set` is a valid
        // cpu_set_t of the size passed. Best effort: a refusal (seccomp, cpuset) leaves it where it is.
        unsafe { libc::pthread_setaffinity_np(thread, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    }
    let _ = placed.send(());
    Ok(handle)
}

fn cpu_set(set: &CpuSet) -> libc::cpu_set_t {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut out: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in (0..CpuSet::count()).filter(|c| set.is_set(*c).unwrap_or(false)) {
        // SAFETY: c < CpuSet::count(), the number of CPUs a cpu_set_t holds.
        unsafe { libc::CPU_SET(c, &mut out) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where a helper first runs is the scheduler's to show (the probe in docs/performance.md does); what
    /// can be checked is that the move is undone: the helper ends up free to run on every CPU the process
    /// may use, and its creator's own affinity is untouched.
    #[test]
    fn a_helper_gets_the_full_affinity_back_and_its_creator_keeps_its_own() {
        let before = sched_getaffinity(Pid::from_raw(0)).unwrap();
        for _ in 0..20 {
            let h = spawn("t-helper", || (sched_getaffinity(Pid::from_raw(0)).unwrap(), std::thread::current().name().map(String::from)))
                .unwrap();
            let (mask, name) = h.join().unwrap();
            assert_eq!(mask, before, "the helper keeps the process's affinity");
            assert_eq!(name.as_deref(), Some("t-helper"));
            assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), before, "the creator keeps its affinity");
        }
    }

    #[test]
    fn the_other_cpus_leave_out_the_current_one() {
        let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let count = (0..CpuSet::count()).filter(|c| allowed.is_set(*c).unwrap_or(false)).count();
        match elsewhere() {
            // Pinned to one CPU (or the kernel would not say): nowhere to move to.
            None => assert!(count <= 1 || current_cpu().is_none()),
            Some((all, others)) => {
                assert_eq!(all, allowed);
                let cpu = current_cpu().unwrap();
                // The thread may have moved since `elsewhere` looked; the sets still differ in one CPU.
                let n = (0..CpuSet::count()).filter(|c| others.is_set(*c).unwrap_or(false)).count();
                assert_eq!(n, count - 1, "one CPU left out (now on {cpu})");
            }
        }
    }
}
