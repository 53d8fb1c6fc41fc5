//! The table kept between passes, so that a change redoes only what depends on it.
//!
//! The table is a *base* (everything but the services' own pieces: profiles, policies,
//! dispatch, the shared service maps and sets without their elements) and one
//! [`Piece`] per service (its chains, affinity sets, and elements of the shared maps and
//! sets), which depends only on the service and its endpoints. A pass after a change:
//!
//! - recomputes the base only when something else than services changed (its sets and chains
//!   are then compared whole, as before: policies and profiles are not incremental);
//! - redoes the pieces of the services that changed, and of the services that select a
//!   workload that changed (before or after the change), by label;
//! - gives the transaction as two small tables, [`Step::old`] and [`Step::new`]: the bases
//!   with only the redone services' pieces. Their difference is exactly the change, since
//!   every other piece is the same on both sides.
//!
//! A fresh load of the state (start, periodic resync, any doubt) computes everything again.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use weft_model::policy::Service;
use weft_model::selector::Selector;
use weft_nft::conntrack::Filter;
use weft_nft::{Set, Table, Value};

use super::services::{self, Piece};
use super::{RulesInput, UdpBackends};
use crate::Changes;

type Key = (String, String);

fn key_of(s: &Service) -> Key {
    (s.metadata.namespace.clone(), s.metadata.name.clone())
}

/// One service as programmed (its piece is made again when needed: it follows from these).
struct Entry {
    service: Service,
    endpoints: Vec<Ipv4Addr>,
}

impl Entry {
    fn piece(&self) -> Piece {
        services::piece(&self.service, &self.endpoints)
    }
}

/// What is programmed: the base and every service's piece.
pub struct Programmed {
    base: Table,
    /// The selector of each selector set of the base (policies), by set name.
    selectors: Vec<(String, Selector)>,
    services: HashMap<Key, Entry>,
    /// Label `key=value` → the services whose selector requires it.
    by_label: HashMap<(String, String), BTreeSet<Key>>,
}

/// How a step changes the base.
enum BaseChange {
    None,
    /// Addresses leave and join these sets of the base.
    Sets(Vec<SetEdit>),
    /// The whole base is new (with the selectors of its sets).
    Whole(Table, Vec<(String, Selector)>),
}

/// Addresses that leave and join one of the base's sets.
struct SetEdit {
    name: String,
    removed: Vec<Ipv4Addr>,
    added: Vec<Ipv4Addr>,
}

/// Where `ip` is (or would go) in a sorted set of addresses.
fn find_addr(s: &Set, ip: Ipv4Addr) -> Result<usize, usize> {
    s.elements.binary_search_by(|v| match v {
        Value::Ipv4(a) => a.cmp(&ip),
        _ => std::cmp::Ordering::Less,
    })
}

/// One incremental transaction: turn [`Step::old`] into [`Step::new`] (see the module's doc),
/// then [`Programmed::commit`] it.
pub struct Step {
    pub old: Table,
    pub new: Table,
    /// The UDP conntrack entries the change leaves stale.
    pub stale_udp: Vec<Filter>,
    base: BaseChange,
    /// The redone services: their new entry, or None when gone.
    redone: Vec<(Key, Option<Entry>)>,
}

/// A table holding only `t`'s shared service maps and sets (empty in a base) and `sets`.
fn shared(t: &Table, sets: &[&Set]) -> Table {
    let names = services::shared_names();
    let shared = |n: &String| names.contains(n);
    let mut out = Table::new(&t.name);
    out.family = t.family;
    out.sets = t
        .sets
        .iter()
        .filter(|s| shared(&s.name))
        .chain(sets.iter().copied())
        .cloned()
        .collect();
    out.maps = t.maps.iter().filter(|m| shared(&m.name)).cloned().collect();
    out
}

/// `base` with the pieces of `entries` added.
fn with_pieces<'a>(mut t: Table, entries: impl Iterator<Item = &'a Entry>) -> Table {
    for e in entries {
        services::add(&mut t, e.piece());
    }
    t
}

fn index(by_label: &mut HashMap<(String, String), BTreeSet<Key>>, s: &Service, add: bool) {
    for (k, v) in &s.spec.selector {
        let pair = (k.clone(), v.clone());
        if add {
            by_label.entry(pair).or_default().insert(key_of(s));
        } else if let Some(keys) = by_label.get_mut(&pair) {
            keys.remove(&key_of(s));
            if keys.is_empty() {
                by_label.remove(&pair);
            }
        }
    }
}

