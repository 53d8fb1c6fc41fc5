//! weft-store: the cluster's desired state as a revisioned key-value store (like etcd v3).
//!
//! Callers use only the [`Store`] trait (and the typed JSON helpers built on it), so backends can
//! be swapped: [`SqliteStore`] (one file, safe for many processes at once), [`EtcdStore`] (an
//! etcd v3 cluster, for many hosts) and [`MemStore`] (in-process, for tests of callers). Keys are strings such as `/weft/workloads/web1`; values
//! are bytes (JSON by convention). Every successful transaction that changes something bumps the
//! store revision by one; all of its changes share that revision.
//!
//! Prefixes are plain string prefixes, like etcd: `/a` matches `/ab` too, so callers end the
//! prefixes of directories with `/`.

use std::sync::Arc;
use std::time::Duration;

pub mod etcd;
mod json;
mod mem;
pub mod retry;
mod sqlite;

pub use etcd::EtcdStore;
pub use json::{create_json, delete, get_json, list_json, put_json, update_json};
pub use mem::MemStore;
pub use sqlite::SqliteStore;

/// A store revision: 0 before the first write, then +1 per changing transaction.
pub type Revision = i64;

/// A key with its value and the revisions that describe its history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the transaction that created the key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the transaction that last changed the key.
    pub mod_revision: Revision,
    /// Number of puts since the key was created (1 after creation).
    pub version: i64,
}

/// A condition of a transaction; all of them must hold for its operations to run.
#[derive(Clone, Debug)]
pub enum Compare {
    /// The key's mod revision equals this one; 0 means "the key is absent".
    ModRevision(String, Revision),
    /// The key's version equals this one; 0 means "the key is absent".
    Version(String, i64),
    /// The key exists and holds exactly this value.
    Value(String, Vec<u8>),
}

impl Compare {
    /// The key this condition looks at.
    pub fn key(&self) -> &str {
        match self {
            Compare::ModRevision(k, _) | Compare::Version(k, _) | Compare::Value(k, _) => k,
        }
    }

    /// Whether the condition holds for the key's current state (`None` = absent).
    pub fn holds(&self, current: Option<&KeyValue>) -> bool {
        match self {
            Compare::ModRevision(_, rev) => current.map_or(0, |kv| kv.mod_revision) == *rev,
            Compare::Version(_, ver) => current.map_or(0, |kv| kv.version) == *ver,
            Compare::Value(_, value) => current.is_some_and(|kv| &kv.value == value),
        }
    }
}

/// An operation of a transaction.
#[derive(Clone, Debug)]
pub enum Op {
    /// Create or replace a key.
    Put(String, Vec<u8>),
    /// Delete a key (nothing happens if it is absent).
    Delete(String),
    /// Delete every key that starts with this string.
    DeletePrefix(String),
}

