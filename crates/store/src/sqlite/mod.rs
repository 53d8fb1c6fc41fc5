//! The SQLite backend: one database file shared by any number of processes.
//!
//! WAL journal with `synchronous=NORMAL` (see `connect`), a generous busy timeout,
//! `BEGIN IMMEDIATE` for every write, and retries on `SQLITE_BUSY`/`SQLITE_LOCKED` beyond that
//! timeout. Tables: `kv` (the current state), `meta`
//! (one row: current revision and compaction point) and `events` (the history that watches read).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::mem::delete_event;

mod watch;
use crate::{
    prefix_end, retry, Compare, Error, Event, EventKind, KeyValue, Op, Result, Revision, Store,
    TxnResponse, Watch,
};
use watch::SqliteWatch;

/// How long one statement waits for a lock inside SQLite before returning `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we keep retrying an operation that SQLite reports busy.
const BUSY_GIVE_UP: Duration = Duration::from_secs(120);
/// How often a watch looks for new changes where it cannot be woken by a write.
const WATCH_POLL: Duration = Duration::from_millis(50);
/// How often a watch woken by writes (inotify) looks anyway, in case a wakeup was missed.
const WATCH_FALLBACK: Duration = Duration::from_millis(250);
/// Version of the schema written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL,
    version INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL,
    compacted INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta (id, revision, compacted) VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS events (
    rev INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    key TEXT NOT NULL,
    kind INTEGER NOT NULL,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (rev, idx)
) WITHOUT ROWID;
";

const KIND_PUT: i64 = 0;
const KIND_DELETE: i64 = 1;

/// A [`Store`] in one SQLite file; one connection per instance, guarded by a mutex.
pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed, with its parent directory) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                Error::Backend(format!(
                    "creating directory {} for the store: {e}; check permissions",
                    parent.display()
                ))
            })?;
        }
        let mut conn = connect(&path)?;
        init_schema(&path, &mut conn)?;
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // rusqlite rolls back an unfinished transaction when it is dropped during a panic.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_retry<T>(
        &self,
        what: &str,
        mut f: impl FnMut(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let mut conn = self.conn();
        retry_busy(&self.path, what, || f(&mut conn))
    }
}

fn backend(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("{what} in {}: {e}", path.display()))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Runs `f` until it does not fail with busy/locked, for up to [`BUSY_GIVE_UP`].
fn retry_busy<T>(path: &Path, what: &str, mut f: impl FnMut() -> rusqlite::Result<T>) -> Result<T> {
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if is_busy(&e) && start.elapsed() < BUSY_GIVE_UP => {
                retry::backoff(attempt);
                attempt += 1;
            }
            Err(e) if is_busy(&e) => {
                return Err(backend(
                    path,
                    what,
                    format!(
                        "{e} (still locked after {}s; is a process holding the database?)",
                        BUSY_GIVE_UP.as_secs()
                    ),
                ))
            }
            Err(e) => return Err(backend(path, what, e)),
        }
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| backend(path, "opening the store", e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| backend(path, "setting busy_timeout", e))?;
    let mode: String = retry_busy(path, "enabling WAL", || {
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if mode.eq_ignore_ascii_case("wal") {
            return Ok(mode);
        }
        conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
    })?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(backend(
            path,
            "enabling WAL",
            format!("journal mode stays {mode:?}; put the store on a local filesystem"),
        ));
    }
    // With WAL, `synchronous=NORMAL` syncs the WAL only at checkpoints, not at every commit.
    // Durability: a commit survives a crash of the process (or of every process using the
    // store), and the database stays consistent after a power loss or OS crash, but the last
    // commits before a power loss / OS crash may be lost (rolled back). Per connection.
    conn.execute_batch("PRAGMA synchronous=NORMAL")
        .map_err(|e| backend(path, "setting synchronous=NORMAL", e))?;
    Ok(conn)
}

