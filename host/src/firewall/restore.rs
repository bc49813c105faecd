//! Running iptables-save / iptables-restore. Runtimes exec plugins with a minimal PATH, so the tools are also
//! looked for in the usual sbin directories.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    pub fn multicast(self) -> &'static str {
        match self {
            Family::V4 => "224.0.0.0/4",
            Family::V6 => "ff00::/8",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct Iptables;

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

impl Iptables {
    /// Applies `input` atomically per table; `-w` waits for the xtables lock instead of failing when
    /// concurrent ADDs (or kube-proxy) hold it.
    pub fn restore(&self, family: Family, input: &str) -> Result<(), Error> {
        self.restore_start(family, input)?.wait()
    }

    /// Starts iptables-restore and returns without waiting, so the caller can do netlink work meanwhile.
    pub fn restore_start(&self, family: Family, input: &str) -> Result<Pending, Error> {
        let tool = format!("{}-restore", family.prefix());
        log::debug!("{tool} --noflush <<EOF\n{input}EOF");
        let mut child = Command::new(find_tool(&tool)?)
            .args(["--noflush", "-w", "10"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn { tool: tool.clone(), source })?;
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
        let tool = format!("{}-save", family.prefix());
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
