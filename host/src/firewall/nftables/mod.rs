//! The nftables backend, spoken over netlink from this process (no `nft` exec on the per-pod path): one
//! `inet` table of ours, per-pod state as verdict-map elements (layout.rs), each ADD and each DEL one
//! atomic transaction of a few messages. Its cost does not grow with the pods on the node: nothing lists or
//! rewrites the ruleset, and CHECK and GC read only our table.

mod expr;
mod layout;
mod leftovers;
mod masq;
mod plan;
#[cfg(test)]
mod tests;
mod wire;

use std::sync::Mutex;

use super::{AttachmentRules, Backend, Done, Error, Firewall};
use layout::TABLE;
use plan::{dispatch_keys, families, hook_chains, key, per_family, Op};
use wire::{msg, Batch, Conn, Refused, NLM_F_DUMP};

pub(crate) const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const EBUSY: i32 = 16;

/// Sockets are kept for the whole command and closed when it ends, not after each use: closing a netfilter
/// socket waits for the kernel to finish freeing what the namespace's last transactions removed (an RCU
/// grace period, 10-30 ms here), holding the nf_tables mutex that a veth's unregister needs too, so DEL
/// paid it on top of its veth deletion. Handing the close to a child instead (measured) only moved that
/// wait, mutex held, onto whichever commit came next on the node: the next ADD. Idle sockets are reused (GC
/// tears down many attachments), each only in the namespace it was opened in.
#[derive(Default)]
pub struct Nftables {
    idle: Mutex<Vec<(u64, Conn)>>,
}

impl std::fmt::Debug for Nftables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nftables")
    }
}

/// A socket in use; back to `Nftables::idle` when dropped.
struct InUse<'a> {
    netns: u64,
    conn: Option<Conn>,
    idle: &'a Mutex<Vec<(u64, Conn)>>,
}

impl std::ops::Deref for InUse<'_> {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        self.conn.as_ref().expect("held until dropped")
    }
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        if let (Some(conn), Ok(mut idle)) = (self.conn.take(), self.idle.lock()) {
            idle.push((self.netns, conn));
        }
    }
}

/// The calling thread's network namespace (its inode), which a netlink socket belongs to.
fn thread_netns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").map(|m| m.ino()).unwrap_or(0)
}

pub(crate) fn backend_err(e: String) -> Error {
    Error::Backend(e)
}

fn refused(list: &[Refused]) -> Error {
    let words: Vec<String> = list.iter().map(ToString::to_string).collect();
    Error::Backend(format!("nftables refused the change: {}", words.join("; ")))
}

impl Nftables {
    fn conn(&self) -> Result<InUse<'_>, Error> {
        let netns = thread_netns();
        let reused = self.idle.lock().ok().and_then(|mut idle| {
            let at = idle.iter().position(|(ns, _)| *ns == netns)?;
            Some(idle.swap_remove(at).1)
        });
        let conn = match reused {
            Some(c) => {
                c.discard_pending().map_err(backend_err)?;
                c
            }
            None => Conn::open().map_err(backend_err)?,
        };
        Ok(InUse { netns, conn: Some(conn), idle: &self.idle })
    }

    /// Commits `batch`; when our table (or a map or base chain of it) is missing, creates it, and when a
    /// concurrent ADD just made the same masquerade set (EEXIST), builds the batch again and retries.
    fn commit_with_setup(&self, conn: &Conn, build: impl Fn() -> Result<Batch, Error>) -> Result<(), Error> {
        let mut refused_now = commit(conn, build()?)?;
        for _ in 0..3 {
            if refused_now.is_empty() {
                return Ok(());
            }
            if !refused_now.iter().all(|r| r.errno == ENOENT || r.errno == EEXIST) {
                break;
            }
            if refused_now.iter().any(|r| r.errno == ENOENT) {
                let mut setup = Batch::new();
                layout::setup(&mut setup);
                let set_up = conn.commit(setup).map_err(backend_err)?;
                if !set_up.is_empty() {
                    return Err(refused(&set_up));
                }
                log::info!("nftables: table inet {TABLE} set up");
            } else {
                log::debug!("nftables: another ADD created what this one meant to; building the transaction again");
            }
            // Built again: what it found missing (a masquerade chain a DEL just removed) is looked at anew.
            refused_now = commit(conn, build()?)?;
        }
        if refused_now.is_empty() {
            Ok(())
        } else {
            Err(refused(&refused_now))
        }
    }

    /// The chains of our table whose comment is `text`.
    fn chains_commented(conn: &Conn, text: &str) -> Result<Vec<String>, Error> {
        let Ok(chains) = conn.request(msg::GETCHAIN, NLM_F_DUMP, |_| {}).map_err(backend_err)? else { return Ok(Vec::new()) };
        Ok(chains
            .iter()
            .filter(|c| wire::attr_str(&c.attrs, 1).as_deref() == Some(TABLE))
            .filter(|c| wire::attr(&c.attrs, 12).and_then(layout::read_comment).as_deref() == Some(text))
            .filter_map(|c| wire::attr_str(&c.attrs, 3))
            .collect())
    }

    /// One element, asked for by key; None when it is not there.
    fn element_exists(conn: &Conn, set: &str, k: &[u8]) -> Result<bool, Error> {
        let got = conn
            .request(msg::GETSETELEM, 0, |a| {
                a.str(1, TABLE).str(2, set).nest(3, |list| {
                    list.nest(1, |el| expr::value_nest(el, 1, k));
                });
            })
            .map_err(backend_err)?;
        Ok(got.is_ok())
    }

    /// How many rules `chain` holds; None when the kernel refuses the dump. A missing chain reads as 0:
    /// the kernel's dump of one chain's rules does not say whether the chain is there.
    fn rule_count(conn: &Conn, chain: &str) -> Result<Option<usize>, Error> {
        let got = conn
            .request(msg::GETRULE, NLM_F_DUMP, |a| {
                a.str(1, TABLE).str(2, chain);
            })
            .map_err(backend_err)?;
        Ok(got.ok().map(|r| r.len()))
    }
}