fn init_schema(path: &Path, conn: &mut Connection) -> Result<()> {
    retry_busy(path, "creating the schema", || {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == SCHEMA_VERSION {
            return Ok(version);
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(SCHEMA)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 0 {
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        }
        tx.commit()?;
        Ok(version.max(SCHEMA_VERSION))
    })
    .and_then(|version| {
        if version > SCHEMA_VERSION {
            Err(backend(
                path,
                "checking the schema",
                format!("schema version {version} is newer than this weft understands ({SCHEMA_VERSION}); upgrade weft"),
            ))
        } else {
            Ok(())
        }
    })
}

fn read_revision(conn: &Connection) -> rusqlite::Result<(Revision, Revision)> {
    conn.query_row(
        "SELECT revision, compacted FROM meta WHERE id = 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

fn read_kv(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    conn.query_row(
        "SELECT value, create_rev, mod_rev, version FROM kv WHERE key = ?1",
        params![key],
        |r| {
            Ok(KeyValue {
                key: key.to_string(),
                value: r.get(0)?,
                create_revision: r.get(1)?,
                mod_revision: r.get(2)?,
                version: r.get(3)?,
            })
        },
    )
    .optional()
}

fn list_kv(conn: &Connection, prefix: &str) -> rusqlite::Result<Vec<KeyValue>> {
    fn row(r: &rusqlite::Row) -> rusqlite::Result<KeyValue> {
        Ok(KeyValue {
            key: r.get(0)?,
            value: r.get(1)?,
            create_revision: r.get(2)?,
            mod_revision: r.get(3)?,
            version: r.get(4)?,
        })
    }
    // Two statements, not one with `(?2 IS NULL OR key < ?2)`: SQLite cannot use an upper
    // bound it does not know is there, and read every key after the prefix to the end of the
    // table (a list of `/weft/nodes/` went through all the services and workloads).
    match prefix_end(prefix) {
        Some(end) => conn
            .prepare_cached(
                "SELECT key, value, create_rev, mod_rev, version FROM kv
                 WHERE key >= ?1 AND key < ?2 ORDER BY key",
            )?
            .query_map(params![prefix, end], row)?
            .collect(),
        None => conn
            .prepare_cached(
                "SELECT key, value, create_rev, mod_rev, version FROM kv
                 WHERE key >= ?1 ORDER BY key",
            )?
            .query_map(params![prefix], row)?
            .collect(),
    }
}

fn insert_event(tx: &Transaction, rev: Revision, idx: i64, ev: &Event) -> rusqlite::Result<()> {
    let kind = match ev.kind {
        EventKind::Put => KIND_PUT,
        EventKind::Delete => KIND_DELETE,
    };
    tx.prepare_cached(
        "INSERT INTO events (rev, idx, key, kind, value, create_rev, version)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        rev,
        idx,
        ev.kv.key,
        kind,
        ev.kv.value,
        ev.kv.create_revision,
        ev.kv.version
    ])?;
    Ok(())
}

fn apply_ops(tx: &Transaction, rev: Revision, ops: &[Op]) -> rusqlite::Result<i64> {
    let mut idx = 0;
    let mut record = |ev: Event| -> rusqlite::Result<()> {
        insert_event(tx, rev, idx, &ev)?;
        idx += 1;
        Ok(())
    };
    for op in ops {
        match op {
            Op::Put(key, value) => {
                let (create_revision, version) = match read_kv(tx, key)? {
                    Some(old) => (old.create_revision, old.version + 1),
                    None => (rev, 1),
                };
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO kv (key, value, create_rev, mod_rev, version)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![key, value, create_revision, rev, version])?;
                record(Event {
                    kind: EventKind::Put,
                    kv: KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                        create_revision,
                        mod_revision: rev,
                        version,
                    },
                })?;
            }
            Op::Delete(key) => {
                if tx.execute("DELETE FROM kv WHERE key = ?1", params![key])? > 0 {
                    record(delete_event(key, rev))?;
                }
            }
            Op::DeletePrefix(prefix) => {
                for kv in list_kv(tx, prefix)? {
                    tx.execute("DELETE FROM kv WHERE key = ?1", params![kv.key])?;
                    record(delete_event(&kv.key, rev))?;
                }
            }
        }
    }
    Ok(idx)
}

impl Store for SqliteStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.with_retry(&format!("reading {key}"), |conn| read_kv(conn, key))
    }

    fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        self.with_retry(&format!("listing {prefix}"), |conn| {
            let tx = conn.transaction()?;
            let (rev, _) = read_revision(&tx)?;
            let kvs = list_kv(&tx, prefix)?;
            tx.commit()?;
            Ok((kvs, rev))
        })
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnResponse> {
        self.with_retry("running a transaction", |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (rev, _) = read_revision(&tx)?;
            for c in compares {
                if !c.holds(read_kv(&tx, c.key())?.as_ref()) {
                    return Ok(TxnResponse {
                        succeeded: false,
                        revision: rev,
                    });
                }
            }
            let new = rev + 1;
            let changed = apply_ops(&tx, new, ops)?;
            if changed == 0 {
                return Ok(TxnResponse {
                    succeeded: true,
                    revision: rev,
                });
            }
            tx.execute("UPDATE meta SET revision = ?1 WHERE id = 1", params![new])?;
            tx.commit()?;
            Ok(TxnResponse {
                succeeded: true,
                revision: new,
            })
        })
    }

    fn revision(&self) -> Result<Revision> {
        self.with_retry("reading the revision", |conn| {
            read_revision(conn).map(|(r, _)| r)
        })
    }

    fn watch(&self, prefix: &str, from: Revision) -> Result<Box<dyn Watch>> {
        let from = from.max(0);
        let (_, compacted) = self.with_retry("starting a watch", |conn| read_revision(conn))?;
        if from + 1 < compacted {
            return Err(Error::Compacted {
                requested: from,
                oldest: compacted,
            });
        }
        let conn = connect(&self.path)?;
        Ok(Box::new(SqliteWatch::new(
            self.path.clone(),
            conn,
            prefix,
            from,
        )))
    }

    fn compact(&self, keep: Revision) -> Result<()> {
        self.with_retry(&format!("compacting to revision {keep}"), |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (rev, compacted) = read_revision(&tx)?;
            let keep = keep.min(rev);
            if keep > compacted {
                tx.execute("DELETE FROM events WHERE rev < ?1", params![keep])?;
                tx.execute("UPDATE meta SET compacted = ?1 WHERE id = 1", params![keep])?;
                tx.commit()?;
            }
            Ok(())
        })
    }
}
