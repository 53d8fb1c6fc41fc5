//! Watches on the SQLite backend.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use rusqlite::{params, Connection};

use super::{read_revision, retry_busy, KIND_DELETE, WATCH_FALLBACK, WATCH_POLL};
use crate::{prefix_end, Error, Event, EventKind, KeyValue, Result, Revision, Watch};

/// A watch polling the `events` table on its own connection; `PRAGMA data_version` tells it
/// cheaply whether another connection committed anything since the last look. Between looks it
/// sleeps until a file of the store's directory is written (inotify: a commit appends to the
/// write-ahead log), or [`WATCH_FALLBACK`] at the latest ([`WATCH_POLL`] without inotify), so a change is seen at once.
pub(super) struct SqliteWatch {
    path: PathBuf,
    conn: Connection,
    prefix: String,
    end: Option<String>,
    last: Revision,
    data_version: Option<i64>,
    wake: Option<Inotify>,
}

enum Poll {
    Events(Vec<Event>),
    Compacted(Revision),
}

impl SqliteWatch {
    pub(super) fn new(path: PathBuf, conn: Connection, prefix: &str, from: Revision) -> Self {
        Self {
            wake: writes_to_dir_of(&path),
            path,
            conn,
            prefix: prefix.to_string(),
            end: prefix_end(prefix),
            last: from,
            data_version: None,
        }
    }

    /// Waits up to `d` for a write in the store's directory.
    fn wait(&mut self, d: Duration) {
        let Some(ino) = &self.wake else {
            std::thread::sleep(d);
            return;
        };
        let ms = u16::try_from(d.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(ino.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            // Drain what arrived; what it was does not matter, the next look tells.
            Ok(n) if n > 0 => while matches!(ino.read_events(), Ok(ev) if !ev.is_empty()) {},
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => std::thread::sleep(d),
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
            let period = if self.wake.is_some() {
                WATCH_FALLBACK
            } else {
                WATCH_POLL
            };
            self.wait(period.min(deadline - now));
        }
    }
}

/// An inotify instance reporting writes to files in the directory of `db`, or `None` where
/// inotify is not available (the watch then only polls).
fn writes_to_dir_of(db: &Path) -> Option<Inotify> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    ino.add_watch(
        dir,
        AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
    )
    .ok()?;
    Some(ino)
}
