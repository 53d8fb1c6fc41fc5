//! New-connection latency through a ClusterIP, from the client's namespace: TCP connect plus
//! the first byte of the answer (the endpoint sends one byte on accept), one connection at a
//! time. Each connection's SYN is a new conntrack entry in the node, so the node's nat rules
//! (the services map, or the linear `KUBE-SERVICES` chain) choose and DNAT it; the client then
//! resets the connection (SO_LINGER 0), so no TIME_WAIT piles up.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use weft_netlink::Netns;

/// One connection: connect, read the first byte (which endpoint answered), reset.
fn once(to: SocketAddr, timeout: Duration) -> std::io::Result<(Duration, u8)> {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&to, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    let mut b = [0u8; 1];
    s.read_exact(&mut b)?;
    let d = t.elapsed();
    weft_bench_common::reset_on_close(&s);
    Ok((d, b[0]))
}

/// What one measurement saw: latencies in microseconds, sorted; failures.
pub struct Sample {
    pub micros: Vec<f64>,
    pub failed: usize,
}

impl Sample {
    pub fn quantile(&self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        self.micros[((self.micros.len() - 1) as f64 * q).round() as usize]
    }
}

/// `n` connections from inside `ns` to `ip:port`.
pub fn measure(ns: &Netns, ip: Ipv4Addr, port: u16, n: usize) -> Result<Sample> {
    let to = SocketAddr::from((ip, port));
    weft_netlink::run_in_netns(ns, || {
        let mut micros = Vec::with_capacity(n);
        let mut failed = 0;
        for _ in 0..n {
            match once(to, Duration::from_secs(1)) {
                Ok((d, _)) => micros.push(d.as_secs_f64() * 1e6),
                Err(_) => failed += 1,
            }
        }
        micros.sort_by(|a, b| a.total_cmp(b));
        Sample { micros, failed }
    })
    .map_err(Into::into)
}

/// Whether the ruleset is in force: connections to `ip:port` from inside `ns` reach both
/// endpoints (bytes `1` and `2`) within 64 tries.
pub fn check(ns: &Netns, ip: Ipv4Addr, port: u16) -> Result<()> {
    let to = SocketAddr::from((ip, port));
    weft_netlink::run_in_netns(ns, || -> Result<()> {
        let mut seen = [false; 2];
        for _ in 0..64 {
            let (_, b) = once(to, Duration::from_secs(2))
                .with_context(|| format!("the client cannot reach the service at {to}"))?;
            match b {
                b'1' => seen[0] = true,
                b'2' => seen[1] = true,
                other => bail!("{to} answered {other:?}, not an endpoint of the service"),
            }
            if seen == [true, true] {
                return Ok(());
            }
        }
        bail!("64 connections to {to} did not reach both endpoints: {seen:?}")
    })?
}
