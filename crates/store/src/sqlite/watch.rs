//! Watches on the SQLite backend.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use super::{read_revision, retry_busy, KIND_DELETE, WATCH_POLL};
use crate::{prefix_end, Error, Event, EventKind, KeyValue, Result, Revision, Watch};

/// A watch polling the `events` table on its own connection; `PRAGMA data_version` tells it
/// cheaply whether another connection committed anything since the last look.
pub(super) struct SqliteWatch {
    path: PathBuf,
    conn: Connection,
    prefix: String,
    end: Option<String>,
    last: Revision,
    data_version: Option<i64>,
}

enum Poll {
    Events(Vec<Event>),
    Compacted(Revision),
}

impl SqliteWatch {
    pub(super) fn new(path: PathBuf, conn: Connection, prefix: &str, from: Revision) -> Self {
        Self {
            path,
            conn,
            prefix: prefix.to_string(),
            end: prefix_end(prefix),
            last: from,
            data_version: None,
        }
    }

    fn poll(&mut self) -> rusqlite::Result<Poll> {
        let tx = self.conn.transaction()?;
        let (_, compacted) = read_revision(&tx)?;
        if self.last + 1 < compacted {
            return Ok(Poll::Compacted(compacted));
        }
        let mut stmt = tx.prepare_cached(
            "SELECT rev, key, kind, value, create_rev, version FROM events
             WHERE rev > ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3) ORDER BY rev, idx",
        )?;
        let rows = stmt.query_map(params![self.last, self.prefix, self.end], |r| {
            let kind: i64 = r.get(2)?;
            Ok(Event {
                kind: if kind == KIND_DELETE {
                    EventKind::Delete
                } else {
                    EventKind::Put
                },
                kv: KeyValue {
                    mod_revision: r.get(0)?,
                    key: r.get(1)?,
                    value: r.get(3)?,
                    create_revision: r.get(4)?,
                    version: r.get(5)?,
                },
            })
        })?;
        let events = rows.collect::<rusqlite::Result<Vec<Event>>>()?;
        drop(stmt);
        tx.commit()?;
        Ok(Poll::Events(events))
    }
}

impl Watch for SqliteWatch {
    fn next(&mut self, timeout: Duration) -> Result<Vec<Event>> {
        let deadline = Instant::now() + timeout;
        loop {
            let path = self.path.clone();
            let dv: i64 = retry_busy(&path, "watching", || {
                self.conn.query_row("PRAGMA data_version", [], |r| r.get(0))
            })?;
            if self.data_version != Some(dv) {
                self.data_version = Some(dv);
                match retry_busy(&path, &format!("watching {}", self.prefix), || self.poll())? {
                    Poll::Compacted(oldest) => {
                        return Err(Error::Compacted {
                            requested: self.last,
                            oldest,
                        })
                    }
                    Poll::Events(events) => {
                        if let Some(last) = events.last() {
                            self.last = last.kv.mod_revision;
                            return Ok(events);
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            std::thread::sleep(WATCH_POLL.min(deadline - now));
        }
    }
}
