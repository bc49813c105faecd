//! The backend for `firewallBackend: "none"`: applies nothing, so it has nothing to remove or check.

use super::{Applying, AttachmentRules, Backend, Done, Error, Firewall};

pub struct Noop;

impl Firewall for Noop {
    fn backend(&self) -> Backend {
        Backend::None
    }

    fn apply(&self, rules: &AttachmentRules) -> Result<Box<dyn Applying>, Error> {
        if !rules.is_empty() {
            log::warn!("firewallBackend is \"none\": masquerade and hook rules of {}/{} are not applied", rules.container_id, rules.ifname);
        }
        Ok(Box::new(Done(Ok(()))))
    }

    fn teardown(&self, _rules: &AttachmentRules) -> Result<(), Error> {
        Ok(())
    }

    fn check(&self, _rules: &AttachmentRules) -> Result<Vec<String>, Error> {
        Ok(Vec::new())
    }

    fn leftovers(&self, _network: &str) -> Result<Vec<AttachmentRules>, Error> {
        Ok(Vec::new())
    }

    fn status(&self) -> Result<(), Error> {
        Ok(())
    }
}