impl Programmed {
    /// Everything computed afresh: the state, and the whole table to program.
    pub fn full(input: &RulesInput) -> (Programmed, Table) {
        let (base, selectors) = super::base_parts(input);
        let endpoints = services::endpoints_of(input.services, input.workloads);
        let mut table = base.clone();
        let mut entries = HashMap::with_capacity(input.services.len());
        let mut by_label = HashMap::new();
        for (s, eps) in input.services.iter().zip(endpoints) {
            services::add(&mut table, services::piece(s, &eps));
            index(&mut by_label, s, true);
            entries.insert(
                key_of(s),
                Entry {
                    service: s.clone(),
                    endpoints: eps,
                },
            );
        }
        (
            Programmed {
                base,
                selectors,
                services: entries,
                by_label,
            },
            table,
        )
    }

    /// The UDP service ports and their endpoints as programmed.
    pub fn udp_backends(&self) -> UdpBackends {
        UdpBackends::from_endpoints(
            self.services
                .values()
                .filter(|e| maybe_udp(&e.service))
                .map(|e| (&e.service, e.endpoints.as_slice())),
        )
    }

    /// The transaction for `changes` (what the state went through since this was programmed,
    /// `input` being the state after them). None when only a full pass will do.
    pub fn step(&self, input: &RulesInput, changes: &Changes) -> Option<Step> {
        // A first service, or the last one gone, adds or removes the base's NAT hooks.
        let hooked = !self.services.is_empty();
        if changes.all || hooked != services::services_hooked(input) {
            return None;
        }
        // Services to redo: the changed ones, and those requiring a label of a changed
        // workload (before or after; a changed selector is a changed service).
        let mut todo: BTreeSet<Key> = changes.services.iter().cloned().collect();
        for w in changes
            .workloads
            .iter()
            .flat_map(|(b, a)| b.iter().chain(a))
        {
            for (k, v) in &w.labels {
                if let Some(keys) = self.by_label.get(&(k.clone(), v.clone())) {
                    todo.extend(keys.iter().cloned());
                }
            }
        }
        let base = if changes.other {
            let (b, sel) = super::base_parts(input);
            BaseChange::Whole(b, sel)
        } else if changes.workloads.is_empty() {
            BaseChange::None
        } else {
            match self.remote_sets(input, changes) {
                Some(sets) => BaseChange::Sets(sets),
                None => {
                    let (b, sel) = super::base_parts(input);
                    BaseChange::Whole(b, sel)
                }
            }
        };
        let mut redone = vec![];
        let (mut old_udp, mut new_udp) = (vec![], vec![]);
        for k in todo {
            let now = find(input.services, &k);
            let old = self.services.get(&k);
            let entry = now.map(|s| {
                let endpoints = s.endpoints(input.workloads);
                Entry {
                    service: s.clone(),
                    endpoints,
                }
            });
            let same = match (old, &entry) {
                (Some(o), Some(n)) => o.service == n.service && o.endpoints == n.endpoints,
                (None, None) => true,
                _ => false,
            };
            if same {
                continue;
            }
            if let Some(o) = old {
                old_udp.push((&o.service, o.endpoints.as_slice()));
            }
            redone.push((k, entry));
        }
        for (_, e) in &redone {
            if let Some(e) = e {
                new_udp.push((&e.service, e.endpoints.as_slice()));
            }
        }
        let stale_udp =
            UdpBackends::from_endpoints(old_udp).stale(&UdpBackends::from_endpoints(new_udp));
        let old_pieces = redone.iter().filter_map(|(k, _)| self.services.get(k));
        let new_pieces = redone.iter().filter_map(|(_, e)| e.as_ref());
        let (old, new) = match &base {
            BaseChange::None => (
                with_pieces(shared(&self.base, &[]), old_pieces),
                with_pieces(shared(&self.base, &[]), new_pieces),
            ),
            BaseChange::Sets(edits) => {
                // Each side holds only the addresses that leave (old) or join (new): their
                // difference is the change.
                let side = |new: bool| -> Vec<Set> {
                    edits
                        .iter()
                        .filter_map(|e| {
                            let s = self.base.set(&e.name)?;
                            let ips = if new { &e.added } else { &e.removed };
                            Some(Set {
                                name: s.name.clone(),
                                key: s.key.clone(),
                                flags: s.flags,
                                elements: ips.iter().map(|a| Value::Ipv4(*a)).collect(),
                            })
                        })
                        .collect()
                };
                let (before, after) = (side(false), side(true));
                (
                    with_pieces(
                        shared(&self.base, &before.iter().collect::<Vec<_>>()),
                        old_pieces,
                    ),
                    with_pieces(
                        shared(&self.base, &after.iter().collect::<Vec<_>>()),
                        new_pieces,
                    ),
                )
            }
            BaseChange::Whole(b, _) => (
                with_pieces(self.base.clone(), old_pieces),
                with_pieces(b.clone(), new_pieces),
            ),
        };
        Some(Step {
            old,
            new,
            stale_udp,
            base,
            redone,
        })
    }

