//! Where an attachment's addresses come from: the built-in IPAM, or an IPAM plugin in CNI_PATH.

use super::delegate::Invocation;
use super::{Error, IpamConfig};
use crate::cni::request::{Command, Request};

pub enum IpamMode {
    Builtin(IpamConfig),
    /// `ranges` when the plugin's config has host-local's shape (subnet/ranges), for validating hook plans.
    Plugin { invocation: Invocation, ranges: Option<IpamConfig> },
}

impl IpamMode {
    pub fn from_request(req: &Request) -> Result<Self, Error> {
        let raw = req.conf.ipam.as_ref().ok_or_else(|| Error::Config("missing \"ipam\" section".into()))?;
        let ip_ranges = req.conf.runtime_config.as_ref().and_then(|r| r.get("ipRanges"));
        let adding = req.command == Command::Add;
        match req.conf.ipam_type() {
            Some("builtin") => Ok(IpamMode::Builtin(IpamConfig::load(raw, ip_ranges, adding)?)),
            Some(plugin) => {
                let invocation = Invocation {
                    plugin: plugin.to_string(),
                    cni_path: req.cni_path.clone(),
                    container_id: req.container_id.clone(),
                    ifname: req.ifname.clone(),
                    netns: req.netns.clone(),
                    args: req.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";"),
                    conf: req.raw_conf.clone(),
                    version: None,
                };
                if adding {
                    // A plugin that is not there is a config error, said before anything else is looked at.
                    invocation.find()?;
                }
                // Only ADD validates hook plans against them.
                let ranges = adding.then(|| IpamConfig::load(raw, ip_ranges, true).ok()).flatten();
                Ok(IpamMode::Plugin { invocation, ranges })
            }
            None => Err(Error::Config("field ipam.type is missing (\"builtin\", or an IPAM plugin such as \"host-local\")".into())),
        }
    }

    pub fn ranges(&self) -> Option<&IpamConfig> {
        match self {
            IpamMode::Builtin(c) => Some(c),
            IpamMode::Plugin { ranges, .. } => ranges.as_ref(),
        }
    }
}
