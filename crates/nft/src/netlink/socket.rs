//! A blocking `NETLINK_NETFILTER` socket: sends a whole batch in one
//! `sendmsg` (the kernel processes it synchronously), collects the errors the
//! kernel queued for it up to a barrier, and runs dumps.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::attr::{find, messages, Attrs, Msg, Writer, NLMSG_HDRLEN};
use super::consts::*;

/// Receive buffer of the socket (the kernel queues one error per refused
/// message of a batch; a large buffer keeps them all).
const RCVBUF: usize = 8 << 20;
/// Size of one `recv` (dump datagrams are at most 32 KiB).
const RECV_CHUNK: usize = 256 << 10;
/// Dumps are redone at most this often when interrupted by a change.
const DUMP_TRIES: usize = 5;

/// A kernel error answering one message of a batch.
#[derive(Debug, Clone)]
pub(crate) struct NlError {
    pub seq: u32,
    pub errno: i32,
    /// The kernel's extended-ACK message.
    pub msg: Option<String>,
    /// Offset (in the refused message) of the attribute at fault.
    pub offset: Option<u32>,
}

/// How a batch ended.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Errors, in the order the kernel sent them.
    pub errors: Vec<NlError>,
    /// The kernel dropped replies (receive buffer full): the batch failed but
    /// not every error is known.
    pub lost: bool,
}

/// A `NETLINK_NETFILTER` socket bound to the namespace it was opened in.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
    seq: u32,
    sndbuf: usize,
    rbuf: Vec<u8>,
}

fn last_err(op: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("{op}: {e}"))
}

