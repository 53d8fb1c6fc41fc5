//! What the benchmarks under `bench/` share: a node namespace with real workloads wired by
//! weft's endpoint code ([`node`]), cleaned up on drop and on SIGINT/SIGTERM/SIGHUP;
//! `iptables-restore` runs in a namespace ([`iptables`]); the printed report ([`report`]).

pub mod iptables;
pub mod node;
pub mod report;

/// A flag's value `N[,N…]` as numbers.
pub fn parse_list(value: &str, flag: &str) -> anyhow::Result<Vec<usize>> {
    value
        .split(',')
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{flag} N[,N…]: {e}"))
}

/// Milliseconds of `d`, as a float.
pub fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Makes closing `s` reset the connection (SO_LINGER 0), so a benchmark that opens connections
/// by the thousand leaves no TIME_WAIT behind.
pub fn reset_on_close(s: &std::net::TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // Best effort: a socket that refuses only costs a TIME_WAIT entry.
    let _ = nix::sys::socket::setsockopt(s, nix::sys::socket::sockopt::Linger, &l);
}
