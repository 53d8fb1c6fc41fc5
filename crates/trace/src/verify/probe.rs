//! The real packet: an ICMP echo on a raw socket, a TCP connect, or a UDP datagram, sent from
//! the source namespace with the don't-fragment bit set, waiting a bounded time for the answer.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::flow::Flow;
use crate::model::Proto;

/// What the probe itself saw.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeOutcome {
    pub sent: bool,
    /// An answer came back (echo reply, SYN-ACK or RST, UDP answer or port unreachable);
    /// None when that cannot be told (UDP without any answer).
    pub answered: Option<bool>,
    pub error: Option<String>,
}

fn sys(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn socket(ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); checked.
    let raw = sys(unsafe { libc::socket(libc::AF_INET, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn setsockopt_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the option value is a live c_int of the given size.
    sys(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn bind(fd: &OwnedFd, a: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr(a);
    // SAFETY: `sa` is a live sockaddr_in of the given size.
    sys(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

fn connect(fd: &OwnedFd, a: SocketAddrV4) -> io::Result<()> {
    let sa = sockaddr(a);
    // SAFETY: as in `bind`.
    sys(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// Waits for `events` on `fd` for at most `d`; true when ready.
fn wait(fd: &OwnedFd, events: libc::c_short, d: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    let ms = d.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one live pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request of `len` IP bytes with identifier `id`, sequence 1.
pub fn echo_request(id: u16, len: u16) -> Vec<u8> {
    let size = usize::from(len.max(28)) - 20;
    let mut p = vec![0u8; size];
    p[0] = 8;
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&1u16.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(8) {
        *b = b"weft-trace"[(i - 8) % 10];
    }
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// Sends the probe of `flow` from the calling thread's namespace and waits up to `limit`.
/// Must run on a thread that joined the source namespace.
pub fn send(flow: &Flow, limit: Duration) -> ProbeOutcome {
    let r = match flow.proto {
        Proto::Icmp => icmp(flow, limit),
        Proto::Tcp => tcp(flow, limit),
        Proto::Udp => udp(flow, limit),
    };
    r.unwrap_or_else(|(sent, e)| ProbeOutcome {
        sent,
        answered: None,
        error: Some(e.to_string()),
    })
}

type Probe = Result<ProbeOutcome, (bool, io::Error)>;

fn icmp(flow: &Flow, limit: Duration) -> Probe {
    let fd = socket(libc::SOCK_RAW, libc::IPPROTO_ICMP).map_err(|e| (false, e))?;
    setsockopt_int(
        &fd,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
    )
    .map_err(|e| (false, e))?;
    let id = flow.icmp_id.unwrap_or(0);
    let pkt = echo_request(id, flow.len);
    let sa = sockaddr(SocketAddrV4::new(flow.dst, 0));
    // SAFETY: `pkt` and `sa` are live for the call.
    sys(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) as libc::c_int
    })
    .map_err(|e| (false, e))?;
    let start = Instant::now();
    let mut buf = [0u8; 65536];
    while start.elapsed() < limit {
        if !wait(&fd, libc::POLLIN, limit.saturating_sub(start.elapsed())) {
            break;
        }
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 20 {
            continue;
        }
        let b = &buf[..n as usize];
        let ihl = usize::from(b[0] & 0x0f) * 4;
        let from = Ipv4Addr::new(b[12], b[13], b[14], b[15]);
        if let Some(icmp) = b.get(ihl..ihl + 8) {
            if icmp[0] == 0 && u16::from_be_bytes([icmp[4], icmp[5]]) == id && from == flow.dst {
                return Ok(ProbeOutcome {
                    sent: true,
                    answered: Some(true),
                    error: None,
                });
            }
        }
    }
    Ok(ProbeOutcome {
        sent: true,
        answered: Some(false),
        error: None,
    })
}

fn tcp(flow: &Flow, limit: Duration) -> Probe {
    let fd = socket(libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0).map_err(|e| (false, e))?;
    let _ = setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    bind(
        &fd,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, flow.sport.unwrap_or(0)),
    )
    .map_err(|e| (false, e))?;
    match connect(&fd, SocketAddrV4::new(flow.dst, flow.dport.unwrap_or(0))) {
        Ok(()) => {
            return Ok(ProbeOutcome {
                sent: true,
                answered: Some(true),
                error: None,
            })
        }
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err((false, e)),
    }
    if !wait(&fd, libc::POLLOUT, limit) {
        return Ok(ProbeOutcome {
            sent: true,
            answered: Some(false),
            error: None,
        });
    }
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err`/`len` are live and sized for SO_ERROR.
    let _ = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    let answered = err == 0 || err == libc::ECONNREFUSED;
    Ok(ProbeOutcome {
        sent: true,
        answered: Some(answered),
        error: (err != 0).then(|| io::Error::from_raw_os_error(err).to_string()),
    })
}

fn udp(flow: &Flow, limit: Duration) -> Probe {
    let fd = socket(libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0).map_err(|e| (false, e))?;
    setsockopt_int(
        &fd,
        libc::IPPROTO_IP,
        libc::IP_MTU_DISCOVER,
        libc::IP_PMTUDISC_DO,
    )
    .map_err(|e| (false, e))?;
    bind(
        &fd,
        SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, flow.sport.unwrap_or(0)),
    )
    .map_err(|e| (false, e))?;
    connect(&fd, SocketAddrV4::new(flow.dst, flow.dport.unwrap_or(0))).map_err(|e| (false, e))?;
    let payload = vec![b'w'; usize::from(flow.len.max(28)) - 28];
    // SAFETY: `payload` is live for the call.
    sys(unsafe {
        libc::send(fd.as_raw_fd(), payload.as_ptr().cast(), payload.len(), 0) as libc::c_int
    })
    .map_err(|e| (false, e))?;
    if !wait(&fd, libc::POLLIN, limit) {
        return Ok(ProbeOutcome {
            sent: true,
            answered: None,
            error: None,
        });
    }
    let mut buf = [0u8; 2048];
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let err = (n < 0).then(io::Error::last_os_error);
    Ok(ProbeOutcome {
        sent: true,
        answered: Some(true),
        error: err.map(|e| e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_has_a_valid_checksum_and_size() {
        let p = echo_request(0x1234, 84);
        assert_eq!(p.len(), 64);
        assert_eq!(checksum(&p), 0, "a correct checksum sums to zero");
        assert_eq!(&p[4..6], &[0x12, 0x34]);
    }
}