/// The outcome of [`Store::txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether all compares held (and so the operations ran).
    pub succeeded: bool,
    /// The store revision after the transaction (the new one if it changed something).
    pub revision: Revision,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a [`Watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// The key after the change. For a delete: empty value, `mod_revision` = the deletion's
    /// revision, `create_revision` and `version` 0.
    pub kv: KeyValue,
}

/// A stream of changes under a prefix, in revision order.
pub trait Watch: Send {
    /// The next changes (all those committed since the last call), waiting up to `timeout` for
    /// at least one; an empty vector means the timeout passed. Fails with
    /// [`Error::Compacted`] if the history it needs was compacted away.
    fn next(&mut self, timeout: Duration) -> Result<Vec<Event>>;
}

/// A revisioned key-value store with transactions and watches.
pub trait Store: Send + Sync {
    /// The key's current value, if any.
    fn get(&self, key: &str) -> Result<Option<KeyValue>>;
    /// All keys starting with `prefix`, sorted by key, and the store revision they were read at.
    fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)>;
    /// Runs `ops` atomically if all `compares` hold.
    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnResponse>;
    /// The current store revision.
    fn revision(&self) -> Result<Revision>;
    /// Changes under `prefix` with a revision greater than `from`, in order.
    fn watch(&self, prefix: &str, from: Revision) -> Result<Box<dyn Watch>>;
    /// Drops the change history older than `keep` (watches from before `keep - 1` then fail).
    /// A `keep` beyond the current revision is taken as the current revision.
    fn compact(&self, keep: Revision) -> Result<()>;
}

/// What can go wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key (or resource) that was required is absent.
    #[error("not found: {0}")]
    NotFound(String),
    /// A write lost against another writer or met existing data.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The history a watch needs was compacted away.
    #[error(
        "store history from revision {requested} has been compacted (oldest kept: {oldest}); \
         list again and watch from the revision of that list"
    )]
    Compacted {
        requested: Revision,
        oldest: Revision,
    },
    /// The backend failed (I/O, database, configuration).
    #[error("store backend: {0}")]
    Backend(String),
    /// A value could not be encoded or decoded.
    #[error("store value: {0}")]
    Codec(String),
}

/// Result with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Opens a store from a URL or path: `sqlite:///abs/path`, `sqlite:rel/path`, a bare path
/// (SQLite), `etcd://HOST:PORT[,HOST:PORT...][?netns=NAME]` (etcd; see [`etcd`]), or `mem:`
/// (a fresh in-memory store).
pub fn open(url_or_path: &str) -> Result<Box<dyn Store>> {
    let s = url_or_path.trim();
    if s.is_empty() {
        return Err(Error::Backend(
            "empty store location: give a path or sqlite:///path".into(),
        ));
    }
    if s == "mem:" || s == "memory:" {
        return Ok(Box::new(MemStore::new()));
    }
    if s.starts_with("etcd:") {
        return Ok(Box::new(EtcdStore::open(s)?));
    }
    if s.starts_with("etcd+") || s.starts_with("http:") || s.starts_with("https:") {
        return Err(Error::Backend(format!(
            "store {s}: write an etcd store as etcd://HOST:PORT[,HOST:PORT...] (plain HTTP, no TLS)"
        )));
    }
    let path = s
        .strip_prefix("sqlite://")
        .or_else(|| s.strip_prefix("sqlite:"))
        .unwrap_or(s);
    if path.is_empty() {
        return Err(Error::Backend(format!(
            "store {s}: no file path after the scheme; write sqlite:///path/to/file.db"
        )));
    }
    Ok(Box::new(SqliteStore::open(path)?))
}

/// The smallest string greater than every string that starts with `prefix`, or `None` when
/// there is none (empty prefix: everything matches). Byte order of UTF-8 equals code point
/// order, so `[prefix, end)` is exactly the set of keys with that prefix.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Whether `key` starts with `prefix` (the rule of [`Store::list`] and [`Store::watch`]).
pub(crate) fn in_prefix(key: &str, prefix: &str) -> bool {
    key.starts_with(prefix)
}

macro_rules! forward_store {
    ($ty:ty) => {
        impl<S: Store + ?Sized> Store for $ty {
            fn get(&self, key: &str) -> Result<Option<KeyValue>> {
                (**self).get(key)
            }
            fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
                (**self).list(prefix)
            }
            fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnResponse> {
                (**self).txn(compares, ops)
            }
            fn revision(&self) -> Result<Revision> {
                (**self).revision()
            }
            fn watch(&self, prefix: &str, from: Revision) -> Result<Box<dyn Watch>> {
                (**self).watch(prefix, from)
            }
            fn compact(&self, keep: Revision) -> Result<()> {
                (**self).compact(keep)
            }
        }
    };
}

forward_store!(Box<S>);
forward_store!(Arc<S>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_bounds() {
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("/a/").as_deref(), Some("/a0"));
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }

    #[test]
    fn open_rejects_bad_locations() {
        assert!(matches!(open("etcd://x"), Err(Error::Backend(_))));
        assert!(matches!(open("http://x:2379"), Err(Error::Backend(_))));
        assert!(matches!(open(""), Err(Error::Backend(_))));
        assert!(matches!(open("sqlite://"), Err(Error::Backend(_))));
        assert!(open("mem:").is_ok());
    }
}
