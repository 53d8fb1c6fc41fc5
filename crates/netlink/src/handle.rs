//! The blocking rtnetlink socket: requests, ACKs, multipart dumps, extended ACKs.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP,
    NLMSG_OVERRUN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Context, Error, Result};
use crate::netns::{run_in_netns, Netns};

/// Size of a netlink message header.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// `NLM_F_CAPPED` on an error message: the request was not echoed back whole.
const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` on an error/done message: extended ACK attributes follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// `NLMSGERR_ATTR_MSG`: the kernel's error string.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// Initial receive buffer (grown on demand for larger datagrams).
const RECV_BUF: usize = 64 * 1024;
/// How often a dump is retried when the kernel flags it as interrupted.
const DUMP_TRIES: usize = 5;

/// A blocking `NETLINK_ROUTE` socket bound to the network namespace it was
/// created in, with its own sequence counter. Not `Sync`: one user at a time.
pub struct Handle {
    socket: Socket,
    seq: u32,
    pub(crate) rbuf: Vec<u8>,
    pub(crate) sbuf: Vec<u8>,
    strict: bool,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("fd", &self.socket.as_raw_fd())
            .field("seq", &self.seq)
            .finish()
    }
}

/// How a request ended.
enum Outcome {
    /// ACK, `NLMSG_DONE`, or the reply of a get.
    Done,
    /// The dump was interrupted by a concurrent change; it must be redone.
    Interrupted,
}

impl Handle {
    /// Opens a socket in the calling thread's network namespace.
    pub fn new() -> Result<Handle> {
        const OP: &str = "open netlink socket";
        let mut socket = Socket::new(NETLINK_ROUTE).ctx(OP, &"NETLINK_ROUTE")?;
        socket.bind_auto().ctx(OP, &"NETLINK_ROUTE")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .ctx(OP, &"NETLINK_ROUTE")?;
        // Best effort: shorter error replies with the kernel's explanation, and
        // kernel-side filtering of dumps.
        let _ = socket.set_cap_ack(true);
        let _ = socket.set_ext_ack(true);
        let strict = socket.set_netlink_get_strict_chk(true).is_ok();
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(Handle {
            socket,
            seq,
            rbuf: vec![0; RECV_BUF],
            sbuf: Vec::with_capacity(1024),
            strict,
        })
    }

    /// Opens a socket inside `ns` (on a short-lived thread); the socket keeps
    /// talking to that namespace.
    pub fn in_netns(ns: &Netns) -> Result<Handle> {
        run_in_netns(ns, Handle::new)?
    }

    /// Whether the kernel accepted strict checking (kernel-side dump filters).
    pub(crate) fn strict(&self) -> bool {
        self.strict
    }

    /// Sends a request with `NLM_F_ACK` and waits for the ACK. Returns the messages
    /// the kernel sent before it (get replies, `NLM_F_ECHO` copies).
    pub(crate) fn request(
        &mut self,
        op: &str,
        object: &dyn fmt::Display,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        self.serialize(msg, flags | NLM_F_REQUEST | NLM_F_ACK);
        self.exchange(op, object, &mut out)?;
        Ok(out)
    }

    /// Sends a dump request and collects every message until `NLMSG_DONE`,
    /// redoing the dump when the kernel reports it was interrupted.
    pub(crate) fn dump(
        &mut self,
        op: &str,
        object: &dyn fmt::Display,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.serialize(msg, NLM_F_REQUEST | NLM_F_DUMP);
        let mut out = Vec::new();
        for _ in 0..DUMP_TRIES {
            out.clear();
            if let Outcome::Done = self.exchange(op, object, &mut out)? {
                return Ok(out);
            }
        }
        Err(Error::from_errno(op, object.to_string(), libc::EINTR)
            .with_detail("the dump kept being interrupted by concurrent changes"))
    }

    pub(crate) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// Serialises `msg` into the send buffer (the sequence number is set on send).
    fn serialize(&mut self, msg: RouteNetlinkMessage, flags: u16) {
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        self.sbuf.clear();
        self.sbuf.resize(nl.buffer_len(), 0);
        nl.serialize(&mut self.sbuf);
    }

    /// Sends the send buffer with a fresh sequence number and reads the replies.
    fn exchange(
        &mut self,
        op: &str,
        object: &dyn fmt::Display,
        out: &mut Vec<RouteNetlinkMessage>,
    ) -> Result<Outcome> {
        let seq = self.next_seq();
        self.sbuf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.send().ctx(op, object)?;
        let mut interrupted = false;
        loop {
            let n = self.recv().ctx(op, object)?;
            for reply in replies(&self.rbuf[..n]) {
                let Reply {
                    ty,
                    flags,
                    seq: mseq,
                    msg,
                } = reply.map_err(|()| malformed(op, object))?;
                if mseq != seq {
                    // A late reply to an earlier request that was abandoned.
                    continue;
                }
                match ty {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR => {
                        let code = read_i32(msg, NLMSG_HDRLEN);
                        if code == 0 {
                            return Ok(Outcome::Done);
                        }
                        return Err(kernel_error(op, object, code, msg, flags, false));
                    }
                    NLMSG_DONE => {
                        let code = read_i32(msg, NLMSG_HDRLEN);
                        if code < 0 {
                            return Err(kernel_error(op, object, code, msg, flags, true));
                        }
                        if interrupted || flags & NLM_F_DUMP_INTR != 0 {
                            return Ok(Outcome::Interrupted);
                        }
                        return Ok(Outcome::Done);
                    }
                    NLMSG_OVERRUN => {
                        return Err(Error::from_errno(op, object.to_string(), libc::ENOBUFS))
                    }
                    _ => {
                        if flags & NLM_F_DUMP_INTR != 0 {
                            interrupted = true;
                        }
                        // Messages the library cannot decode are skipped rather
                        // than failing a whole dump.
                        if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) {
                            if let NetlinkPayload::InnerMessage(inner) = m.payload {
                                out.push(inner);
                            }
                        }
                    }
                }
            }
        }
    }

    pub(crate) fn send(&self) -> io::Result<()> {
        loop {
            match self.socket.send(&self.sbuf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram into the receive buffer, growing it when the
    /// datagram is larger, and returns its length.
    pub(crate) fn recv(&mut self) -> io::Result<usize> {
        let fd = self.socket.as_raw_fd();
        loop {
            // Peek at the size of the next datagram without copying it.
            // SAFETY: a zero-length receive into a null buffer with MSG_PEEK|MSG_TRUNC
            // only reports the datagram's size.
            let size = unsafe {
                libc::recv(
                    fd,
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_PEEK | libc::MSG_TRUNC,
                )
            };
            if size < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let size = size as usize;
            if size > self.rbuf.len() {
                self.rbuf.resize(size.next_power_of_two(), 0);
            }
            // SAFETY: the buffer is valid for writes of its whole length.
            let n = unsafe {
                libc::recv(
                    fd,
                    self.rbuf.as_mut_ptr().cast::<libc::c_void>(),
                    self.rbuf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(n as usize);
        }
    }
}

/// Reads a native-endian i32 at `at`, or 0 when the message is too short.
pub(crate) fn read_i32(msg: &[u8], at: usize) -> i32 {
    msg.get(at..at + 4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0)
}

/// Turns a negative kernel error code into an [`Error`], with the extended-ACK
/// message when there is one.
pub(crate) fn kernel_error(
    op: &str,
    object: &dyn fmt::Display,
    code: i32,
    msg: &[u8],
    flags: u16,
    done: bool,
) -> Error {
    let errno = code.checked_abs().unwrap_or(libc::EIO);
    let mut e = Error::from_errno(op, object.to_string(), errno);
    if flags & NLM_F_ACK_TLVS != 0 {
        if let Some(text) = ext_ack_message(msg, flags, done) {
            e = e.with_detail(text);
        }
    }
    e
}

/// Finds `NLMSGERR_ATTR_MSG` in an error or done message.
pub(crate) fn ext_ack_message(msg: &[u8], flags: u16, done: bool) -> Option<String> {
    // error: nlmsghdr, i32 code, the request's nlmsghdr (+ payload unless capped), TLVs
    // done:  nlmsghdr, i32 code, TLVs
    let mut at = NLMSG_HDRLEN + 4;
    if !done {
        let req = msg.get(at..at + NLMSG_HDRLEN)?;
        let req_len = u32::from_ne_bytes([req[0], req[1], req[2], req[3]]) as usize;
        at += if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            (req_len.max(NLMSG_HDRLEN) + 3) & !3
        };
    }
    while at + 4 <= msg.len() {
        let len = u16::from_ne_bytes([msg[at], msg[at + 1]]) as usize;
        let ty = u16::from_ne_bytes([msg[at + 2], msg[at + 3]]) & 0x3fff;
        if len < 4 || at + len > msg.len() {
            return None;
        }
        if ty == NLMSGERR_ATTR_MSG {
            let v = &msg[at + 4..at + len];
            let v = v.split(|&c| c == 0).next().unwrap_or(v);
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        at += (len + 3) & !3;
    }
    None
}

/// One netlink message of a received datagram: its header fields and its bytes.
pub(crate) struct Reply<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub msg: &'a [u8],
}

/// The messages of a received datagram, in order; `Err(())` (and the end) at a malformed
/// length field.
pub(crate) fn replies(buf: &[u8]) -> impl Iterator<Item = std::result::Result<Reply<'_>, ()>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + NLMSG_HDRLEN > buf.len() {
            return None;
        }
        let b = &buf[off..];
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            off = buf.len();
            return Some(Err(()));
        }
        off += (len + 3) & !3;
        Some(Ok(Reply {
            ty: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            msg: &b[..len],
        }))
    })
}

/// The error for a reply whose length fields do not add up.
pub(crate) fn malformed(op: &str, object: &dyn fmt::Display) -> Error {
    Error::other(op, object.to_string(), "malformed netlink reply")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(ty: u16, val: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + val.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(val);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn header(len: usize, ty: u16, flags: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&7u32.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v
    }

    #[test]
    fn ext_ack_from_capped_error() {
        let tlvs = nla(NLMSGERR_ATTR_MSG, b"Nexthop has invalid gateway\0");
        let flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
        let mut m = header(16 + 4 + 16 + tlvs.len(), NLMSG_ERROR, flags);
        m.extend_from_slice(&(-libc::EINVAL).to_ne_bytes());
        m.extend_from_slice(&header(40, 24, 0x405));
        m.extend_from_slice(&tlvs);
        assert_eq!(
            ext_ack_message(&m, flags, false).as_deref(),
            Some("Nexthop has invalid gateway")
        );
        let e = kernel_error("add route", &"10.0.0.0/24", -libc::EINVAL, &m, flags, false);
        assert_eq!(
            e.to_string(),
            "add route 10.0.0.0/24: Invalid argument (os error 22) (Nexthop has invalid gateway)"
        );
    }

    #[test]
    fn ext_ack_from_uncapped_error_and_done() {
        let tlvs = nla(NLMSGERR_ATTR_MSG, b"boom\0");
        // Uncapped: the whole 24-byte request follows the code.
        let mut m = header(0, NLMSG_ERROR, NLM_F_ACK_TLVS);
        m.extend_from_slice(&(-1i32).to_ne_bytes());
        m.extend_from_slice(&header(24, 16, 5));
        m.extend_from_slice(&[0u8; 8]);
        m.extend_from_slice(&tlvs);
        assert_eq!(
            ext_ack_message(&m, NLM_F_ACK_TLVS, false).as_deref(),
            Some("boom")
        );

        let mut d = header(0, NLMSG_DONE, NLM_F_ACK_TLVS);
        d.extend_from_slice(&(-2i32).to_ne_bytes());
        d.extend_from_slice(&tlvs);
        assert_eq!(
            ext_ack_message(&d, NLM_F_ACK_TLVS, true).as_deref(),
            Some("boom")
        );
        assert_eq!(ext_ack_message(&d[..20], NLM_F_ACK_TLVS, true), None);
    }

    #[test]
    fn replies_splits_a_datagram_and_stops_at_a_bad_length() {
        let mut d = Vec::new();
        for (ty, seq, body) in [(2u16, 7u32, 4usize), (3, 8, 1)] {
            let len = (NLMSG_HDRLEN + body) as u32;
            d.extend_from_slice(&len.to_ne_bytes());
            d.extend_from_slice(&ty.to_ne_bytes());
            d.extend_from_slice(&0u16.to_ne_bytes());
            d.extend_from_slice(&seq.to_ne_bytes());
            d.extend_from_slice(&0u32.to_ne_bytes());
            d.resize(d.len() + body, 0);
            while d.len() % 4 != 0 {
                d.push(0);
            }
        }
        let got: Vec<_> = replies(&d)
            .map(|r| r.map(|r| (r.ty, r.seq, r.msg.len())))
            .collect();
        assert_eq!(got, vec![Ok((2, 7, 20)), Ok((3, 8, 17))]);
        // A length past the end of the datagram is malformed, and ends the iteration.
        d[0] = 200;
        let got: Vec<_> = replies(&d).map(|r| r.is_ok()).collect();
        assert_eq!(got, vec![false]);
    }
}
