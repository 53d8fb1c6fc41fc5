//! An in-process store with the same semantics as the SQLite backend, for tests of callers.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::{
    in_prefix, prefix_end, Compare, Error, Event, EventKind, KeyValue, Op, Result, Revision, Store,
    TxnResponse, Watch,
};

/// An in-memory [`Store`]; clones share the same data.
#[derive(Clone, Default)]
pub struct MemStore {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    kv: BTreeMap<String, KeyValue>,
    /// Every change, in revision order (events of one revision are adjacent).
    events: Vec<Event>,
    revision: Revision,
    /// Events with a revision below this were dropped.
    compacted: Revision,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is only changed after all checks, so a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemStore {
    /// An empty store at revision 0.
    pub fn new() -> Self {
        Self::default()
    }
}

fn range<'a>(
    kv: &'a BTreeMap<String, KeyValue>,
    prefix: &str,
) -> impl Iterator<Item = &'a KeyValue> + 'a {
    let end = match prefix_end(prefix) {
        Some(e) => Bound::Excluded(e),
        None => Bound::Unbounded,
    };
    kv.range::<String, _>((Bound::Included(prefix.to_string()), end))
        .map(|(_, v)| v)
}

fn compacted_error(state: &State, from: Revision) -> Option<Error> {
    (from + 1 < state.compacted).then_some(Error::Compacted {
        requested: from,
        oldest: state.compacted,
    })
}

impl Store for MemStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.shared.lock().kv.get(key).cloned())
    }

    fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let state = self.shared.lock();
        Ok((range(&state.kv, prefix).cloned().collect(), state.revision))
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnResponse> {
        let mut state = self.shared.lock();
        if !compares.iter().all(|c| c.holds(state.kv.get(c.key()))) {
            return Ok(TxnResponse {
                succeeded: false,
                revision: state.revision,
            });
        }
        let rev = state.revision + 1;
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put(key, value) => {
                    let (create_revision, version) = match state.kv.get(key) {
                        Some(old) => (old.create_revision, old.version + 1),
                        None => (rev, 1),
                    };
                    let kv = KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision,
                        mod_revision: rev,
                        version,
                    };
                    state.kv.insert(key.clone(), kv.clone());
                    events.push(Event {
                        kind: EventKind::Put,
                        kv,
                    });
                }
                Op::Delete(key) => {
                    if state.kv.remove(key).is_some() {
                        events.push(delete_event(key, rev));
                    }
                }
                Op::DeletePrefix(prefix) => {
                    let keys: Vec<String> =
                        range(&state.kv, prefix).map(|kv| kv.key.clone()).collect();
                    for key in keys {
                        state.kv.remove(&key);
                        events.push(delete_event(&key, rev));
                    }
                }
            }
        }
        if !events.is_empty() {
            state.revision = rev;
            state.events.extend(events);
            self.shared.changed.notify_all();
        }
        Ok(TxnResponse {
            succeeded: true,
            revision: state.revision,
        })
    }

    fn revision(&self) -> Result<Revision> {
        Ok(self.shared.lock().revision)
    }

    fn watch(&self, prefix: &str, from: Revision) -> Result<Box<dyn Watch>> {
        let from = from.max(0);
        if let Some(e) = compacted_error(&self.shared.lock(), from) {
            return Err(e);
        }
        Ok(Box::new(MemWatch {
            shared: self.shared.clone(),
            prefix: prefix.to_string(),
            last: from,
        }))
    }

    fn compact(&self, keep: Revision) -> Result<()> {
        let mut state = self.shared.lock();
        let keep = keep.min(state.revision);
        if keep > state.compacted {
            state.compacted = keep;
            state.events.retain(|e| e.kv.mod_revision >= keep);
        }
        Ok(())
    }
}

pub(crate) fn delete_event(key: &str, rev: Revision) -> Event {
    Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: key.to_string(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
        },
    }
}

struct MemWatch {
    shared: Arc<Shared>,
    prefix: String,
    last: Revision,
}

impl Watch for MemWatch {
    fn next(&mut self, timeout: Duration) -> Result<Vec<Event>> {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if let Some(e) = compacted_error(&state, self.last) {
                return Err(e);
            }
            let start = state
                .events
                .partition_point(|e| e.kv.mod_revision <= self.last);
            let found: Vec<Event> = state.events[start..]
                .iter()
                .filter(|e| in_prefix(&e.kv.key, &self.prefix))
                .cloned()
                .collect();
            if let Some(last) = state.events.last() {
                self.last = self.last.max(last.kv.mod_revision);
            }
            if !found.is_empty() {
                return Ok(found);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}