/// Commits `batch`; the kernel's refusals, or nothing when it applied all of it (logged, for the tests
/// and for whoever reads the debug log to see what a pod costs).
fn commit(conn: &Conn, batch: Batch) -> Result<Vec<Refused>, Error> {
    let n = batch.len();
    let refused = conn.commit(batch).map_err(backend_err)?;
    if refused.is_empty() && n > 0 {
        log::debug!("nftables: {n} changes in one transaction");
    } else if let Some(r) = refused.first() {
        // Worth seeing when reading timings: the kernel's abort of a transaction costs ~10 ms.
        log::debug!("nftables: transaction refused ({r})");
    }
    Ok(refused)
}

impl Firewall for Nftables {
    fn backend(&self) -> Backend {
        Backend::Nftables
    }

    fn apply(&self, rules: &AttachmentRules) -> Result<Box<dyn super::Applying>, Error> {
        let conn = self.conn()?;
        // Applied now: a few messages in one transaction take less than starting a process would.
        self.commit_with_setup(&conn, || {
            let there = masq::present(&conn, rules)?;
            Ok(plan::apply_batch(rules, &there.whole, &there.sets))
        })?;
        Ok(Box::new(Done(Ok(()))))
    }

    fn teardown(&self, rules: &AttachmentRules) -> Result<(), Error> {
        let conn = self.conn()?;
        let mut all = masq::element_ops(&conn, rules)?;
        all.extend(plan::teardown_ops(rules));
        let mut ops: Vec<&Op> = all.iter().collect();
        // One missing object fails the whole transaction: leave out what is already gone and go again (DESTROY
        // would do that in one go, but only from Linux 6.3 on).
        let mut settled = false;
        for _ in 0..4 {
            if ops.is_empty() {
                settled = true;
                break;
            }
            let refused_now = commit(&conn, plan::teardown_batch(&ops))?;
            if refused_now.is_empty() {
                settled = true;
                break;
            }
            if !refused_now.iter().all(|r| r.errno == ENOENT && r.index.is_some()) {
                return Err(refused(&refused_now));
            }
            let gone: Vec<usize> = refused_now.iter().filter_map(|r| r.index).collect();
            ops = ops.into_iter().enumerate().filter(|(i, _)| !gone.contains(i)).map(|(_, o)| o).collect();
        }
        if !settled {
            return Err(Error::Backend("nftables teardown did not settle after 4 tries".into()));
        }
        // The network's masquerade set, rule and chain stay for its next pod, as the reference's bridge does
        // (GC removes them once no pod uses them: `sweep`). Removing them with the last pod made that DEL
        // a second removal, and the close of our socket waits for the kernel to free each one.
        Ok(())
    }

    fn check(&self, rules: &AttachmentRules) -> Result<Vec<String>, Error> {
        let conn = self.conn()?;
        let mut missing = Vec::new();
        // The node's part: without its base chains no element of ours is ever looked up.
        for (chain, n) in layout::BASE_RULES {
            match Self::rule_count(&conn, chain)? {
                None => missing.push(format!("chain {chain} of table inet {TABLE} is missing")),
                Some(have) if have < n => missing.push(format!("chain {chain} of table inet {TABLE} holds {have} of its {n} rules")),
                Some(_) => {}
            }
        }
        masq::check(&conn, rules, &mut missing)?;
        let fams = families(rules);
        for out in [true, false] {
            let hooks = hook_chains(rules, out);
            let any = !hooks.is_empty();
            for (chain, _, mine) in &hooks {
                let n = per_family(mine, &fams).count();
                match Self::rule_count(&conn, chain)? {
                    None => missing.push(format!("hook rule chain {chain} is missing")),
                    Some(have) if have < n => missing.push(format!("hook rule chain {chain} holds {have} of its {n} rules")),
                    Some(_) => {}
                }
            }
            if any {
                let dispatch = layout::dispatch_chain(&key(rules), out);
                if Self::rule_count(&conn, &dispatch)?.is_none_or(|n| n == 0) {
                    missing.push(format!("hook dispatch chain {dispatch} is missing or empty"));
                }
                for (map, k, shown) in dispatch_keys(rules, out) {
                    if !Self::element_exists(&conn, map.name, &k)? {
                        missing.push(format!("the {} dispatch of {shown} (element of map {}) is missing", layout::dir(out), map.name));
                    }
                }
            }
        }
        Ok(missing)
    }

    fn leftovers(&self, network: &str) -> Result<Vec<AttachmentRules>, Error> {
        leftovers::find(&*self.conn()?, network)
    }

    fn sweep(&self, network: &str) -> Result<(), Error> {
        let conn = self.conn()?;
        for chain in Self::chains_commented(&conn, &format!("wasmcni masquerade of {network}"))? {
            masq::remove_unused(&conn, &chain)?;
        }
        Ok(())
    }

    fn status(&self) -> Result<(), Error> {
        let conn = self.conn()?;
        match conn.request(msg::GETGEN, 0, |_| {}).map_err(backend_err)? {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Backend(format!("nf_tables does not answer: {}", std::io::Error::from_raw_os_error(e)))),
        }
    }
}
