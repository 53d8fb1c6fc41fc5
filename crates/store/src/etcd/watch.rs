//! Watches on etcd: a task on the store's thread follows an etcd watch stream and hands the
//! events to the synchronous [`Watch`] through a channel.
//!
//! The stream is opened by the first [`Watch::next`], from the revision the watch was asked
//! for, so a watch that lags behind a compaction fails like on the other backends. When the
//! connection is lost (etcd stopped, killed, restarted) the task reconnects with backoff and
//! resumes after the last revision it delivered; the caller sees no error, only no events
//! until etcd is back. The only error is [`Error::Compacted`], when etcd no longer has the
//! history the watch needs.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use etcd_client::{Client, EventType, WatchOptions};
use tokio::sync::oneshot;

use super::worker::{describe, Worker};
use super::{kv_from_etcd, to_etcd, to_weft, REQUEST_TIMEOUT};
use crate::{Error, Event, EventKind, Result, Revision, Watch};

/// Longest pause between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

enum Msg {
    Events(Vec<Event>),
    /// etcd's compaction point (an etcd revision) is past what the watch needs.
    Compacted(i64),
}

pub(super) struct EtcdWatch {
    worker: Worker,
    prefix: String,
    /// The last revision delivered (or the one the watch started from).
    last: Revision,
    rx: Option<Receiver<Msg>>,
    /// Dropping it stops the task.
    _stop: Option<oneshot::Sender<()>>,
    /// Set once etcd reported the history compacted: the oldest revision it keeps.
    compacted: Option<Revision>,
}

impl EtcdWatch {
    pub(super) fn new(worker: Worker, prefix: &str, from: Revision) -> EtcdWatch {
        EtcdWatch {
            worker,
            prefix: prefix.to_string(),
            last: from,
            rx: None,
            _stop: None,
            compacted: None,
        }
    }

    fn start(&mut self) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let prefix = self.prefix.clone();
        let url = self.worker.url.clone();
        let next = to_etcd(self.last) + 1;
        self.worker.spawn(Box::new(move |client| {
            Box::pin(follow(client, url, prefix, next, tx, stop_rx))
        }))?;
        self.rx = Some(rx);
        self._stop = Some(stop_tx);
        Ok(())
    }

    fn compacted_error(&self, oldest: Revision) -> Error {
        Error::Compacted {
            requested: self.last,
            oldest,
        }
    }
}

impl Watch for EtcdWatch {
    fn next(&mut self, timeout: Duration) -> Result<Vec<Event>> {
        if let Some(oldest) = self.compacted {
            return Err(self.compacted_error(oldest));
        }
        if self.rx.is_none() {
            self.start()?;
        }
        let rx = self.rx.as_ref().expect("started above");
        let mut msg = match rx.recv_timeout(timeout) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => return Ok(Vec::new()),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Backend(format!(
                    "etcd store {}: the watch of {} ended (the store's thread is gone)",
                    self.worker.url, self.prefix
                )))
            }
        };
        // All that has arrived, not only the first batch.
        let mut events = Vec::new();
        while let Some(m) = msg {
            match m {
                Msg::Events(evs) => events.extend(evs),
                Msg::Compacted(etcd) => {
                    self.compacted = Some(to_weft(etcd));
                    break;
                }
            }
            msg = rx.try_recv().ok();
        }
        match (events.last(), self.compacted) {
            (Some(ev), _) => {
                self.last = ev.kv.mod_revision;
                Ok(events)
            }
            (None, Some(oldest)) => Err(self.compacted_error(oldest)),
            (None, None) => Ok(events),
        }
    }
}

/// How one etcd watch stream ended.
enum End {
    Compacted(i64),
    /// The receiving side is gone: nothing more to do.
    Closed,
    Lost(String),
}

/// The task: follow the stream from etcd revision `next`, reconnecting until stopped.
async fn follow(
    client: Client,
    url: String,
    prefix: String,
    mut next: i64,
    tx: Sender<Msg>,
    mut stop: oneshot::Receiver<()>,
) {
    // Reset by `stream` when etcd accepts the watch: a loss is logged once, then retried.
    let mut attempt: u32 = 0;
    loop {
        let end = tokio::select! {
            _ = &mut stop => return,
            end = stream(&client, &prefix, &mut next, &tx, &mut attempt) => end,
        };
        match end {
            End::Compacted(rev) => {
                let _ = tx.send(Msg::Compacted(rev));
                return;
            }
            End::Closed => return,
            End::Lost(why) if attempt == 0 => {
                tracing::warn!(store = %url, prefix = %prefix, "watch lost ({why}); reconnecting");
            }
            End::Lost(_) => {}
        }
        let pause = (Duration::from_millis(100) * 2u32.pow(attempt.min(4))).min(MAX_BACKOFF);
        attempt += 1;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// One etcd watch stream: forwards its events and says how it ended. `attempt` is reset once
/// the stream delivers, so the next loss starts the backoff over.
async fn stream(
    client: &Client,
    prefix: &str,
    next: &mut i64,
    tx: &Sender<Msg>,
    attempt: &mut u32,
) -> End {
    // One revision's events come in one answer, however many keys it changed.
    let mut c = client
        .watch_client()
        .max_decoding_message_size(super::kv::MAX_LIST_BYTES);
    let opts = WatchOptions::new().with_prefix().with_start_revision(*next);
    let mut s = match tokio::time::timeout(REQUEST_TIMEOUT, c.watch(prefix, Some(opts))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return End::Lost(describe(&e)),
        Err(_) => return End::Lost("no answer in time".into()),
    };
    loop {
        let resp = match s.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return End::Lost("etcd closed the watch".into()),
            Err(e) => return End::Lost(describe(&e)),
        };
        if resp.compact_revision() != 0 {
            return End::Compacted(resp.compact_revision());
        }
        if resp.canceled() {
            return End::Lost(format!(
                "etcd cancelled the watch: {}",
                resp.cancel_reason()
            ));
        }
        if resp.created() {
            *attempt = 0;
        }
        let mut events = Vec::with_capacity(resp.events().len());
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            if kv.mod_revision() < *next {
                continue;
            }
            let Ok(kv) = kv_from_etcd(kv) else {
                tracing::warn!("skipping an etcd key that is not UTF-8: {:?}", kv.key());
                continue;
            };
            let kind = match ev.event_type() {
                EventType::Put => EventKind::Put,
                EventType::Delete => EventKind::Delete,
            };
            events.push(Event { kind, kv });
        }
        if let Some(last) = resp.events().last().and_then(|e| e.kv()) {
            *next = (*next).max(last.mod_revision() + 1);
        }
        if !events.is_empty() && tx.send(Msg::Events(events)).is_err() {
            return End::Closed;
        }
    }
}

/// The oldest revision etcd keeps, learnt from a watch at `start` (which etcd cancels with
/// its compaction point).
pub(super) fn oldest(worker: &Worker, prefix: &str, start: i64) -> Result<Revision> {
    let p = prefix.to_string();
    let rev = worker.call("reading the compaction point", move |mut c| async move {
        let opts = WatchOptions::new().with_prefix().with_start_revision(start);
        let mut s = c.watch(p, Some(opts)).await?;
        while let Some(r) = s.message().await? {
            if r.compact_revision() != 0 {
                return Ok(r.compact_revision());
            }
            if r.canceled() {
                break;
            }
        }
        Ok(start)
    })?;
    Ok(to_weft(rev))
}
