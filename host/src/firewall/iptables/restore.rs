//! Running iptables-save / iptables-restore. Runtimes exec plugins with a minimal PATH, so the tools are also
//! looked for in the usual sbin directories.

use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::super::{Error, Family};

fn prefix(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

/// Runs the iptables tools. `Tools` rather than the backend itself, so the backend's locking stays apart.
#[derive(Debug, Default, Clone)]
pub struct Tools;


/// A running iptables-restore. Dropping it waits for it too, so an early return can never leave a restore
/// committing behind an unwind that already ran.
pub struct Pending {
    tool: String,
    child: Option<std::process::Child>,
    /// It closed its stdin before reading all the input.
    broken_pipe: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

impl Pending {
    pub fn wait(mut self) -> Result<(), Error> {
        let tool = self.tool.clone();
        let child = self.child.take().expect("waited once");
        let out = child.wait_with_output().map_err(|source| Error::Spawn { tool: tool.clone(), source })?;
        if out.status.success() && self.broken_pipe {
            return Err(Error::Failed { tool, status: out.status.to_string(), stderr: "it exited without reading all of its input".into() });
        }
        check(tool, &out)
    }
}

/// A failed run as an error carrying the tool's own words.
fn check(tool: String, out: &std::process::Output) -> Result<(), Error> {
    if out.status.success() {
        return Ok(());
    }
    Err(Error::Failed { tool, status: out.status.to_string(), stderr: String::from_utf8_lossy(&out.stderr).trim().to_string() })
}

fn find_tool(name: &str) -> Result<PathBuf, Error> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file());
    found.ok_or_else(|| Error::NotFound { tool: name.into() })
}

impl Tools {
    /// Applies `input` atomically per table; `-w` waits for the xtables lock instead of failing when
    /// concurrent ADDs (or kube-proxy) hold it.
    pub fn restore(&self, family: Family, input: &str) -> Result<(), Error> {
        self.restore_start(family, input, None)?.wait()
    }

    /// Starts iptables-restore and returns without waiting, so the caller can do netlink work meanwhile.
    /// The child dies with the thread that started it (PR_SET_PDEATHSIG: a killed ADD takes its restore
    /// along) and holds `hold` open while it runs, so that whoever waits for that lock also waits for it.
    pub fn restore_start(&self, family: Family, input: &str, hold: Option<BorrowedFd>) -> Result<Pending, Error> {
        let tool = format!("{}-restore", prefix(family));
        log::debug!("{tool} --noflush <<EOF\n{input}EOF");
        let mut cmd = Command::new(find_tool(&tool)?);
        cmd.args(["--noflush", "-w", "10"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
        let hold = hold.map(|fd| fd.as_raw_fd());
        // SAFETY: only async-signal-safe calls (prctl, fcntl) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL).map_err(std::io::Error::from)?;
                if let Some(fd) = hold {
                    // Keep the lock's file open across exec (it is opened close-on-exec).
                    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).map_err(std::io::Error::from)?;
                    let flags = nix::fcntl::FdFlag::from_bits_truncate(flags) - nix::fcntl::FdFlag::FD_CLOEXEC;
                    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(flags)).map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| Error::Spawn { tool: tool.clone(), source })?;
        // A restore that exits early (bad input, no permission) closes its stdin: its exit status and
        // stderr, read by wait(), say why; the broken pipe would only hide that.
        let broken_pipe = match child.stdin.take().expect("stdin is piped").write_all(input.as_bytes()) {
            Err(source) if source.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(Error::Spawn { tool: tool.clone(), source });
            }
            Err(_) => true,
            Ok(()) => false,
        };
        Ok(Pending { tool, child: Some(child), broken_pipe })
    }

    /// `iptables-save -t TABLE`, or every table with `None`.
    pub fn save(&self, family: Family, table: Option<&str>) -> Result<String, Error> {
        let tool = format!("{}-save", prefix(family));
        log::debug!("{tool}{}", table.map(|t| format!(" -t {t}")).unwrap_or_default());
        let out = Command::new(find_tool(&tool)?)
            .args(table.map(|t| vec!["-t", t]).unwrap_or_default())
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn { tool: tool.clone(), source })?;
        check(tool, &out)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Whether the tools are installed and usable here (for STATUS).
    pub fn probe(&self, family: Family) -> Result<(), Error> {
        self.save(family, Some("nat")).map(|_| ())
    }
}
