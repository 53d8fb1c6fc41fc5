//! Decoding captured frames: Ethernet, IPv4, and enough of ICMP, TCP and UDP to tell the
//! probe's packets from everything else.

use std::net::Ipv4Addr;

/// What the transport header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    /// ICMP echo request (8) or reply (0).
    Echo {
        ty: u8,
        id: u16,
    },
    /// An ICMP error quoting the packet that caused it (its addresses and ports / echo id).
    Error {
        ty: u8,
        code: u8,
        quoted: Option<Quoted>,
    },
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Other,
}

/// The header an ICMP error quotes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quoted {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// Ports for TCP/UDP, the echo id (twice) for ICMP.
    pub a: u16,
    pub b: u16,
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub proto: u8,
    pub len: u16,
    pub l4: L4,
    /// The frame inside a VXLAN packet (UDP to port 4789).
    pub inner: Option<Box<Frame>>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn ip4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    let s = b.get(at..at + 4)?;
    Some(Ipv4Addr::new(s[0], s[1], s[2], s[3]))
}

fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    Some((be16(l4, 0)?, be16(l4, 2)?))
}

/// Decodes an Ethernet frame carrying IPv4; None for anything else (ARP, IPv6, runts).
pub fn parse(b: &[u8]) -> Option<Frame> {
    let mut dst_mac = [0u8; 6];
    let mut src_mac = [0u8; 6];
    dst_mac.copy_from_slice(b.get(0..6)?);
    src_mac.copy_from_slice(b.get(6..12)?);
    if be16(b, 12)? != 0x0800 {
        return None;
    }
    let ip = b.get(14..)?;
    let ihl = usize::from(*ip.first()? & 0x0f) * 4;
    if *ip.first()? >> 4 != 4 || ihl < 20 {
        return None;
    }
    let proto = *ip.get(9)?;
    let l4b = ip.get(ihl..)?;
    let l4 = match proto {
        1 => {
            let ty = *l4b.first()?;
            let code = *l4b.get(1)?;
            match ty {
                0 | 8 => L4::Echo {
                    ty,
                    id: be16(l4b, 4)?,
                },
                3 | 11 | 12 => L4::Error {
                    ty,
                    code,
                    quoted: quoted(l4b.get(8..)?),
                },
                _ => L4::Other,
            }
        }
        6 => {
            let (sport, dport) = ports(l4b)?;
            L4::Tcp {
                sport,
                dport,
                flags: *l4b.get(13)?,
            }
        }
        17 => {
            let (sport, dport) = ports(l4b)?;
            L4::Udp { sport, dport }
        }
        _ => L4::Other,
    };
    // UDP header (8) and VXLAN header (8), then the encapsulated Ethernet frame.
    let inner = match l4 {
        L4::Udp { dport, .. } if dport == weft_model::VXLAN_PORT => {
            l4b.get(16..).and_then(parse).map(Box::new)
        }
        _ => None,
    };
    Some(Frame {
        src_mac,
        dst_mac,
        src: ip4(ip, 12)?,
        dst: ip4(ip, 16)?,
        ttl: *ip.get(8)?,
        proto,
        len: be16(ip, 2)?,
        l4,
        inner,
    })
}

fn quoted(inner: &[u8]) -> Option<Quoted> {
    let ihl = usize::from(*inner.first()? & 0x0f) * 4;
    let proto = *inner.get(9)?;
    let l4 = inner.get(ihl..)?;
    let (a, b) = match proto {
        1 => (be16(l4, 4)?, be16(l4, 4)?),
        _ => ports(l4)?,
    };
    Some(Quoted {
        src: ip4(inner, 12)?,
        dst: ip4(inner, 16)?,
        proto,
        a,
        b,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_is_decoded_and_arp_is_not() {
        let mut f = vec![0xee; 6];
        f.extend([2, 0, 0, 0, 0, 1]);
        f.extend([0x08, 0x00]);
        f.extend([0x45, 0, 0, 84, 0, 0, 0x40, 0, 63, 1, 0, 0]);
        f.extend([10, 244, 0, 1, 10, 244, 0, 64]);
        f.extend([8, 0, 0, 0, 0x12, 0x34, 0, 1]);
        let p = parse(&f).expect("IPv4 frame");
        assert_eq!(p.src, Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(p.ttl, 63);
        assert_eq!(p.len, 84);
        assert_eq!(p.l4, L4::Echo { ty: 8, id: 0x1234 });
        // The same frame inside VXLAN.
        let mut v = vec![2, 0, 0, 0, 0, 12, 2, 0, 0, 0, 0, 11, 0x08, 0x00];
        let total = (20 + 8 + 8 + f.len()) as u16;
        v.extend([
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            17,
            0,
            0,
        ]);
        v.extend([198, 51, 100, 11, 198, 51, 100, 12]);
        v.extend([0x9c, 0x40, 0x12, 0xb5, 0, 0, 0, 0]);
        v.extend([0x08, 0, 0, 0, 0, 0x10, 0, 0]);
        v.extend(&f);
        let o = parse(&v).expect("outer");
        assert_eq!(
            o.l4,
            L4::Udp {
                sport: 40000,
                dport: 4789
            }
        );
        assert_eq!(o.inner.as_deref(), Some(&p));
        let mut arp = f.clone();
        arp[12] = 0x08;
        arp[13] = 0x06;
        assert!(parse(&arp).is_none());
    }
}
