//! The DNS server: UDP and TCP on std threads, answering from the current [`Zone`].

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hickory_proto::op::ResponseCode;
use weft_store::{Revision, Store};

use crate::forward::{forward, FORWARD_TIMEOUT};
use crate::message::{refused, status_reply, Reply, Transport};
use crate::zone::Zone;
use crate::{refresh, tcp, DnsOptions};

/// How often blocked threads look at the stop flag.
pub(crate) const POLL: Duration = Duration::from_millis(200);
/// Forwarded UDP queries in flight at once; beyond that, clients get SERVFAIL at once.
const MAX_FORWARDS: usize = 128;

/// State shared by the server's threads.
pub(crate) struct Shared {
    zone: RwLock<Arc<Zone>>,
    pub(crate) stop: AtomicBool,
    pub(crate) upstream: Option<SocketAddr>,
    pub(crate) ttl: u32,
    /// Forward threads and TCP connection threads still running (not joined).
    pub(crate) detached: AtomicUsize,
}

impl Shared {
    /// The current zone (a cheap clone of an `Arc`).
    pub(crate) fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the zone; queries in progress finish with the one they took.
    pub(crate) fn set_zone(&self, zone: Zone) {
        *self.zone.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The reply to one query from `peer`.
    pub(crate) fn reply(&self, peer: IpAddr, query: &[u8], transport: Transport) -> Reply {
        self.zone()
            .respond(asker(peer), query, transport, self.upstream.is_some())
    }

    /// Sleeps up to `d`, waking early when the server stops.
    pub(crate) fn nap(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.stopping() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(POLL));
        }
    }
}

/// The address a client is known by in the zone (IPv4 workloads; anything else sees all).
fn asker(peer: IpAddr) -> Ipv4Addr {
    match peer {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => ip.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
    }
}

/// A running name server. Dropping it stops it too.
pub struct Server {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    addrs: Vec<SocketAddr>,
}

impl Server {
    /// Builds the zone from the store, binds UDP and TCP on each address (port 53 normally; port
    /// 0 picks one free port for both), serves on background threads, and keeps the zone fresh by
    /// watching the store under `/weft/` (which holds `/weft/services/` too): on every change the
    /// zone is rebuilt and swapped in atomically, so no query is dropped during an update.
    ///
    /// Fails when the store cannot be read or an address cannot be bound (nothing is left
    /// running then).
    pub fn start(store: Arc<dyn Store>, binds: &[SocketAddr], opts: DnsOptions) -> Result<Server> {
        let zone =
            refresh::build_zone(&*store, opts.ttl).context("build the DNS zone from the store")?;
        let shared = Arc::new(Shared {
            zone: RwLock::new(Arc::new(zone)),
            stop: AtomicBool::new(false),
            upstream: opts.upstream,
            ttl: opts.ttl,
            detached: AtomicUsize::new(0),
        });
        let mut sockets = Vec::new();
        for addr in binds {
            sockets.push(bind_pair(*addr)?);
        }
        let mut server = Server {
            shared: shared.clone(),
            threads: Vec::new(),
            addrs: sockets.iter().map(|(_, _, a)| *a).collect(),
        };
        for (udp, listener, addr) in sockets {
            let sh = shared.clone();
            let udp = Arc::new(udp);
            server.spawn(format!("dns-udp-{addr}"), move || udp_loop(&sh, &udp))?;
            let sh = shared.clone();
            server.spawn(format!("dns-tcp-{addr}"), move || {
                tcp::accept_loop(&sh, &listener)
            })?;
        }
        let sh = shared.clone();
        server.spawn("dns-watch".into(), move || {
            refresh::watch_loop(&*store, &sh)
        })?;
        Ok(server)
    }

    fn spawn(&mut self, name: String, f: impl FnOnce() + Send + 'static) -> Result<()> {
        let handle = std::thread::Builder::new()
            .name(name.clone())
            .spawn(f)
            .with_context(|| format!("start the DNS thread {name}"))?;
        self.threads.push(handle);
        Ok(())
    }

