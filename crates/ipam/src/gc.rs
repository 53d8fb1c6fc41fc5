//! Garbage collection of leaked addresses, with a grace period (`weft ipam gc`).
//!
//! A handle is leaked when no live workload holds it and its creator no longer runs (see
//! [`crate::Creator`]). The first gc that sees a leak records when, in the store
//! (`/weft/ipam/leaks/<handle>`), so every later run, from any process or host, counts the same
//! grace period from the same moment; the addresses are released once it has passed. A handle
//! that becomes live again (or goes away) loses its sighting.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weft_store::{get_json, Compare, Op};

use crate::creator::in_creation;
use crate::release::free_handle;
use crate::{encode, keys, unix_now, Block, Error, Handle, Ipam, Result, Retry};

/// Default grace period: like Calico's kube-controllers (15 minutes).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15 * 60);

/// Reads the handles that live workloads hold; gc calls it once, after reading the IPAM
/// records, so a workload recorded before its handle was read is always seen.
pub type LiveHandles<'a> = &'a dyn Fn() -> std::result::Result<HashSet<String>, String>;

/// How `gc` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcOptions {
    /// How long a handle must have been seen leaked before its addresses are released.
    pub grace: Duration,
    /// Report only: record no sighting, release nothing.
    pub dry_run: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE,
            dry_run: false,
        }
    }
}

/// One leaked handle, as a gc run found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcEntry {
    pub handle: String,
    /// The node it was allocated on (unknown when only a block names the handle).
    pub node: Option<String>,
    pub addresses: Vec<Ipv4Addr>,
    /// Unix seconds when a gc first saw it leaked.
    pub first_seen: u64,
    /// Seconds of grace left (0 once released).
    pub remaining_secs: u64,
}

/// What a gc run did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub grace_secs: u64,
    pub dry_run: bool,
    /// Released by this run (with `dry_run`: would be released).
    pub released: Vec<GcEntry>,
    /// Seen leaked; released by a run once their grace has passed.
    pub pending: Vec<GcEntry>,
    /// Handles of no live workload whose creator still runs: being created, never released.
    pub in_creation: Vec<String>,
}

/// When a handle was first seen leaked.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Sighting {
    handle: String,
    first_seen: u64,
}

/// A leaked handle: its record's revision (0: only blocks name it) and addresses.
struct Leak {
    node: Option<String>,
    rev: i64,
    addresses: BTreeSet<Ipv4Addr>,
}

