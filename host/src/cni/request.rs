//! A CNI invocation: the command and parameters from the environment plus the parsed config, validated
//! before anything touches the system (spec §"Parameters").

use std::path::PathBuf;

use serde_json::Value;

use super::conf::NetConf;
use super::version::Version;
use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn parse(s: &str) -> Result<Self, Error> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => {
                return Err(Error::InvalidEnv {
                    var: "CNI_COMMAND",
                    msg: format!("unknown command {s:?} (expected ADD, DEL, CHECK, STATUS, GC or VERSION)"),
                })
            }
        })
    }

    /// The name as runtimes spell it in CNI_COMMAND.
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }
}

/// Reads environment variables; a trait so parsing is tested without touching the process environment.
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

#[derive(Debug, Clone)]
pub struct Request {
    pub command: Command,
    pub container_id: String,
    /// None when the runtime passed no netns (allowed for DEL).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// CNI_ARGS as ordered key/value pairs (`K8S_POD_NAMESPACE`, `IP`, ...).
    pub args: Vec<(String, String)>,
    pub cni_path: Vec<PathBuf>,
    pub version: Version,
    pub conf: NetConf,
    /// The config exactly as received, for delegation and hooks.
    pub raw_conf: Value,
}

impl Request {
    /// Parses everything but VERSION, which needs no config of its own (see `ops::dispatch`).
    pub fn parse(command: Command, env: &dyn Env, stdin: &[u8]) -> Result<Self, Error> {
        Self::from_stdin(command, env, super::conf::read_stdin(stdin))
    }

    pub fn from_stdin(command: Command, env: &dyn Env, stdin: super::conf::Stdin) -> Result<Self, Error> {
        let (conf, raw_conf) = NetConf::from_stdin(stdin)?;
        let version = Version::parse(&conf.cni_version)?;
        let needs_attachment = matches!(command, Command::Add | Command::Del | Command::Check);
        let container_id = match env.var("CNI_CONTAINERID").filter(|s| !s.is_empty()) {
            Some(id) => validate_container_id(&id)?,
            None if needs_attachment => return Err(missing("CNI_CONTAINERID")),
            None => String::new(),
        };
        let ifname = match env.var("CNI_IFNAME").filter(|s| !s.is_empty()) {
            Some(name) => validate_ifname(&name)?,
            None if needs_attachment => return Err(missing("CNI_IFNAME")),
            None => String::new(),
        };
        // Spec: CNI_NETNS may be empty for DEL (the netns is already gone); ADD and CHECK need it.
        let netns = env.var("CNI_NETNS").filter(|s| !s.is_empty()).map(PathBuf::from);
        if netns.is_none() && matches!(command, Command::Add | Command::Check) {
            return Err(missing("CNI_NETNS"));
        }
        if let Some(ns) = &netns {
            if !ns.is_absolute() {
                return Err(Error::InvalidEnv { var: "CNI_NETNS", msg: format!("{} is not an absolute path", ns.display()) });
            }
        }
        let args = parse_args(&env.var("CNI_ARGS").unwrap_or_default())?;
        let cni_path = env
            .var("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Ok(Request { command, container_id, netns, ifname, args, cni_path, version, conf, raw_conf })
    }

    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

fn missing(var: &'static str) -> Error {
    Error::InvalidEnv { var, msg: "is required for this command but not set".into() }
}

/// Spec: the container ID starts with a letter or digit and holds only alphanumerics, '_', '.' and '-'.
pub fn validate_container_id(id: &str) -> Result<String, Error> {
    match crate::naming::name_problem(id, crate::naming::MAX_CONTAINER_ID) {
        None => Ok(id.to_string()),
        Some(msg) => Err(Error::InvalidEnv { var: "CNI_CONTAINERID", msg }),
    }
}

/// Spec: at most 15 bytes (IFNAMSIZ - 1), not "." or "..", no '/', ':' or whitespace.
pub fn validate_ifname(name: &str) -> Result<String, Error> {
    match crate::naming::ifname_problem(name) {
        None => Ok(name.to_string()),
        Some(msg) => Err(Error::InvalidEnv { var: "CNI_IFNAME", msg }),
    }
}

/// `K=V;K2=V2`, as kubelet sends `IgnoreUnknown=1;K8S_POD_NAMESPACE=...`.
pub fn parse_args(s: &str) -> Result<Vec<(String, String)>, Error> {
    s.split(';')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::InvalidEnv { var: "CNI_ARGS", msg: format!("{pair:?} is not KEY=VALUE") }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const CONF: &[u8] = br#"{"cniVersion":"1.0.0","name":"n","type":"wasmcni"}"#;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn full() -> HashMap<String, String> {
        env(&[
            ("CNI_CONTAINERID", "abc-123"),
            ("CNI_NETNS", "/var/run/netns/p"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
    }

    #[test]
    fn parses_a_complete_add() {
        let req = Request::parse(Command::Add, &full(), CONF).unwrap();
        assert_eq!(req.container_id, "abc-123");
        assert_eq!(req.ifname, "eth0");
        assert_eq!(req.netns.as_deref(), Some(std::path::Path::new("/var/run/netns/p")));
        assert_eq!(req.arg("K8S_POD_NAME"), Some("web"));
        assert_eq!(req.cni_path.len(), 2);
        assert_eq!(req.version.as_str(), "1.0.0");
    }

    #[test]
    fn missing_or_invalid_env_is_code_4_naming_the_variable() {
        for var in ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_NETNS"] {
            let mut e = full();
            e.remove(var);
            let err = Request::parse(Command::Add, &e, CONF).unwrap_err();
            assert_eq!(err.code(), 4);
            assert!(err.to_string().contains(var), "{err}");
        }
        for (var, value) in [
            ("CNI_CONTAINERID", "bad id!"),
            ("CNI_IFNAME", "much-too-long-ifname"),
            ("CNI_IFNAME", "eth/0"),
            ("CNI_NETNS", "relative/path"),
            ("CNI_ARGS", "novalue"),
        ] {
            let mut e = full();
            e.insert(var.into(), value.into());
            let err = Request::parse(Command::Add, &e, CONF).unwrap_err();
            assert_eq!(err.code(), 4, "{var}={value}");
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn del_allows_an_empty_netns_and_gc_needs_no_attachment() {
        let mut e = full();
        e.insert("CNI_NETNS".into(), String::new());
        let req = Request::parse(Command::Del, &e, CONF).unwrap();
        assert!(req.netns.is_none());
        let req = Request::parse(Command::Gc, &env(&[]), CONF).unwrap();
        assert!(req.container_id.is_empty());
    }

    #[test]
    fn unknown_command_is_code_4() {
        assert_eq!(Command::parse("FOO").unwrap_err().code(), 4);
        assert_eq!(Command::parse("add").unwrap(), Command::Add);
    }
}
