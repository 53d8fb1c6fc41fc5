//! What the benchmarks under `bench/` share: a node namespace with real workloads wired by
//! weft's endpoint code ([`node`]), cleaned up on drop and on SIGINT/SIGTERM/SIGHUP;
//! `iptables-restore` runs in a namespace ([`iptables`]); the printed report ([`report`]).

pub mod iptables;
pub mod node;
pub mod report;

/// Milliseconds of `d`, as a float.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
