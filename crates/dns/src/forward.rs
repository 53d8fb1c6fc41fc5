//! Forwarding names that are not weft's to an upstream server.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;

use crate::message::{status_reply, Transport};

/// How long a forwarded query may wait for the upstream before the client gets SERVFAIL.
pub(crate) const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// The upstream's answer to `query`, or SERVFAIL when it does not answer in time. Asks over
/// UDP; asks again over TCP when the answer was truncated and the client itself uses TCP.
pub(crate) fn forward(upstream: SocketAddr, query: &[u8], transport: Transport) -> Vec<u8> {
    let result = forward_udp(upstream, query, FORWARD_TIMEOUT).and_then(|resp| {
        let truncated = resp.get(2).is_some_and(|b| b & 0x02 != 0);
        if truncated && transport == Transport::Tcp {
            forward_tcp(upstream, query, FORWARD_TIMEOUT).or(Ok(resp))
        } else {
            Ok(resp)
        }
    });
    result.unwrap_or_else(|e| {
        tracing::debug!("dns: upstream {upstream} did not answer a forwarded query: {e}");
        status_reply(query, ResponseCode::ServFail)
    })
}

/// Whether `resp` answers `query`: a response carrying the same id.
fn answers(query: &[u8], resp: &[u8]) -> bool {
    resp.len() >= 12 && query.len() >= 2 && resp[..2] == query[..2] && resp[2] & 0x80 != 0
}

fn forward_udp(upstream: SocketAddr, query: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (IpAddr::from([0u8; 4]), 0).into(),
        SocketAddr::V6(_) => (IpAddr::from([0u16; 8]), 0).into(),
    };
    let sock = UdpSocket::bind(local)?;
    sock.connect(upstream)?;
    sock.send(query)?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time"));
        }
        sock.set_read_timeout(Some(left))?;
        let n = sock.recv(&mut buf)?;
        if answers(query, &buf[..n]) {
            buf.truncate(n);
            return Ok(buf);
        }
        // A stray or late datagram: keep waiting for ours.
    }
}

fn forward_tcp(upstream: SocketAddr, query: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let len = u16::try_from(query.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut stream = TcpStream::connect_timeout(&upstream, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut resp = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut resp)?;
    if answers(query, &resp) {
        Ok(resp)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the upstream answered with another message id",
        ))
    }
}

/// The first name server of a `resolv.conf` (normally `/etc/resolv.conf`) that can serve as
/// upstream, on port 53. Loopback servers (such as systemd-resolved's 127.0.0.53) are skipped:
/// they exist only in the host's own network namespace.
pub fn upstream_from_resolv_conf(path: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then(|| words.next())?
        })
        .filter_map(|addr| addr.split('%').next()?.parse::<IpAddr>().ok())
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .map(|ip| SocketAddr::new(ip, crate::DNS_PORT))
}
