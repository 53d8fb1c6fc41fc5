//! A tiny DNS message encoder/decoder (RFC 1035): header, questions, and resource records with
//! A, PTR and CNAME data decoded (others kept raw). Names are written uncompressed and read with
//! compression pointers followed (with loop protection).

use std::fmt;
use std::net::Ipv4Addr;

/// Record type A (IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type CNAME (canonical name).
pub const TYPE_CNAME: u16 = 5;
/// Record type PTR (domain name pointer, reverse lookups).
pub const TYPE_PTR: u16 = 12;
/// Record type AAAA (IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Class IN (Internet).
pub const CLASS_IN: u16 = 1;

/// Response code: no error.
pub const RCODE_NOERROR: u8 = 0;
/// Response code: format error.
pub const RCODE_FORMERR: u8 = 1;
/// Response code: server failure.
pub const RCODE_SERVFAIL: u8 = 2;
/// Response code: name does not exist.
pub const RCODE_NXDOMAIN: u8 = 3;
/// Response code: not implemented.
pub const RCODE_NOTIMP: u8 = 4;
/// Response code: refused.
pub const RCODE_REFUSED: u8 = 5;

/// A malformed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsError(pub String);

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed DNS message: {}", self.0)
    }
}

impl std::error::Error for DnsError {}

/// A question: name, type and class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Domain name without the trailing dot.
    pub name: String,
    /// Query type (e.g. [`TYPE_A`]).
    pub qtype: u16,
    /// Query class (normally [`CLASS_IN`]).
    pub qclass: u16,
}

/// The data of a resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// A domain name pointer.
    Ptr(String),
    /// A canonical name.
    Cname(String),
    /// Any other type, raw.
    Other(Vec<u8>),
}

/// A resource record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name without the trailing dot.
    pub name: String,
    /// Record type.
    pub rtype: u16,
    /// Record class.
    pub class: u16,
    /// Time to live in seconds.
    pub ttl: u32,
    /// The data.
    pub data: RData,
}

/// A whole DNS message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Transaction id.
    pub id: u16,
    /// True for a response.
    pub response: bool,
    /// Operation code (0 = query).
    pub opcode: u8,
    /// Authoritative answer.
    pub authoritative: bool,
    /// Truncated: retry over TCP.
    pub truncated: bool,
    /// Recursion desired.
    pub recursion_desired: bool,
    /// Recursion available.
    pub recursion_available: bool,
    /// Response code ([`RCODE_NXDOMAIN`] etc.).
    pub rcode: u8,
    /// Question section.
    pub questions: Vec<Question>,
    /// Answer section.
    pub answers: Vec<Record>,
    /// Authority section.
    pub authorities: Vec<Record>,
    /// Additional section.
    pub additionals: Vec<Record>,
}

impl Message {
    /// A recursive query for `name` of type `qtype` (class IN).
    pub fn query(id: u16, name: &str, qtype: u16) -> Message {
        Message {
            id,
            recursion_desired: true,
            questions: vec![Question {
                name: name.trim_end_matches('.').to_string(),
                qtype,
                qclass: CLASS_IN,
            }],
            ..Message::default()
        }
    }

