//! AF_PACKET sockets, each opened inside a lab namespace and bound to one interface there,
//! read together with poll(2) for a bounded time.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weft_netlink::{run_in_netns, Netns};

/// `PACKET_OUTGOING`: a frame this host sent.
const PACKET_OUTGOING: u8 = 4;
/// Largest frame kept (the probe is at most an MTU).
const SNAPLEN: usize = 9216;

/// A captured frame: which socket saw it and in which direction.
#[derive(Clone, Debug)]
pub struct Captured {
    pub socket: usize,
    pub outgoing: bool,
    pub bytes: Vec<u8>,
    /// When it was read, in microseconds since the Unix epoch.
    pub at_us: u64,
}

/// An open packet socket.
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket in `ns` bound to interface `ifindex` there (all protocols).
    pub fn open(ns: &Netns, ifindex: u32, what: &str) -> Result<PacketSocket> {
        let fd = run_in_netns(ns, move || open_bound(ifindex))
            .with_context(|| format!("enter {ns} to capture on {what}"))?
            .with_context(|| format!("open a packet socket on {what}"))?;
        Ok(PacketSocket { fd })
    }
}

fn open_bound(ifindex: u32) -> io::Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // Protocol 0 at creation and the real protocol at bind: nothing is queued before the
    // socket is bound to its interface.
    // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex =
        i32::try_from(ifindex).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the address points to a live sockaddr_ll of the given size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Reads every socket until `done` says so (checked after each batch) or `limit` passes.
pub fn capture(
    sockets: &[PacketSocket],
    limit: Duration,
    mut done: impl FnMut(&[Captured]) -> bool,
) -> Vec<Captured> {
    let start = Instant::now();
    let mut out: Vec<Captured> = Vec::new();
    let mut buf = vec![0u8; SNAPLEN];
    let mut pfds: Vec<libc::pollfd> = sockets
        .iter()
        .map(|s| libc::pollfd {
            fd: s.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() || done(&out) {
            return out;
        }
        let ms = left.as_millis().clamp(1, 50) as libc::c_int;
        // SAFETY: `pfds` is a live array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n <= 0 {
            continue;
        }
        for (i, p) in pfds.iter_mut().enumerate() {
            if p.revents & libc::POLLIN == 0 {
                continue;
            }
            p.revents = 0;
            while let Some((len, outgoing)) = recv_one(p.fd, &mut buf) {
                out.push(Captured {
                    at_us: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_micros() as u64)
                        .unwrap_or(0),
                    socket: i,
                    outgoing,
                    bytes: buf[..len].to_vec(),
                });
            }
        }
    }
}

/// One frame from a non-blocking packet socket: (length, outgoing), or None when empty.
fn recv_one(fd: i32, buf: &mut [u8]) -> Option<(usize, bool)> {
    // SAFETY: zeroed sockaddr_ll is valid; recvfrom writes at most its size.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut alen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` is valid for writes of its length; `sll`/`alen` are live.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            (&mut sll as *mut libc::sockaddr_ll).cast(),
            &mut alen,
        )
    };
    if n < 0 {
        return None;
    }
    Some((n as usize, sll.sll_pkttype == PACKET_OUTGOING))
}
