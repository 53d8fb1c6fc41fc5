//! Packet fields against nftables values: addresses in prefixes and ranges, ports in ranges,
//! interface wildcards, concatenated keys; a field the packet lacks matches nothing (as the
//! kernel's protocol dependency of `tcp dport` makes it).

use std::net::Ipv4Addr;

use weft_nft::{Field, Value};

use super::eval::Pkt;

/// A field's value in this packet; None when the packet has no such field.
#[derive(Clone, Copy, Debug)]
pub(super) enum Fv<'a> {
    Ip(Ipv4Addr),
    Proto(u8),
    Port(u16),
    Name(&'a str),
    Mark(u32),
    IcmpType(u8),
    IcmpCode(u8),
}

pub(super) fn field<'a>(p: &Pkt<'a>, mark: u32, f: Field) -> Option<Fv<'a>> {
    let ports = |tcp_udp_only: Option<u8>| match tcp_udp_only {
        Some(want) if p.proto != want => None,
        _ if !matches!(p.proto, 6 | 17 | 132) => None,
        _ => Some(()),
    };
    Some(match f {
        Field::Iifname => Fv::Name(p.iif?),
        Field::Oifname => Fv::Name(p.oif?),
        Field::IpSaddr => Fv::Ip(p.saddr),
        Field::IpDaddr => Fv::Ip(p.daddr),
        Field::L4Proto => Fv::Proto(p.proto),
        Field::TcpSport | Field::UdpSport | Field::ThSport => {
            ports(match f {
                Field::TcpSport => Some(6),
                Field::UdpSport => Some(17),
                _ => None,
            })?;
            Fv::Port(p.sport?)
        }
        Field::TcpDport | Field::UdpDport | Field::ThDport => {
            ports(match f {
                Field::TcpDport => Some(6),
                Field::UdpDport => Some(17),
                _ => None,
            })?;
            Fv::Port(p.dport?)
        }
        Field::IcmpType => Fv::IcmpType(p.icmp.filter(|_| p.proto == 1)?.0),
        Field::IcmpCode => Fv::IcmpCode(p.icmp.filter(|_| p.proto == 1)?.1),
        Field::Mark => Fv::Mark(mark),
        // A random number: only in the keys of maps (see the DNAT by map in `eval`).
        Field::Numgen(_) => return None,
    })
}

fn wildcard(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

pub(super) fn value_matches(fv: Fv, v: &Value) -> bool {
    match (fv, v) {
        (Fv::Ip(a), Value::Ipv4(b)) => a == *b,
        (Fv::Ip(a), Value::Ipv4Prefix(n)) => n.contains(&a),
        (Fv::Ip(a), Value::Ipv4Range(lo, hi)) => *lo <= a && a <= *hi,
        (Fv::Proto(a), Value::Proto(b)) => a == *b,
        (Fv::Port(a), Value::Port(b)) => a == *b,
        (Fv::Port(a), Value::PortRange(lo, hi)) => *lo <= a && a <= *hi,
        (Fv::Name(a), Value::Ifname(p)) => wildcard(p, a),
        (Fv::Mark(a), Value::Mark(b)) => a == *b,
        (Fv::IcmpType(a), Value::IcmpType(b)) => a == *b,
        (Fv::IcmpCode(a), Value::IcmpCode(b)) => a == *b,
        _ => false,
    }
}

pub(super) fn key_matches(key: &[Fv], element: &Value) -> bool {
    let parts = element.parts();
    parts.len() == key.len() && key.iter().zip(parts).all(|(k, v)| value_matches(*k, v))
}
