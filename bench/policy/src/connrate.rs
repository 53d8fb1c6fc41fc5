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

/// Starts the server in `ns` on `PORT` and `DENIED_PORT`: `ACCEPTORS` threads per port accept
/// and close, forever, so the server keeps up with several clients at once.
pub fn serve(ns: &Netns) -> Result<()> {
    for port in [PORT, DENIED_PORT] {
        let l = weft_netlink::run_in_netns(ns, || listen(port))?
            .with_context(|| format!("listen on port {port} in c2"))?;
        for _ in 0..ACCEPTORS {
            let l = l.try_clone()?;
            std::thread::spawn(move || {
                for s in l.incoming() {
                    drop(s);
                }
            });
        }
    }
    Ok(())
}

/// Accepting threads per port.
const ACCEPTORS: usize = 2;

/// The accept queue's length. A client's `connect` returns at the SYN-ACK, before the server
/// accepts, so at tens of thousands of connections a second a short pause of the acceptors
/// fills std's queue of 128 and the kernel drops the next SYN (`ListenOverflows`), which
/// costs a 1 s retransmission and halves a 2 s measurement. 4096 is the namespace's default
/// `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// A TCP listener on `port` on all addresses of the current network namespace.
fn listen(port: u16) -> Result<TcpListener> {
    use nix::sys::socket::{
        bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
        SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(0, 0, 0, 0, port),
    )?;
    listen(&fd, Backlog::new(BACKLOG)?)?;
    Ok(TcpListener::from(fd))
}

/// What one measurement saw.
pub struct Rate {
    pub per_second: f64,
    pub failed: u64,
}

/// Connects from inside `ns` to `to` for `secs` from `clients` threads, each one connection at
/// a time. With one client the rate is bound by the round trip of each handshake; with several
/// the node's work per connection (the firewall's among it) is what bounds it.
pub fn measure(ns: &Netns, to: Ipv4Addr, secs: f64, clients: usize) -> Result<Rate> {
    let addr = SocketAddr::from((to, PORT));
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let counts = std::thread::scope(|s| -> Result<Vec<(u64, u64)>> {
        let threads: Vec<_> = (0..clients.max(1))
            .map(|_| {
                s.spawn(move || -> Result<(u64, u64)> {
                    setns(ns.fd(), CloneFlags::CLONE_NEWNET).context("enter c1")?;
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while Instant::now() < end {
                        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                            Ok(s) => {
                                weft_bench_common::reset_on_close(&s);
                                ok += 1;
                            }
                            Err(e) => {
                                failed += 1;
                                if std::env::var_os("WEFT_BENCH_DEBUG").is_some() {
                                    eprintln!(
                                        "    connect failed {:.3} s in: {e}",
                                        start.elapsed().as_secs_f64()
                                    );
                                }
                            }
                        }
                    }
                    Ok((ok, failed))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("client thread panicked"))
            .collect()
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(Rate {
        per_second: counts.iter().map(|c| c.0).sum::<u64>() as f64 / elapsed,
        failed: counts.iter().map(|c| c.1).sum(),
    })
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
