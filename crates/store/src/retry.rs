//! Backoff with jitter for compare-and-swap loops (here and in callers such as IPAM).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A pseudo-random number, different on every call and in every process (no crypto quality).
pub fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    RandomState::new().hash_one((n, now, std::process::id()))
}

/// The pause before retry number `attempt` (0-based): random, up to 1 ms doubling per attempt,
/// at most `max`.
pub fn backoff_delay(attempt: u32, max: Duration) -> Duration {
    let cap_us = (1000u64 << attempt.min(16)).min(max.as_micros().max(1) as u64);
    Duration::from_micros(random_u64() % cap_us.max(1) + 1)
}

/// Sleeps [`backoff_delay`]`(attempt, 50 ms)`.
pub fn backoff(attempt: u32) {
    std::thread::sleep(backoff_delay(attempt, Duration::from_millis(50)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_bounded_and_varies() {
        let max = Duration::from_millis(50);
        for a in 0..40 {
            assert!(backoff_delay(a, max) <= max + Duration::from_micros(1));
        }
        assert!(backoff_delay(0, max) <= Duration::from_micros(1001));
        let set: std::collections::HashSet<u64> = (0..20).map(|_| random_u64()).collect();
        assert!(set.len() > 15);
    }
}