fn setsockopt_int(fd: i32, level: i32, opt: i32, v: i32) -> io::Result<()> {
    // SAFETY: fd is an open socket; the option value is a valid int for its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sets a socket buffer size, beyond the sysctl limit when allowed (root).
fn set_buf(fd: i32, force: i32, plain: i32, size: usize) -> io::Result<()> {
    let v = size.min(i32::MAX as usize / 2) as i32;
    setsockopt_int(fd, libc::SOL_SOCKET, force, v)
        .or_else(|_| setsockopt_int(fd, libc::SOL_SOCKET, plain, v))
}

impl Socket {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(last_err("socket(AF_NETLINK, NETLINK_NETFILTER)"));
        }
        // SAFETY: raw is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_nl (port 0: the kernel assigns one) is valid.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: addr is a valid sockaddr_nl of the given size.
        let r = unsafe {
            libc::bind(
                raw,
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last_err("bind netlink socket"));
        }
        // Best effort: short error replies with the kernel's explanation.
        let _ = setsockopt_int(raw, libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let _ = setsockopt_int(raw, libc::SOL_NETLINK, NETLINK_EXT_ACK, 1);
        let _ = set_buf(raw, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, RCVBUF);
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() | 1)
            .unwrap_or(1);
        Ok(Socket {
            fd,
            seq,
            sndbuf: 0,
            rbuf: vec![0; RECV_CHUNK],
        })
    }

    /// The first sequence number the next [`Socket::reserve_seq`] returns.
    pub(crate) fn next_seq(&self) -> u32 {
        self.seq
    }

    /// Reserves `n` sequence numbers and returns the first.
    pub(crate) fn reserve_seq(&mut self, n: usize) -> u32 {
        let first = self.seq;
        self.seq = self.seq.wrapping_add(n as u32);
        first
    }

    /// Sends one datagram, growing the send buffer to fit it.
    fn send(&mut self, buf: &[u8]) -> io::Result<()> {
        let raw = self.fd.as_raw_fd();
        if buf.len() + 4096 > self.sndbuf {
            let want = (buf.len() + 65536).next_power_of_two();
            let _ = set_buf(raw, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, want);
            self.sndbuf = want;
        }
        // SAFETY: an all-zero sockaddr_nl addresses the kernel (port 0).
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as u16;
        loop {
            // SAFETY: buf and addr are valid for the given lengths.
            let n = unsafe {
                libc::sendto(
                    raw,
                    buf.as_ptr() as *const libc::c_void,
                    buf.len(),
                    0,
                    &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n as usize != buf.len() {
                return Err(io::Error::other(format!(
                    "sent {n} of {} bytes of a netlink batch",
                    buf.len()
                )));
            }
            return Ok(());
        }
    }

    /// Receives one datagram into the receive buffer; returns its length.
    fn recv(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: rbuf is valid for writes of its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.rbuf.as_mut_ptr() as *mut libc::c_void,
                    self.rbuf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = n as usize;
            if n > self.rbuf.len() {
                self.rbuf.resize(n.next_power_of_two(), 0);
                return Err(io::Error::other(format!(
                    "a netlink reply of {n} bytes was truncated"
                )));
            }
            return Ok(n);
        }
    }

    /// Sends a GETGEN request with an ACK: its answer follows every reply to
    /// what was sent before it.
    fn send_barrier(&mut self) -> io::Result<u32> {
        let seq = self.reserve_seq(1);
        let mut w = Writer::with_capacity(32);
        w.begin(
            nft_type(NFT_MSG_GETGEN),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            NFPROTO_UNSPEC,
            0,
        );
        w.end();
        self.send(&w.buf)?;
        Ok(seq)
    }

    /// Sends a batch and collects the kernel's errors for `seqs` (the batch's
    /// sequence numbers). No error and not lost: the transaction committed.
    pub(crate) fn transact(
        &mut self,
        batch: &[u8],
        seqs: std::ops::Range<u32>,
    ) -> io::Result<Outcome> {
        self.send(batch)?;
        let mut out = Outcome::default();
        let mut barrier = self.send_barrier()?;
        loop {
            let n = match self.recv() {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.lost = true;
                    barrier = self.send_barrier()?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut done = false;
            for m in messages(&self.rbuf[..n]) {
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let e = parse_error(&m);
                if m.seq == barrier {
                    done = true;
                } else if seqs.contains(&m.seq) && e.errno != 0 {
                    out.errors.push(e);
                }
            }
            if done {
                return Ok(out);
            }
        }
    }

    /// Sends a request with an ACK; returns the replies before the ACK, or the
    /// kernel's error.
    pub(crate) fn request(
        &mut self,
        build: impl FnOnce(&mut Writer, u32),
    ) -> io::Result<Result<Vec<Vec<u8>>, NlError>> {
        let seq = self.reserve_seq(1);
        let mut w = Writer::with_capacity(256);
        build(&mut w, seq);
        self.send(&w.buf)?;
        let mut replies = Vec::new();
        loop {
            let n = self.recv()?;
            for m in messages(&self.rbuf[..n]) {
                if m.seq != seq {
                    continue;
                }
                if m.ty == NLMSG_ERROR {
                    let e = parse_error(&m);
                    return Ok(if e.errno == 0 { Ok(replies) } else { Err(e) });
                }
                replies.push(m.payload.to_vec());
            }
        }
    }

    /// Runs a dump and hands each reply message to `each`. When a change
    /// interrupted it, the dump is redone from scratch: `each(None)` first.
    pub(crate) fn dump(
        &mut self,
        build: &dyn Fn(&mut Writer, u32),
        each: &mut dyn FnMut(Option<&Msg<'_>>),
    ) -> io::Result<Result<(), NlError>> {
        for _ in 0..DUMP_TRIES {
            each(None);
            let seq = self.reserve_seq(1);
            let mut w = Writer::with_capacity(256);
            build(&mut w, seq);
            self.send(&w.buf)?;
            let mut interrupted = false;
            'recv: loop {
                let n = self.recv()?;
                for m in messages(&self.rbuf[..n]) {
                    if m.seq != seq {
                        continue;
                    }
                    if m.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match m.ty {
                        NLMSG_DONE => break 'recv,
                        NLMSG_ERROR => {
                            let e = parse_error(&m);
                            if e.errno == 0 {
                                break 'recv;
                            }
                            return Ok(Err(e));
                        }
                        NLMSG_NOOP | NLMSG_OVERRUN => {}
                        _ => {
                            if !interrupted {
                                each(Some(&m));
                            }
                        }
                    }
                }
            }
            if !interrupted {
                return Ok(Ok(()));
            }
        }
        Err(io::Error::other(
            "the dump kept being interrupted by concurrent changes",
        ))
    }
}

/// Decodes an `NLMSG_ERROR` message: errno, and the extended-ACK attributes.
fn parse_error(m: &Msg<'_>) -> NlError {
    let p = m.payload;
    let code = p
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(-libc::EPROTO);
    let mut e = NlError {
        seq: m.seq,
        errno: -code,
        msg: None,
        offset: None,
    };
    if m.flags & NLM_F_ACK_TLVS == 0 {
        return e;
    }
    // After the code: the request's header, and its payload unless capped.
    let orig_len = p
        .get(4..8)
        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .unwrap_or(NLMSG_HDRLEN);
    let skip = if m.flags & NLM_F_CAPPED != 0 {
        4 + NLMSG_HDRLEN
    } else {
        4 + ((orig_len + 3) & !3)
    };
    let tlvs = Attrs(p.get(skip..).unwrap_or(&[]));
    e.msg = find(tlvs, NLMSGERR_ATTR_MSG).and_then(|a| a.str().map(str::to_string));
    e.offset = find(tlvs, NLMSGERR_ATTR_OFFS).and_then(|a| {
        a.data
            .get(..4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    });
    e
}