    /// The addresses served (with the ports actually bound).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The zone answering now.
    pub fn zone(&self) -> Arc<Zone> {
        self.shared.zone()
    }

    /// The store revision of the zone answering now.
    pub fn revision(&self) -> Revision {
        self.shared.zone().revision()
    }

    /// Stops serving: closes the sockets and waits for the threads (forwarded queries in flight
    /// get up to their timeout to finish).
    pub fn stop(self) {
        drop(self)
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::warn!("dns: a server thread panicked");
            }
        }
        let deadline = Instant::now() + FORWARD_TIMEOUT + POLL * 2;
        while self.shared.detached.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds UDP and TCP on `addr`; port 0 takes a port that is free for both.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr)> {
    let hint = "is another DNS server using it? port 53 needs root (or CAP_NET_BIND_SERVICE)";
    if addr.port() != 0 {
        let udp = UdpSocket::bind(addr)
            .with_context(|| format!("bind the DNS UDP socket on {addr}; {hint}"))?;
        let tcp = TcpListener::bind(addr)
            .with_context(|| format!("bind the DNS TCP socket on {addr}; {hint}"))?;
        return Ok((udp, tcp, addr));
    }
    let mut last = None;
    for _ in 0..20 {
        let udp = UdpSocket::bind(addr)
            .with_context(|| format!("bind a DNS UDP socket on {addr}; {hint}"))?;
        let bound = udp.local_addr().context("read the bound DNS UDP address")?;
        match TcpListener::bind(bound) {
            Ok(tcp) => return Ok((udp, tcp, bound)),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow::anyhow!(
        "no port on {} was free for both DNS UDP and TCP after 20 tries (last: {}); give a port",
        addr.ip(),
        last.map_or_else(|| "none".to_string(), |e| e.to_string())
    ))
}

fn udp_loop(shared: &Arc<Shared>, sock: &Arc<UdpSocket>) {
    if let Err(e) = sock.set_read_timeout(Some(POLL)) {
        tracing::error!("dns: cannot set a timeout on the UDP socket, not serving it: {e}");
        return;
    }
    let mut buf = [0u8; 4096];
    while !shared.stopping() {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!("dns: UDP receive failed: {e}");
                shared.nap(Duration::from_millis(50));
                continue;
            }
        };
        let query = &buf[..n];
        let bytes = match shared.reply(peer.ip(), query, Transport::Udp) {
            Reply::Answer(b) => b,
            Reply::Drop => continue,
            Reply::Forward => match shared.upstream {
                None => refused(query),
                Some(up) => match spawn_forward(shared, sock, up, query.to_vec(), peer) {
                    Ok(()) => continue,
                    Err(()) => status_reply(query, ResponseCode::ServFail),
                },
            },
        };
        if let Err(e) = sock.send_to(&bytes, peer) {
            tracing::debug!("dns: UDP answer to {peer} not sent: {e}");
        }
    }
}

/// Forwards one UDP query on a thread of its own; `Err` when too many are in flight.
fn spawn_forward(
    shared: &Arc<Shared>,
    sock: &Arc<UdpSocket>,
    upstream: SocketAddr,
    query: Vec<u8>,
    peer: SocketAddr,
) -> Result<(), ()> {
    if shared.detached.fetch_add(1, Ordering::SeqCst) >= MAX_FORWARDS {
        shared.detached.fetch_sub(1, Ordering::SeqCst);
        return Err(());
    }
    let (sh, sock) = (shared.clone(), sock.clone());
    let spawned = std::thread::Builder::new()
        .name("dns-forward".into())
        .spawn(move || {
            let resp = forward(upstream, &query, Transport::Udp);
            if let Err(e) = sock.send_to(&resp, peer) {
                tracing::debug!("dns: forwarded answer to {peer} not sent: {e}");
            }
            sh.detached.fetch_sub(1, Ordering::SeqCst);
        });
    spawned.map(|_| ()).map_err(|_| {
        shared.detached.fetch_sub(1, Ordering::SeqCst);
    })
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
