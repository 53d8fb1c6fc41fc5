//! Which process created a handle, and whether it still runs.
//!
//! A handle records its creator so that `gc` can tell a workload being created right now (its
//! creator runs) from one whose creator died (SIGKILL, crash): only the latter can leak. The
//! process is named by the host's boot id, its pid and its start time, so a reused pid or
//! another host is never mistaken for the creator.

use serde::{Deserialize, Serialize};

/// How long a handle created on another host counts as being created (its creator cannot be
/// looked up from here). Longer than any `weft run` takes to wire a container.
pub const REMOTE_CREATION_WINDOW_SECS: u64 = 300;

/// The process that created a handle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creator {
    /// `/proc/sys/kernel/random/boot_id` of its host: unique per host and boot.
    pub boot_id: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (field 22 of `/proc/PID/stat`).
    pub start: u64,
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty())
}

/// Start time of `pid` in clock ticks since boot, if it runs (or is a zombie).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with field 3 (state); start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Creator {
    /// This process, if /proc tells who it is.
    pub fn current() -> Option<Creator> {
        let pid = std::process::id();
        Some(Creator {
            boot_id: boot_id()?,
            pid,
            start: start_time(pid)?,
        })
    }

    /// Whether the creator still runs: `Some(true|false)` on its own host, `None` elsewhere.
    pub fn alive(&self) -> Option<bool> {
        if boot_id()? != self.boot_id {
            return None;
        }
        Some(start_time(self.pid) == Some(self.start))
    }
}

/// Whether the handle with this creator and creation time may still be in creation at `now`.
pub(crate) fn in_creation(creator: Option<&Creator>, created: u64, now: u64) -> bool {
    match creator.map(Creator::alive) {
        Some(Some(alive)) => alive,
        Some(None) => now.saturating_sub(created) < REMOTE_CREATION_WINDOW_SECS,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_or_reused_pid_is_not() {
        let me = Creator::current().expect("/proc is mounted");
        assert_eq!(me.alive(), Some(true));
        let reused = Creator {
            start: me.start + 1,
            ..me.clone()
        };
        assert_eq!(reused.alive(), Some(false));
        let elsewhere = Creator {
            boot_id: "another-host".into(),
            ..me.clone()
        };
        assert_eq!(elsewhere.alive(), None);
        assert!(in_creation(Some(&me), 0, 1_000_000));
        assert!(!in_creation(Some(&reused), 0, 0));
        assert!(in_creation(
            Some(&elsewhere),
            100,
            100 + REMOTE_CREATION_WINDOW_SECS - 1
        ));
        assert!(!in_creation(
            Some(&elsewhere),
            100,
            100 + REMOTE_CREATION_WINDOW_SECS
        ));
        assert!(!in_creation(None, 100, 100));
    }
}
