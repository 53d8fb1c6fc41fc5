//! Netlink message and attribute encoding into one growing buffer, and a
//! parser of attributes. Small and allocation-free on the hot path: a batch of
//! tens of thousands of messages is written into one `Vec<u8>`.

use super::consts::NLA_F_NESTED;

/// Size of `struct nlmsghdr`.
pub(crate) const NLMSG_HDRLEN: usize = 16;
/// Size of `struct nfgenmsg`.
pub(crate) const NFGEN_LEN: usize = 4;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Writes netlink messages (header, `nfgenmsg`, attributes) into a buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
    msg_start: usize,
    /// Set when a nested attribute grew past 65535 bytes (unencodable).
    pub overflow: bool,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Writer {
        Writer {
            buf: Vec::with_capacity(n),
            msg_start: 0,
            overflow: false,
        }
    }

    /// Starts a message with an `nfgenmsg` header (version 0).
    pub(crate) fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) {
        self.msg_start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    /// Ends the current message (writes its length).
    pub(crate) fn end(&mut self) {
        let len = (self.buf.len() - self.msg_start) as u32;
        self.buf[self.msg_start..self.msg_start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Offset of the write position from the start of the current message.
    pub(crate) fn msg_offset(&self) -> usize {
        self.buf.len() - self.msg_start
    }

    /// Appends an attribute.
    pub(crate) fn put(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        if len > u16::MAX as usize {
            self.overflow = true;
        }
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// A NUL-terminated string attribute.
    pub(crate) fn put_str(&mut self, ty: u16, s: &str) {
        let len = 4 + s.len() + 1;
        if len > u16::MAX as usize {
            self.overflow = true;
        }
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.buf.resize(align4(self.buf.len()), 0);
    }

    /// A big-endian u32 attribute.
    pub(crate) fn put_u32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    /// A u8 attribute.
    pub(crate) fn put_u8(&mut self, ty: u16, v: u8) {
        self.put(ty, &[v]);
    }

    /// Opens a nested attribute; close it with [`Writer::close`].
    pub(crate) fn open(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    /// Closes a nested attribute opened at `at`.
    pub(crate) fn close(&mut self, at: usize) {
        let len = self.buf.len() - at;
        if len > u16::MAX as usize {
            self.overflow = true;
        }
        self.buf[at..at + 2].copy_from_slice(&(len as u16).to_ne_bytes());
    }

    /// Bytes written since `at`.
    pub(crate) fn since(&self, at: usize) -> usize {
        self.buf.len() - at
    }
}

/// One attribute: its type (without flags) and payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attr<'a> {
    pub ty: u16,
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The payload as a big-endian u32.
    pub(crate) fn u32_be(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.data.get(..4)?.try_into().ok()?))
    }

    /// The payload as a NUL-terminated string.
    pub(crate) fn str(&self) -> Option<&'a str> {
        let end = self
            .data
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.data.len());
        std::str::from_utf8(&self.data[..end]).ok()
    }

    /// The nested attributes.
    pub(crate) fn nested(&self) -> Attrs<'a> {
        Attrs(self.data)
    }
}

/// An iterator over a run of attributes. Stops at the first malformed one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attrs<'a>(pub &'a [u8]);

impl<'a> Iterator for Attrs<'a> {
    type Item = Attr<'a>;

    fn next(&mut self) -> Option<Attr<'a>> {
        let b = self.0;
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            self.0 = &[];
            return None;
        }
        let data = &b[4..len];
        self.0 = &b[align4(len).min(b.len())..];
        Some(Attr { ty, data })
    }
}

/// Finds the first attribute of type `ty`.
pub(crate) fn find(attrs: Attrs<'_>, ty: u16) -> Option<Attr<'_>> {
    attrs.into_iter().find(|a| a.ty == ty)
}

/// A parsed netlink message header and its payload (after the header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

impl<'a> Msg<'a> {
    /// The attributes after the `nfgenmsg` header.
    pub(crate) fn attrs(&self) -> Attrs<'a> {
        Attrs(self.payload.get(NFGEN_LEN..).unwrap_or(&[]))
    }
}

/// Splits a datagram into messages. Stops at the first malformed one.
pub(crate) fn messages(mut buf: &[u8]) -> Vec<Msg<'_>> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        out.push(Msg {
            ty: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: &buf[NLMSG_HDRLEN..len],
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    out
}
