//! What selectors stand for, kept from one pass to the next while the workloads stay the same.
//!
//! A pass evaluates every selector of the policies in force against every workload (the
//! members of its address set) and every policy's selector against the node's own endpoints
//! (which policies govern them). With thousands of each that is most of a pass's work, and a
//! policy edit changes none of it but for the edited policy's own selectors. The memo keeps
//! those results, valid for exactly the workloads (address and labels, in order) they were
//! computed from: any difference there starts it afresh, so a result is never stale.
//!
//! There is one memo per process (an agent computes one node's table over and over). A pass
//! that finds it busy (tests computing several tables at once) works with a fresh one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard, TryLockError};

use weft_model::selector::Selector;
use weft_model::Workload;

use super::labels_of;

static MEMO: Mutex<Option<Memo>> = Mutex::new(None);

/// The memo of one set of workloads.
#[derive(Default)]
pub(crate) struct Memo {
    /// What the results depend on: each workload's address and own labels, in order.
    key: Vec<(Option<Ipv4Addr>, BTreeMap<String, String>)>,
    /// Each workload's labels as selectors see them (see [`labels_of`]), made on first use.
    labels: Vec<BTreeMap<String, String>>,
    /// Canonical selector → the addresses of every workload it selects.
    members: HashMap<String, Vec<Ipv4Addr>>,
    /// Canonical selector → which workloads (by index) are known to match, and known not to.
    local: HashMap<String, Known>,
    /// Selectors used by the current pass (the others are dropped at its end).
    used: HashSet<String>,
}

#[derive(Default)]
struct Known {
    yes: Vec<u64>,
    no: Vec<u64>,
}

impl Known {
    fn get(&self, i: usize) -> Option<bool> {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        if self.yes.get(w).is_some_and(|x| x & b != 0) {
            Some(true)
        } else if self.no.get(w).is_some_and(|x| x & b != 0) {
            Some(false)
        } else {
            None
        }
    }

    fn set(&mut self, i: usize, v: bool) {
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let bits = if v { &mut self.yes } else { &mut self.no };
        if bits.len() <= w {
            bits.resize(w + 1, 0);
        }
        bits[w] |= b;
    }
}

impl Memo {
    /// Makes the memo valid for `workloads`, forgetting everything if they differ.
    fn validate(&mut self, workloads: &[Workload]) {
        let same = self.key.len() == workloads.len()
            && self
                .key
                .iter()
                .zip(workloads)
                .all(|((ip, labels), w)| *ip == w.ip && *labels == w.labels);
        if !same {
            *self = Memo {
                key: workloads.iter().map(|w| (w.ip, w.labels.clone())).collect(),
                ..Memo::default()
            };
        }
        self.used.clear();
    }

    fn labels(&mut self, workloads: &[Workload]) -> &[BTreeMap<String, String>] {
        if self.labels.len() != workloads.len() {
            self.labels = workloads.iter().map(labels_of).collect();
        }
        &self.labels
    }

    /// The addresses of every workload `sel` selects; `canonical` is `sel.to_string()`.
    pub fn members(
        &mut self,
        workloads: &[Workload],
        sel: &Selector,
        canonical: &str,
    ) -> &[Ipv4Addr] {
        self.used.insert(canonical.to_string());
        if !self.members.contains_key(canonical) {
            let found: Vec<Ipv4Addr> = workloads
                .iter()
                .zip(self.labels(workloads))
                .filter(|(_, l)| sel.matches(l))
                .filter_map(|(w, _)| w.ip)
                .collect();
            self.members.insert(canonical.to_string(), found);
        }
        &self.members[canonical]
    }

    /// Whether `sel` selects each of the workloads numbered `idx`; `canonical` is
    /// `sel.to_string()`.
    pub fn selects(
        &mut self,
        workloads: &[Workload],
        sel: &Selector,
        canonical: &str,
        idx: &[usize],
    ) -> Vec<bool> {
        self.used.insert(canonical.to_string());
        if !self.local.contains_key(canonical) {
            self.local.insert(canonical.to_string(), Known::default());
        }
        let known = self.local.get_mut(canonical).expect("inserted above");
        if idx.iter().any(|&i| known.get(i).is_none()) && self.labels.len() != workloads.len() {
            self.labels = workloads.iter().map(labels_of).collect();
        }
        idx.iter()
            .map(|&i| {
                known.get(i).unwrap_or_else(|| {
                    let v = sel.matches(&self.labels[i]);
                    known.set(i, v);
                    v
                })
            })
            .collect()
    }

