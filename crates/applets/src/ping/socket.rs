//! ICMP echo over a raw socket (needs CAP_NET_RAW) or, failing that, an unprivileged ICMP
//! datagram socket (`net.ipv4.ping_group_range`). Errors (unreachable, TTL exceeded) arrive as
//! ICMP packets on the raw socket and through the error queue (IP_RECVERR) on the other.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

/// Something received that concerns our echo requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An echo reply.
    Reply {
        /// Who answered.
        from: Ipv4Addr,
        /// The sequence number answered.
        seq: u16,
        /// The TTL of the reply, when known.
        ttl: Option<u8>,
        /// ICMP bytes (header + payload).
        bytes: usize,
    },
    /// An ICMP error about one of our requests.
    Error {
        /// The router or host that reported it.
        from: Ipv4Addr,
        /// The sequence number of the request concerned.
        seq: u16,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
        /// ICMP extra information (MTU, pointer).
        info: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    Dgram,
}

/// An ICMP socket for echo requests.
pub struct IcmpSocket {
    fd: OwnedFd,
    kind: Kind,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut sa: libc::sockaddr_in = unsafe { zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
    sa
}

fn ip_of(sa: &libc::sockaddr_in) -> Ipv4Addr {
    Ipv4Addr::from(sa.sin_addr.s_addr.to_ne_bytes())
}

fn set_int(fd: &OwnedFd, level: libc::c_int, opt: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: we pass a pointer to a live c_int and its size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(|_| ())
}

/// The Internet checksum of `data`.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for c in data.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        sum += u32::from(w);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request with `payload` bytes of data.
pub fn echo_request(id: u16, seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![8u8, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..payload).map(|i| i as u8));
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

impl IcmpSocket {
    /// Opens a raw ICMP socket, or a datagram one when raw sockets are not permitted.
    pub fn open(ttl: Option<u32>) -> io::Result<IcmpSocket> {
        let flags = libc::SOCK_CLOEXEC;
        // SAFETY: plain socket(2) calls; the fd is owned right away.
        let (fd, kind) = match check(unsafe {
            libc::socket(libc::AF_INET, libc::SOCK_RAW | flags, libc::IPPROTO_ICMP)
        }) {
            Ok(fd) => (fd, Kind::Raw),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) => {
                let fd = check(unsafe {
                    libc::socket(libc::AF_INET, libc::SOCK_DGRAM | flags, libc::IPPROTO_ICMP)
                })
                .map_err(|e2| {
                    io::Error::new(
                        e2.kind(),
                        format!(
                            "raw socket: {}; ICMP datagram socket: {} (run as root or widen \
                             net.ipv4.ping_group_range)",
                            crate::os_err_msg(&e),
                            crate::os_err_msg(&e2)
                        ),
                    )
                })?;
                (fd, Kind::Dgram)
            }
            Err(e) => return Err(e),
        };
        // SAFETY: fd was just returned by socket(2) and is not owned elsewhere.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if kind == Kind::Dgram {
            set_int(&fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)?;
            set_int(&fd, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
        }
        if let Some(t) = ttl {
            set_int(&fd, libc::IPPROTO_IP, libc::IP_TTL, t as libc::c_int)?;
        }
        Ok(IcmpSocket { fd, kind })
    }