    /// Encodes the message in wire format.
    pub fn encode(&self) -> Result<Vec<u8>, DnsError> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(&self.id.to_be_bytes());
        let flags: u16 = (u16::from(self.response) << 15)
            | (u16::from(self.opcode & 0x0f) << 11)
            | (u16::from(self.authoritative) << 10)
            | (u16::from(self.truncated) << 9)
            | (u16::from(self.recursion_desired) << 8)
            | (u16::from(self.recursion_available) << 7)
            | u16::from(self.rcode & 0x0f);
        out.extend_from_slice(&flags.to_be_bytes());
        for n in [
            self.questions.len(),
            self.answers.len(),
            self.authorities.len(),
            self.additionals.len(),
        ] {
            let n = u16::try_from(n).map_err(|_| DnsError("too many records".into()))?;
            out.extend_from_slice(&n.to_be_bytes());
        }
        for q in &self.questions {
            encode_name(&mut out, &q.name)?;
            out.extend_from_slice(&q.qtype.to_be_bytes());
            out.extend_from_slice(&q.qclass.to_be_bytes());
        }
        for r in self
            .answers
            .iter()
            .chain(&self.authorities)
            .chain(&self.additionals)
        {
            encode_name(&mut out, &r.name)?;
            out.extend_from_slice(&r.rtype.to_be_bytes());
            out.extend_from_slice(&r.class.to_be_bytes());
            out.extend_from_slice(&r.ttl.to_be_bytes());
            let mut data = Vec::new();
            match &r.data {
                RData::A(ip) => data.extend_from_slice(&ip.octets()),
                RData::Ptr(n) | RData::Cname(n) => encode_name(&mut data, n)?,
                RData::Other(b) => data.extend_from_slice(b),
            }
            let len = u16::try_from(data.len()).map_err(|_| DnsError("rdata too long".into()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&data);
        }
        Ok(out)
    }

    /// Decodes a message from wire format.
    pub fn decode(buf: &[u8]) -> Result<Message, DnsError> {
        let mut r = Reader { buf, pos: 0 };
        let id = r.u16()?;
        let flags = r.u16()?;
        let counts = [r.u16()?, r.u16()?, r.u16()?, r.u16()?];
        let mut m = Message {
            id,
            response: flags & 0x8000 != 0,
            opcode: ((flags >> 11) & 0x0f) as u8,
            authoritative: flags & 0x0400 != 0,
            truncated: flags & 0x0200 != 0,
            recursion_desired: flags & 0x0100 != 0,
            recursion_available: flags & 0x0080 != 0,
            rcode: (flags & 0x0f) as u8,
            ..Message::default()
        };
        for _ in 0..counts[0] {
            let name = r.name()?;
            let qtype = r.u16()?;
            let qclass = r.u16()?;
            m.questions.push(Question {
                name,
                qtype,
                qclass,
            });
        }
        for (i, n) in counts[1..].iter().enumerate() {
            for _ in 0..*n {
                let rec = r.record()?;
                match i {
                    0 => m.answers.push(rec),
                    1 => m.authorities.push(rec),
                    _ => m.additionals.push(rec),
                }
            }
        }
        Ok(m)
    }
}

/// The reverse-lookup name of an address: `4.3.2.1.in-addr.arpa` for 1.2.3.4.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let o = ip.octets();
    format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
}

/// A text name for a response code, as resolvers print it.
pub fn rcode_name(rcode: u8) -> &'static str {
    match rcode {
        RCODE_NOERROR => "NOERROR",
        RCODE_FORMERR => "FORMERR",
        RCODE_SERVFAIL => "SERVFAIL",
        RCODE_NXDOMAIN => "NXDOMAIN",
        RCODE_NOTIMP => "NOTIMP",
        RCODE_REFUSED => "REFUSED",
        _ => "UNKNOWN",
    }
}