    /// Drops what the pass did not use, so the memo does not grow with every edit.
    fn prune(&mut self) {
        let used = std::mem::take(&mut self.used);
        self.members.retain(|k, _| used.contains(k));
        self.local.retain(|k, _| used.contains(k));
    }
}

/// The process's memo, or a fresh one when another pass holds it.
pub(crate) enum MemoRef {
    Shared(MutexGuard<'static, Option<Memo>>),
    Own(Box<Memo>),
}

impl MemoRef {
    /// A memo valid for `workloads`.
    pub fn for_workloads(workloads: &[Workload]) -> MemoRef {
        let mut m = match MEMO.try_lock() {
            Ok(g) => MemoRef::Shared(g),
            Err(TryLockError::Poisoned(p)) => {
                let mut g = p.into_inner();
                *g = None;
                MemoRef::Shared(g)
            }
            Err(TryLockError::WouldBlock) => MemoRef::Own(Box::default()),
        };
        m.get().validate(workloads);
        m
    }

    pub fn get(&mut self) -> &mut Memo {
        match self {
            MemoRef::Shared(g) => g.get_or_insert_with(Memo::default),
            MemoRef::Own(m) => m,
        }
    }
}

impl Drop for MemoRef {
    fn drop(&mut self) {
        self.get().prune();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl(name: &str, ip: &str, app: &str) -> Workload {
        Workload {
            name: name.into(),
            id: name.into(),
            node: "n1".into(),
            network: "default".into(),
            ip: Some(ip.parse().unwrap()),
            host_iface: String::new(),
            labels: [("app".to_string(), app.to_string())].into(),
            image: "toolbox".into(),
            command: vec![],
            net_of: None,
            created: 0,
        }
    }

    fn sel(s: &str) -> Selector {
        s.parse().unwrap()
    }

    #[test]
    fn results_follow_the_workloads_not_the_memo() {
        let s = sel("app == \"web\"");
        let c = s.to_string();
        let mut ws = vec![wl("a", "10.0.0.1", "web"), wl("b", "10.0.0.2", "db")];
        let mut m = Memo::default();
        m.validate(&ws);
        assert_eq!(
            m.members(&ws, &s, &c),
            ["10.0.0.1".parse::<Ipv4Addr>().unwrap()]
        );
        assert_eq!(m.selects(&ws, &s, &c, &[0, 1]), [true, false]);
        // Relabel b: the same selector now selects both, nothing of the old answer survives.
        ws[1].labels.insert("app".into(), "web".into());
        m.validate(&ws);
        assert_eq!(m.members(&ws, &s, &c).len(), 2);
        assert_eq!(m.selects(&ws, &s, &c, &[1, 0]), [true, true]);
        // A new address for a: the set follows it.
        ws[0].ip = Some("10.0.0.9".parse().unwrap());
        m.validate(&ws);
        assert!(m
            .members(&ws, &s, &c)
            .contains(&"10.0.0.9".parse().unwrap()));
    }

    #[test]
    fn unused_selectors_are_dropped_after_a_pass() {
        let ws = vec![wl("a", "10.0.0.1", "web")];
        let (s1, s2) = (sel("app == \"web\""), sel("has(app)"));
        let mut m = Memo::default();
        m.validate(&ws);
        m.members(&ws, &s1, &s1.to_string());
        m.selects(&ws, &s2, &s2.to_string(), &[0]);
        m.prune();
        assert_eq!((m.members.len(), m.local.len()), (1, 1));
        m.validate(&ws);
        m.members(&ws, &s1, &s1.to_string());
        m.prune();
        assert_eq!((m.members.len(), m.local.len()), (1, 0));
    }
}