    /// Sends an echo request to `dst`.
    pub fn send_echo(&self, dst: Ipv4Addr, id: u16, seq: u16, payload: usize) -> io::Result<()> {
        let pkt = echo_request(id, seq, payload);
        let sa = sockaddr(dst);
        let mut tries = 0;
        loop {
            // SAFETY: buffer and address are valid for the given lengths.
            let r = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    0,
                    (&sa as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            };
            if r >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            tries += 1;
            // A pending asynchronous error of an earlier packet is reported once; send again.
            if tries < 3
                && matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED) | Some(libc::EINTR)
                )
            {
                continue;
            }
            return Err(e);
        }
    }

    /// Waits until `deadline` for an event about our requests (`id`, to `dst`). Returns
    /// `Ok(None)` on timeout or when a signal interrupted the wait.
    pub fn recv(&self, deadline: Instant, id: u16, dst: Ipv4Addr) -> io::Result<Option<Event>> {
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let ms = (deadline - now).as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    return Ok(None);
                }
                return Err(e);
            }
            if r == 0 {
                continue;
            }
            if pfd.revents & libc::POLLERR != 0 && self.kind == Kind::Dgram {
                if let Some(ev) = self.read_errqueue()? {
                    return Ok(Some(ev));
                }
            }
            if pfd.revents & libc::POLLIN != 0 {
                match self.read(id, dst) {
                    Ok(Some(ev)) => return Ok(Some(ev)),
                    Ok(None) => {}
                    // Asynchronous errors (reported as packets too) and races: keep waiting.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EAGAIN)
                                | Some(libc::EINTR)
                                | Some(libc::ECONNREFUSED)
                                | Some(libc::EHOSTUNREACH)
                                | Some(libc::ENETUNREACH)
                                | Some(libc::EPROTO)
                                | Some(libc::EMSGSIZE)
                        ) => {}
                    Err(e) => return Err(e),
                }
            } else if pfd.revents & libc::POLLERR != 0 && self.kind == Kind::Raw {
                // Clear a pending socket error on the raw socket.
                let _ = self.read(id, dst);
            }
        }
    }

    /// recvmsg with MSG_DONTWAIT; returns bytes, source and the IP_TTL / IP_RECVERR data.
    fn recvmsg(&self, buf: &mut [u8], errqueue: bool) -> io::Result<Recv> {
        let mut cbuf = [0u64; 64];
        // SAFETY: plain data.
        let mut sa: libc::sockaddr_in = unsafe { zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: plain data; the pointers set below outlive the call.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_name = (&mut sa as *mut libc::sockaddr_in).cast();
        msg.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = size_of::<[u64; 64]>() as _;
        let flags = libc::MSG_DONTWAIT | if errqueue { libc::MSG_ERRQUEUE } else { 0 };
        // SAFETY: msg points at live buffers of the sizes given.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, flags) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Recv {
            len: n as usize,
            from: ip_of(&sa),
            ttl: None,
            err: None,
        };
        // SAFETY: we walk the control messages the kernel wrote into cbuf with the CMSG macros.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                let h = &*c;
                if h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_TTL {
                    let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                    out.ttl = u8::try_from(v).ok();
                } else if h.cmsg_level == libc::IPPROTO_IP && h.cmsg_type == libc::IP_RECVERR {
                    let ee_ptr = libc::CMSG_DATA(c) as *const libc::sock_extended_err;
                    let ee = std::ptr::read_unaligned(ee_ptr);
                    let off = libc::SO_EE_OFFENDER(ee_ptr) as *const libc::sockaddr_in;
                    let off = std::ptr::read_unaligned(off);
                    let from = if off.sin_family == libc::AF_INET as libc::sa_family_t {
                        ip_of(&off)
                    } else {
                        Ipv4Addr::UNSPECIFIED
                    };
                    out.err = Some((ee, from));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(out)
    }

    fn read(&self, id: u16, dst: Ipv4Addr) -> io::Result<Option<Event>> {
        let mut buf = [0u8; 4096];
        let r = self.recvmsg(&mut buf, false)?;
        let data = &buf[..r.len.min(buf.len())];
        Ok(match self.kind {
            Kind::Raw => parse_raw(data, id, dst),
            Kind::Dgram => parse_dgram(data, r.from, r.ttl),
        })
    }

    fn read_errqueue(&self) -> io::Result<Option<Event>> {
        let mut buf = [0u8; 4096];
        let r = match self.recvmsg(&mut buf, true) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => return Ok(None),
            Err(e) => return Err(e),
        };
        let data = &buf[..r.len.min(buf.len())];
        let Some((ee, from)) = r.err else {
            return Ok(None);
        };
        // The data is the echo request we sent.
        if data.len() < 8 || data[0] != 8 {
            return Ok(None);
        }
        let seq = u16::from_be_bytes([data[6], data[7]]);
        if ee.ee_origin == libc::SO_EE_ORIGIN_ICMP {
            Ok(Some(Event::Error {
                from,
                seq,
                icmp_type: ee.ee_type,
                code: ee.ee_code,
                info: ee.ee_info,
            }))
        } else if ee.ee_errno == libc::EMSGSIZE as u32 {
            Ok(Some(Event::Error {
                from,
                seq,
                icmp_type: 3,
                code: 4,
                info: ee.ee_info,
            }))
        } else {
            Ok(None)
        }
    }
}