impl Ipam<'_> {
    /// Releases the addresses of leaked handles whose grace has passed, records the first
    /// sighting of new leaks, and reports both. A handle of a live workload, or of a workload
    /// being created (its creator still runs), is never released.
    pub fn gc(&self, opts: &GcOptions, live: LiveHandles) -> Result<GcReport> {
        let now = unix_now();
        let (records, _) = self.store.list(keys::IPAM)?;
        let mut handles: BTreeMap<String, (Handle, i64)> = BTreeMap::new();
        let mut blocks: Vec<Block> = Vec::new();
        let mut sightings: BTreeMap<String, (Sighting, i64)> = BTreeMap::new();
        for kv in &records {
            // Undecodable records are left alone (`ipam check` reports them).
            if kv.key.starts_with(keys::HANDLES) {
                if let Ok(h) = serde_json::from_slice::<Handle>(&kv.value) {
                    handles.insert(h.id.clone(), (h, kv.mod_revision));
                }
            } else if kv.key.starts_with(keys::BLOCKS) {
                if let Ok(b) = serde_json::from_slice::<Block>(&kv.value) {
                    blocks.push(b);
                }
            } else if kv.key.starts_with(keys::LEAKS) {
                if let Ok(s) = serde_json::from_slice::<Sighting>(&kv.value) {
                    sightings.insert(s.handle.clone(), (s, kv.mod_revision));
                }
            }
        }
        // Creators are looked at before liveness is read: a creator that has finished by then
        // wrote its workload first, so the workload is seen live.
        let creating: BTreeSet<String> = handles
            .values()
            .filter(|(h, _)| in_creation(h.creator.as_ref(), h.created, now))
            .map(|(h, _)| h.id.clone())
            .collect();
        let live = live().map_err(Error::Liveness)?;

        let mut leaks: BTreeMap<String, Leak> = BTreeMap::new();
        for (id, (h, rev)) in &handles {
            if !live.contains(id) && !creating.contains(id) {
                leaks.insert(
                    id.clone(),
                    Leak {
                        node: Some(h.node.clone()),
                        rev: *rev,
                        addresses: h.addresses.iter().copied().collect(),
                    },
                );
            }
        }
        for b in &blocks {
            for (addr, holder) in b.addresses() {
                if live.contains(holder) || creating.contains(holder) {
                    continue;
                }
                if let Some(leak) = leaks.get_mut(holder) {
                    leak.addresses.insert(addr);
                } else if !handles.contains_key(holder) {
                    leaks.insert(
                        holder.to_string(),
                        Leak {
                            node: None,
                            rev: 0,
                            addresses: BTreeSet::from([addr]),
                        },
                    );
                }
            }
        }

        let mut report = GcReport {
            grace_secs: opts.grace.as_secs(),
            dry_run: opts.dry_run,
            in_creation: creating
                .iter()
                .filter(|h| !live.contains(*h))
                .cloned()
                .collect(),
            ..Default::default()
        };
        for (id, leak) in leaks.iter() {
            let first_seen = match sightings.get(id) {
                Some((s, _)) => s.first_seen,
                None if opts.dry_run => now,
                None => self.record_sighting(id, now)?,
            };
            let due = first_seen.saturating_add(opts.grace.as_secs());
            let mut entry = GcEntry {
                handle: id.clone(),
                node: leak.node.clone(),
                addresses: leak.addresses.iter().copied().collect(),
                first_seen,
                remaining_secs: due.saturating_sub(now),
            };
            if now < due {
                report.pending.push(entry);
                continue;
            }
            if opts.dry_run || self.release_leaked(id, leak.rev)? {
                entry.remaining_secs = 0;
                report.released.push(entry);
            }
        }
        if !opts.dry_run {
            // Sightings of handles that are live again or gone.
            for (id, (_, rev)) in sightings.iter().filter(|(id, _)| !leaks.contains_key(*id)) {
                let key = keys::leak(id);
                self.store.txn(
                    &[Compare::ModRevision(key.clone(), *rev)],
                    &[Op::Delete(key)],
                )?;
            }
        }
        Ok(report)
    }

    /// Records that `handle` was first seen leaked at `now`, unless another run did first;
    /// returns the recorded time.
    fn record_sighting(&self, handle: &str, now: u64) -> Result<u64> {
        let key = keys::leak(handle);
        let sighting = Sighting {
            handle: handle.to_string(),
            first_seen: now,
        };
        let resp = self.store.txn(
            &[Compare::ModRevision(key.clone(), 0)],
            &[Op::Put(key.clone(), encode(&key, &sighting)?)],
        )?;
        if resp.succeeded {
            return Ok(now);
        }
        Ok(get_json::<Sighting>(self.store, &key)?.map_or(now, |(s, _)| s.first_seen))
    }

    /// Frees every address of `handle` and deletes its record and sighting, provided the
    /// record is still at revision `rev` (0: absent). Returns false, releasing nothing, when
    /// the handle changed since it was judged leaked (the next run judges it again).
    fn release_leaked(&self, handle: &str, rev: i64) -> Result<bool> {
        let hkey = keys::handle(handle);
        let mut retry = Retry::new(format!("releasing leaked {handle}"));
        loop {
            let current = get_json::<Handle>(self.store, &hkey)?.map_or(0, |(_, r)| r);
            if current != rev {
                return Ok(false);
            }
            let mut compares = vec![Compare::ModRevision(hkey.clone(), rev)];
            let mut ops = vec![Op::Delete(hkey.clone()), Op::Delete(keys::leak(handle))];
            for (key, mut block, brev) in self.blocks_rev()? {
                if free_handle(&mut block, handle).is_empty() {
                    continue;
                }
                compares.push(Compare::ModRevision(key.clone(), brev));
                ops.push(Op::Put(key.clone(), encode(&key, &block)?));
            }
            if self.store.txn(&compares, &ops)?.succeeded {
                return Ok(true);
            }
            retry.again()?;
        }
    }
}
