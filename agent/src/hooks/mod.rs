//! Hook sets from the cluster to this node: a new set is staged under its version, validated by the plugin,
//! and only then made current; a bad set never replaces a good one and is reported.

pub mod source;
pub mod store;
pub mod validate;

use source::HookFiles;
use store::SetDir;
use validate::Validate;

#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Already current.
    Unchanged(String),
    Switched { from: Option<String>, to: String },
    /// Refused now; the current set (if any) stays.
    Rejected { version: String, reason: String },
    /// The same content as the last refused set: not tried again.
    StillRejected { version: String },
}

pub struct HookSync<V> {
    dir: SetDir,
    validator: V,
    rejected: Option<(String, String)>,
    /// The current set was checked by this process (after an upgrade the new plugin compiles it into the
    /// cache here, not on the first pod's ADD).
    checked: bool,
}

impl<V: Validate> HookSync<V> {
    pub fn new(dir: SetDir, validator: V) -> Self {
        HookSync { dir, validator, rejected: None, checked: false }
    }

    pub fn dir(&self) -> &SetDir {
        &self.dir
    }

    pub fn current(&self) -> Option<String> {
        self.dir.current()
    }

    /// The last refused version and why, while it is still the one on offer.
    pub fn rejected(&self) -> Option<&(String, String)> {
        self.rejected.as_ref()
    }

    pub async fn offer(&mut self, files: HookFiles) -> Offer {
        let files = files.with_manifest();
        let version = files.version();
        let current = self.dir.current();
        if current.as_deref() == Some(version.as_str()) {
            if !self.checked {
                self.checked = true;
                if let Err(why) = self.validator.validate(&self.dir.set_path(&version).join(source::MANIFEST)).await {
                    // Nothing better to switch to: it stays, and is reported.
                    self.rejected = Some((version.clone(), why.clone()));
                    return Offer::Rejected { version, reason: why };
                }
            }
            self.rejected = None;
            return Offer::Unchanged(version);
        }
        if self.rejected.as_ref().is_some_and(|(v, _)| *v == version) {
            return Offer::StillRejected { version };
        }
        let reject = |this: &mut Self, reason: String| {
            this.dir.discard(&version);
            this.rejected = Some((version.clone(), reason.clone()));
            Offer::Rejected { version: version.clone(), reason }
        };
        let manifest = match self.dir.stage(&version, &files) {
            Ok(m) => m,
            Err(e) => return reject(self, format!("cannot write the set to {}: {e}", self.dir.set_path(&version).display())),
        };
        if let Err(why) = self.validator.validate(&manifest).await {
            return reject(self, why);
        }
        if let Err(e) = self.dir.switch(&version) {
            return reject(self, format!("cannot switch to it: {e}"));
        }
        self.dir.prune(&version, current.as_deref());
        self.rejected = None;
        self.checked = true;
        Offer::Switched { from: current, to: version }
    }
}

#[cfg(test)]
mod tests;
