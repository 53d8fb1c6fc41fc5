//! DNS over TCP: length-prefixed messages, one thread per connection.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::forward::forward;
use crate::message::{refused, Reply, Transport};
use crate::server::{is_timeout, Shared, POLL};

/// Threads (TCP connections plus forwards) beyond which new connections are closed at once.
const MAX_DETACHED: usize = 256;
/// A connection with no query for this long is closed.
const IDLE: Duration = Duration::from_secs(10);

/// Accepts connections until the server stops, polling so that the stop flag is seen.
pub(crate) fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    let timeout = PollTimeout::try_from(POLL).unwrap_or(PollTimeout::from(200u16));
    while !shared.stopping() {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::warn!("dns: polling the TCP listener failed: {e}");
                shared.nap(Duration::from_millis(50));
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => start_connection(shared, stream, peer),
            Err(e) => {
                tracing::debug!("dns: TCP accept failed: {e}");
            }
        }
    }
}

fn start_connection(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    if shared.detached.fetch_add(1, Ordering::SeqCst) >= MAX_DETACHED {
        shared.detached.fetch_sub(1, Ordering::SeqCst);
        tracing::debug!("dns: too many TCP connections; closing the one from {peer}");
        return;
    }
    let sh = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("dns-tcp-conn".into())
        .spawn(move || {
            if let Err(e) = serve_connection(&sh, stream, peer) {
                tracing::debug!("dns: TCP connection from {peer} ended: {e}");
            }
            sh.detached.fetch_sub(1, Ordering::SeqCst);
        });
    if spawned.is_err() {
        shared.detached.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve_connection(shared: &Shared, mut stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
    stream.set_read_timeout(Some(POLL))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    loop {
        let mut len = [0u8; 2];
        if !read_full(shared, &mut stream, &mut len)? {
            return Ok(());
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !read_full(shared, &mut stream, &mut query)? {
            return Ok(());
        }
        let resp = match shared.reply(peer.ip(), &query, Transport::Tcp) {
            Reply::Answer(b) => b,
            Reply::Drop => return Ok(()),
            Reply::Forward => match shared.upstream {
                Some(up) => forward(up, &query, Transport::Tcp),
                None => refused(&query),
            },
        };
        let Ok(n) = u16::try_from(resp.len()) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(resp.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&resp);
        stream.write_all(&framed)?;
    }
}

/// Fills `buf`; `Ok(false)` when the peer closed, the connection idled out, or the server stops.
fn read_full(shared: &Shared, stream: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let idle_end = Instant::now() + IDLE;
    let mut got = 0;
    while got < buf.len() {
        if shared.stopping() || Instant::now() > idle_end {
            return Ok(false);
        }
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}