    /// The base's sets of workload addresses after `changes`, when every changed workload is
    /// on another node (then only those sets depend on them: the networks' members, the
    /// sources of natOutgoing, the policies' selector sets); None otherwise.
    fn remote_sets(&self, input: &RulesInput, changes: &Changes) -> Option<Vec<SetEdit>> {
        let remote = |w: &Option<weft_model::Workload>| {
            w.as_ref()
                .is_none_or(|w| w.node != input.node && w.ip.is_some())
        };
        if !changes
            .workloads
            .iter()
            .all(|(b, a)| remote(b) && remote(a))
        {
            return None;
        }
        let nat: BTreeSet<&str> = input
            .networks
            .iter()
            .filter(|n| n.nat_outgoing && n.driver == weft_model::Driver::Routed)
            .map(|n| n.name.as_str())
            .collect();
        // Each set a workload is in, as the base computes it.
        let sets_of = |w: &weft_model::Workload| -> Vec<&str> {
            let mut names = vec![];
            if let Some(s) = self.base.set(&super::network_set(&w.network)) {
                if input.networks.iter().any(|n| n.name == w.network) {
                    names.push(s.name.as_str());
                }
            }
            if nat.contains(w.network.as_str()) {
                names.push("nat-outgoing");
            }
            if !self.selectors.is_empty() {
                let labels = super::labels_of(w);
                for (name, sel) in &self.selectors {
                    if sel.matches(&labels) {
                        names.push(name.as_str());
                    }
                }
            }
            names
        };
        let mut out: Vec<SetEdit> = vec![];
        let mut edit = |name: &str, ip: Ipv4Addr, add: bool| -> Option<()> {
            let set = self.base.set(name)?;
            if set.flags.interval {
                return None;
            }
            let e = match out.iter().position(|e| e.name == name) {
                Some(i) => &mut out[i],
                None => {
                    out.push(SetEdit {
                        name: name.to_string(),
                        removed: vec![],
                        added: vec![],
                    });
                    out.last_mut().expect("pushed")
                }
            };
            let held = find_addr(set, ip).is_ok();
            let (now, other) = if add {
                (&mut e.added, &mut e.removed)
            } else {
                (&mut e.removed, &mut e.added)
            };
            if let Some(i) = other.iter().position(|a| *a == ip) {
                // Left and joined again (or the reverse): no change.
                other.remove(i);
            } else if held != add && !now.contains(&ip) {
                now.push(ip);
            }
            Some(())
        };
        for (before, after) in &changes.workloads {
            if let Some(w) = before {
                for name in sets_of(w) {
                    // Another workload may hold the same address (then it stays).
                    let kept = input
                        .workloads
                        .iter()
                        .any(|o| o.ip == w.ip && sets_of(o).contains(&name));
                    if !kept {
                        edit(name, w.ip?, false)?;
                    }
                }
            }
            if let Some(w) = after {
                for name in sets_of(w) {
                    edit(name, w.ip?, true)?;
                }
            }
        }
        Some(out)
    }

    /// Takes in a step the kernel accepted.
    pub fn commit(&mut self, step: Step) {
        match step.base {
            BaseChange::None => {}
            BaseChange::Sets(edits) => {
                for e in edits {
                    let Some(s) = self.base.sets.iter_mut().find(|o| o.name == e.name) else {
                        continue;
                    };
                    for ip in e.removed {
                        if let Ok(i) = find_addr(s, ip) {
                            s.elements.remove(i);
                        }
                    }
                    for ip in e.added {
                        if let Err(i) = find_addr(s, ip) {
                            s.elements.insert(i, Value::Ipv4(ip));
                        }
                    }
                }
            }
            BaseChange::Whole(b, sel) => {
                self.base = b;
                self.selectors = sel;
            }
        }
        for (k, e) in step.redone {
            if let Some(old) = self.services.remove(&k) {
                index(&mut self.by_label, &old.service, false);
            }
            if let Some(e) = e {
                index(&mut self.by_label, &e.service, true);
                self.services.insert(k, e);
            }
        }
    }

    /// The whole table as programmed (the base and every piece, in service order).
    pub fn table(&self) -> Table {
        let mut keys: Vec<&Key> = self.services.keys().collect();
        keys.sort();
        with_pieces(
            self.base.clone(),
            keys.into_iter().map(|k| &self.services[k]),
        )
    }
}

/// Whether `s` may have a UDP port (without resolving its ports, which costs).
fn maybe_udp(s: &Service) -> bool {
    s.spec
        .ports
        .iter()
        .any(|p| p.protocol() == weft_nft::PROTO_UDP)
}

/// The service `k` among `services` (in key order).
fn find<'a>(services: &'a [Service], k: &Key) -> Option<&'a Service> {
    let want = weft_model::keys::service(&k.0, &k.1);
    services
        .binary_search_by(|s| {
            weft_model::keys::service(&s.metadata.namespace, &s.metadata.name).cmp(&want)
        })
        .ok()
        .map(|i| &services[i])
        .or_else(|| services.iter().find(|s| key_of(s) == *k))
}

#[cfg(test)]
#[path = "incremental_tests.rs"]
mod tests;