struct Recv {
    len: usize,
    from: Ipv4Addr,
    ttl: Option<u8>,
    err: Option<(libc::sock_extended_err, Ipv4Addr)>,
}

/// Parses what a raw ICMP socket delivers: an IPv4 header then ICMP.
pub fn parse_raw(pkt: &[u8], id: u16, dst: Ipv4Addr) -> Option<Event> {
    let ihl = usize::from(pkt.first()? & 0x0f) * 4;
    if pkt.len() < ihl + 8 || ihl < 20 {
        return None;
    }
    let ttl = pkt[8];
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let icmp = &pkt[ihl..];
    match icmp[0] {
        0 => {
            let rid = u16::from_be_bytes([icmp[4], icmp[5]]);
            if rid != id {
                return None;
            }
            Some(Event::Reply {
                from: src,
                seq: u16::from_be_bytes([icmp[6], icmp[7]]),
                ttl: Some(ttl),
                bytes: icmp.len(),
            })
        }
        3 | 4 | 5 | 11 | 12 => {
            let inner = &icmp[8..];
            let iihl = usize::from(inner.first()? & 0x0f) * 4;
            if inner.len() < iihl + 8 || iihl < 20 || inner[9] != 1 {
                return None;
            }
            let idst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
            let orig = &inner[iihl..];
            if idst != dst || orig[0] != 8 || u16::from_be_bytes([orig[4], orig[5]]) != id {
                return None;
            }
            Some(Event::Error {
                from: src,
                seq: u16::from_be_bytes([orig[6], orig[7]]),
                icmp_type: icmp[0],
                code: icmp[1],
                info: u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
            })
        }
        _ => None,
    }
}

/// Parses what an ICMP datagram socket delivers: ICMP only (the kernel matched the id).
pub fn parse_dgram(icmp: &[u8], from: Ipv4Addr, ttl: Option<u8>) -> Option<Event> {
    if icmp.len() < 8 || icmp[0] != 0 {
        return None;
    }
    Some(Event::Reply {
        from,
        seq: u16::from_be_bytes([icmp[6], icmp[7]]),
        ttl,
        bytes: icmp.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&dst);
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn request_checksum_verifies() {
        let p = echo_request(0x1234, 7, 56);
        assert_eq!(p.len(), 64);
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn raw_reply_and_error() {
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let mut reply = echo_request(9, 3, 56);
        reply[0] = 0;
        let pkt = ipv4([10, 0, 0, 2], [10, 0, 0, 1], 1, &reply);
        assert_eq!(
            parse_raw(&pkt, 9, dst),
            Some(Event::Reply {
                from: dst,
                seq: 3,
                ttl: Some(64),
                bytes: 64
            })
        );
        assert_eq!(parse_raw(&pkt, 10, dst), None);
        let orig = ipv4(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            1,
            &echo_request(9, 4, 56)[..8],
        );
        let mut err = vec![3, 1, 0, 0, 0, 0, 0, 0];
        err.extend_from_slice(&orig);
        let pkt = ipv4([10, 0, 0, 254], [10, 0, 0, 1], 1, &err);
        assert_eq!(
            parse_raw(&pkt, 9, dst),
            Some(Event::Error {
                from: Ipv4Addr::new(10, 0, 0, 254),
                seq: 4,
                icmp_type: 3,
                code: 1,
                info: 0
            })
        );
        // Our own echo request seen on loopback is not an event.
        let pkt = ipv4([127, 0, 0, 1], [127, 0, 0, 1], 1, &echo_request(9, 1, 56));
        assert_eq!(parse_raw(&pkt, 9, Ipv4Addr::LOCALHOST), None);
    }
}