fn encode_name(out: &mut Vec<u8>, name: &str) -> Result<(), DnsError> {
    let name = name.trim_end_matches('.');
    let mut total = 1;
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(DnsError(format!("bad label in name '{name}'")));
            }
            total += label.len() + 1;
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
    }
    if total > 255 {
        return Err(DnsError(format!("name '{name}' longer than 255 bytes")));
    }
    out.push(0);
    Ok(())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DnsError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| DnsError(format!("truncated at offset {}", self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a name at the current position, following compression pointers.
    fn name(&mut self) -> Result<String, DnsError> {
        let (name, end) = read_name(self.buf, self.pos)?;
        self.pos = end;
        Ok(name)
    }

    fn record(&mut self) -> Result<Record, DnsError> {
        let name = self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let len = usize::from(self.u16()?);
        let start = self.pos;
        let raw = self.take(len)?;
        let data = match rtype {
            TYPE_A if len == 4 => RData::A(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
            TYPE_PTR | TYPE_CNAME => {
                let (n, end) = read_name(self.buf, start)?;
                if end > start + len {
                    return Err(DnsError("name overruns its record".into()));
                }
                if rtype == TYPE_PTR {
                    RData::Ptr(n)
                } else {
                    RData::Cname(n)
                }
            }
            _ => RData::Other(raw.to_vec()),
        };
        Ok(Record {
            name,
            rtype,
            class,
            ttl,
            data,
        })
    }
}

/// Reads a name starting at `pos`; returns it and the offset just after it (after the first
/// pointer, if any).
fn read_name(buf: &[u8], mut pos: usize) -> Result<(String, usize), DnsError> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *buf
            .get(pos)
            .ok_or_else(|| DnsError(format!("name truncated at offset {pos}")))?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    let after = end.unwrap_or(pos + 1);
                    return Ok((labels.join("."), after));
                }
                let l = usize::from(len);
                let s = buf
                    .get(pos + 1..pos + 1 + l)
                    .ok_or_else(|| DnsError(format!("label truncated at offset {pos}")))?;
                labels.push(String::from_utf8_lossy(s).into_owned());
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *buf
                    .get(pos + 1)
                    .ok_or_else(|| DnsError("pointer truncated".into()))?;
                if end.is_none() {
                    end = Some(pos + 2);
                }
                jumps += 1;
                if jumps > 64 {
                    return Err(DnsError("compression pointer loop".into()));
                }
                pos = (usize::from(len & 0x3f) << 8) | usize::from(lo);
            }
            _ => return Err(DnsError(format!("bad label type at offset {pos}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut m = Message::query(0x1234, "web1.default.svc.cluster.local.", TYPE_A);
        m.response = true;
        m.recursion_available = true;
        m.answers.push(Record {
            name: "web1.default.svc.cluster.local".into(),
            rtype: TYPE_CNAME,
            class: CLASS_IN,
            ttl: 30,
            data: RData::Cname("web1.example".into()),
        });
        m.answers.push(Record {
            name: "web1.example".into(),
            rtype: TYPE_A,
            class: CLASS_IN,
            ttl: 30,
            data: RData::A(Ipv4Addr::new(10, 244, 1, 3)),
        });
        m.additionals.push(Record {
            name: reverse_name(Ipv4Addr::new(10, 244, 1, 3)),
            rtype: TYPE_PTR,
            class: CLASS_IN,
            ttl: 5,
            data: RData::Ptr("web1".into()),
        });
        let wire = m.encode().unwrap();
        let back = Message::decode(&wire).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.questions[0].name, "web1.default.svc.cluster.local");
    }

    #[test]
    fn compression_pointers() {
        // Header: id 7, response, 1 question, 1 answer.
        let mut b = vec![0, 7, 0x81, 0x83, 0, 1, 0, 1, 0, 0, 0, 0];
        b.extend_from_slice(b"\x03foo\x07example\x00\x00\x01\x00\x01");
        // Answer: name = pointer to offset 12, type A, class IN, ttl 60, len 4.
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
        let m = Message::decode(&b).unwrap();
        assert_eq!(m.rcode, RCODE_NXDOMAIN);
        assert!(m.response && m.recursion_desired && m.recursion_available);
        assert_eq!(m.answers[0].name, "foo.example");
        assert_eq!(m.answers[0].data, RData::A(Ipv4Addr::new(1, 2, 3, 4)));
    }

    #[test]
    fn rejects_garbage() {
        assert!(Message::decode(&[0, 1, 2]).is_err());
        // A pointer to itself.
        let mut b = vec![0, 7, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(Message::decode(&b).is_err());
        assert!(Message::query(1, &"a".repeat(64), TYPE_A).encode().is_err());
    }

    #[test]
    fn reverse() {
        assert_eq!(
            reverse_name(Ipv4Addr::new(10, 0, 0, 2)),
            "2.0.0.10.in-addr.arpa"
        );
    }
}
