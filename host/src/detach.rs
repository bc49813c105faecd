//! Leaving slow kernel clean-up to a short-lived child process, so the command returns without waiting
//! for work nobody can observe. Both users fork a child that does nothing but plain system calls on what
//! was prepared before the fork (async-signal-safe: another thread may hold a lock at that moment), keeps
//! no file of ours open but the ones it was given (the runtime reads our stdout until it closes), and is
//! never waited for.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::libc;

/// In a child: closes every fd but `keep`. Async-signal-safe.
pub fn close_all_but(keep: &[RawFd]) {
    let mut sorted = [-1; 8];
    let n = keep.len().min(sorted.len());
    sorted[..n].copy_from_slice(&keep[..n]);
    sorted[..n].sort_unstable();
    let mut from: libc::c_uint = 0;
    for &k in &sorted[..n] {
        let k = k as libc::c_uint;
        if k > from {
            // SAFETY: close_range(2) on fds of this process only.
            unsafe { libc::syscall(libc::SYS_close_range, from, k - 1, 0) };
        }
        from = k + 1;
    }
    // SAFETY: as above.
    unsafe { libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0) };
}

/// Hands `fds` (up to 7) to a child that holds them until this process exits and a grace period has
/// passed, and then closes them, so that their last close happens there, when it no longer waits. The caller closes its own
/// copies as usual; they are no longer the last.
pub fn hold_until_exit(fds: &[RawFd]) -> std::io::Result<()> {
    let mut ends = [0; 2];
    // SAFETY: pipe2 fills the array with two new fds, owned right after.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are new and ours.
    let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    let mut keep = [-1; 8];
    let n = fds.len().min(7);
    keep[..n].copy_from_slice(&fds[..n]);
    keep[n] = read_end.as_raw_fd();
    // SAFETY: the child runs only async-signal-safe calls on memory prepared before the fork.
    match unsafe { libc::fork() } {
        -1 => return Err(std::io::Error::last_os_error()),
        0 => {
            close_all_but(&keep[..=n]);
            let mut byte = 0u8;
            // Returns at EOF: when this process has exited and with it the pipe's only write end.
            // SAFETY: reads at most one byte into `byte`.
            while unsafe { libc::read(read_end.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) } > 0 {}
            // Then a grace period, so that the kernel's freeing of what the last transactions replaced (its
            // own grace period, then the frees) is over: a netfilter socket's last close otherwise waits for
            // it holding the namespace's nf_tables mutex, and the next ADD's commit waited behind that (a
            // probe: 9.7 ms instead of 0.2). MEMBARRIER_CMD_GLOBAL is synchronize_rcu(); the sleep covers the
            // frees after it, and kernels without the command.
            // SAFETY: membarrier(2) and nanosleep(2) take no memory of ours but the timespec.
            unsafe {
                libc::syscall(libc::SYS_membarrier, 1, 0, 0);
                let pause = libc::timespec { tv_sec: 0, tv_nsec: 20_000_000 };
                libc::nanosleep(&pause, std::ptr::null_mut());
            }
            // SAFETY: ends the child; its exit closes the fds it holds.
            unsafe { libc::_exit(0) }
        }
        _ => {}
    }
    drop(read_end);
    // Held until exit: the child waits for it to close. Close-on-exec, so nothing we run inherits it.
    std::mem::forget(write_end);
    Ok(())
}
