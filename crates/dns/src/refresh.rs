//! Keeping the zone fresh: watch the store, rebuild, swap.

use std::time::{Duration, Instant};

use anyhow::Result;
use weft_dataplane::ClusterState;
use weft_store::{Error as StoreError, Store, Watch};

use crate::server::{Shared, POLL};
use crate::services::{services_of_state, SERVICES};
use crate::zone::Zone;

/// The prefix watched: all of the cluster's state, services (`/weft/services/`) included.
const WATCHED: &str = "/weft/";
/// Wait between attempts when the store fails.
const RETRY: Duration = Duration::from_secs(1);

/// The zone of the store as it is now.
pub(crate) fn build_zone(store: &dyn Store, ttl: u32) -> Result<Zone> {
    // One list of `/weft/`: workloads and services from the same revision.
    let st = ClusterState::load(store)?;
    for w in st.warnings.iter().filter(|w| w.contains(SERVICES)) {
        tracing::debug!("dns: {w}");
    }
    Ok(Zone::from_state(&st, &services_of_state(&st)).with_ttl(ttl))
}

/// Rebuilds the zone after every change under `/weft/` until the server stops. A failed
/// rebuild keeps the previous zone (and is retried); a compacted watch starts again from a
/// fresh read.
pub(crate) fn watch_loop(store: &dyn Store, shared: &Shared) {
    let mut watch: Option<Box<dyn Watch>> = None;
    let mut dirty = false;
    let mut next_try = Instant::now();
    while !shared.stopping() {
        let current = shared.zone().revision();
        if dirty && Instant::now() >= next_try {
            match build_zone(store, shared.ttl) {
                Ok(zone) => {
                    if zone.revision() >= current {
                        tracing::debug!("dns: zone rebuilt at revision {}", zone.revision());
                        shared.set_zone(zone);
                    }
                    dirty = false;
                }
                Err(e) => {
                    tracing::warn!(
                        "dns: rebuilding the zone failed, still answering from revision \
                         {current}: {e:#}"
                    );
                    next_try = Instant::now() + RETRY;
                }
            }
            continue;
        }
        let w = match &mut watch {
            Some(w) => w,
            None => match store.watch(WATCHED, current) {
                Ok(w) => watch.insert(w),
                Err(StoreError::Compacted { .. }) => {
                    // Read everything again (the branch above), then watch from there.
                    dirty = true;
                    shared.nap(next_try.saturating_duration_since(Instant::now()));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("dns: cannot watch the store under {WATCHED}: {e}");
                    dirty = true;
                    shared.nap(RETRY);
                    continue;
                }
            },
        };
        let wait = if dirty {
            Duration::from_millis(50)
        } else {
            POLL
        };
        match w.next(wait) {
            Ok(events) => {
                if events.iter().any(|e| e.kv.mod_revision > current) {
                    dirty = true;
                }
            }
            Err(e) => {
                if !matches!(e, StoreError::Compacted { .. }) {
                    tracing::warn!("dns: watching the store failed: {e}; reading it again");
                    shared.nap(RETRY);
                }
                watch = None;
                dirty = true;
            }
        }
    }
}
