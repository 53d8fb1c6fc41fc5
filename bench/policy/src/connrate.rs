//! New TCP connections per second from c1 to c2 through the node: each connection is a SYN
//! that the node's forward hook judges as NEW (the rest of it is ESTABLISHED), then a reset
//! (SO_LINGER 0), so no TIME_WAIT piles up. The server in c2 accepts and closes.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sched::{setns, CloneFlags};
use weft_netlink::Netns;

/// The port every policy allows.
pub const PORT: u16 = 80;
/// A port no policy allows.
pub const DENIED_PORT: u16 = 81;

/// Starts the server in `ns` on `PORT` and `DENIED_PORT` (accept and close, forever).
pub fn serve(ns: &Netns) -> Result<()> {
    for port in [PORT, DENIED_PORT] {
        let ns = ns.try_clone()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let l = setns(ns.fd(), CloneFlags::CLONE_NEWNET)
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(anyhow::Error::from)
                });
            match l {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    for s in l.incoming() {
                        drop(s);
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        });
        rx.recv().context("server thread")??;
    }
    Ok(())
}

/// What one measurement saw.
pub struct Rate {
    pub per_second: f64,
    pub failed: u64,
}

/// Connects from inside `ns` to `to` for `secs`, one connection at a time.
pub fn measure(ns: &Netns, to: Ipv4Addr, secs: f64) -> Result<Rate> {
    weft_netlink::run_in_netns(ns, || {
        let addr = SocketAddr::from((to, PORT));
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let start = Instant::now();
        let (mut ok, mut failed) = (0u64, 0u64);
        while Instant::now() < end {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(s) => {
                    weft_bench_common::reset_on_close(&s);
                    ok += 1;
                }
                Err(_) => failed += 1,
            }
        }
        Rate {
            per_second: ok as f64 / start.elapsed().as_secs_f64(),
            failed,
        }
    })
    .map_err(Into::into)
}

/// Whether the ruleset is in force: c1 reaches c2:PORT, and c2:DENIED_PORT times out (dropped)
/// or is refused by a reject.
pub fn check(ns: &Netns, to: Ipv4Addr) -> Result<()> {
    weft_netlink::run_in_netns(ns, || -> Result<()> {
        let s = TcpStream::connect_timeout(&SocketAddr::from((to, PORT)), Duration::from_secs(2))
            .with_context(|| {
            format!("c1 cannot reach {to}:{PORT}, which the policies allow")
        })?;
        weft_bench_common::reset_on_close(&s);
        match TcpStream::connect_timeout(
            &SocketAddr::from((to, DENIED_PORT)),
            Duration::from_millis(300),
        ) {
            Ok(_) => anyhow::bail!(
                "c1 reached {to}:{DENIED_PORT}, which no policy allows: the ruleset is not in force"
            ),
            Err(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => Ok(()),
            Err(e) => anyhow::bail!("{to}:{DENIED_PORT}: {e} (expected a timeout: dropped)"),
        }
    })?
}
