//! Typed values: the key and data types of sets and maps, the values of
//! elements and matches, and verdicts.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// `icmp` protocol number.
pub const PROTO_ICMP: u8 = 1;
/// `tcp` protocol number.
pub const PROTO_TCP: u8 = 6;
/// `udp` protocol number.
pub const PROTO_UDP: u8 = 17;
/// `sctp` protocol number.
pub const PROTO_SCTP: u8 = 132;

/// The type of a set key or of map data, as nft names it (`type ipv4_addr`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// `ipv4_addr`: 4 bytes, network order.
    #[default]
    Ipv4Addr,
    /// `inet_proto`: a transport protocol number, 1 byte.
    InetProto,
    /// `inet_service`: a port, 2 bytes, network order.
    InetService,
    /// `ifname`: an interface name, 16 bytes.
    Ifname,
    /// `mark`: a packet mark, 4 bytes, host order.
    Mark,
    /// `icmp_type`: 1 byte.
    IcmpType,
    /// `icmp_code`: 1 byte.
    IcmpCode,
    /// A concatenation `a . b . c` (each part padded to 4 bytes). Parts are not
    /// concatenations themselves.
    Concat(Vec<KeyType>),
}

impl KeyType {
    /// The parts of a concatenation, or the type itself.
    pub fn parts(&self) -> &[KeyType] {
        match self {
            KeyType::Concat(parts) => parts,
            other => std::slice::from_ref(other),
        }
    }

    /// nft's name of a single (non-concatenated) type.
    pub fn nft_name(&self) -> &'static str {
        match self {
            KeyType::Ipv4Addr => "ipv4_addr",
            KeyType::InetProto => "inet_proto",
            KeyType::InetService => "inet_service",
            KeyType::Ifname => "ifname",
            KeyType::Mark => "mark",
            KeyType::IcmpType => "icmp_type",
            KeyType::IcmpCode => "icmp_code",
            KeyType::Concat(_) => "concat",
        }
    }
}

/// A value: an element of a set or map, or the right-hand side of a match.
///
/// Prefixes and ranges make an element an interval (the set needs
/// `flags interval`); in a match they compile to a masked or ranged compare.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv4 prefix, `10.0.0.0/8`.
    Ipv4Prefix(Ipv4Net),
    /// An inclusive IPv4 range, `10.0.0.1-10.0.0.9`.
    Ipv4Range(Ipv4Addr, Ipv4Addr),
    /// A transport protocol number (see [`PROTO_TCP`] and friends).
    Proto(u8),
    /// A port.
    Port(u16),
    /// An inclusive port range, `1000-2000`.
    PortRange(u16, u16),
    /// An interface name; in a match a trailing `*` makes it a wildcard (`"cali*"`).
    Ifname(String),
    /// A packet mark.
    Mark(u32),
    /// An ICMP type (8 is `echo-request`).
    IcmpType(u8),
    /// An ICMP code (3 is `port-unreachable`).
    IcmpCode(u8),
    /// A concatenation `10.96.0.1 . tcp . 80`.
    Concat(Vec<Value>),
}

impl Value {
    /// The type of the value (a prefix or range has the type of its addresses or ports).
    pub fn key_type(&self) -> KeyType {
        match self {
            Value::Ipv4(_) | Value::Ipv4Prefix(_) | Value::Ipv4Range(..) => KeyType::Ipv4Addr,
            Value::Proto(_) => KeyType::InetProto,
            Value::Port(_) | Value::PortRange(..) => KeyType::InetService,
            Value::Ifname(_) => KeyType::Ifname,
            Value::Mark(_) => KeyType::Mark,
            Value::IcmpType(_) => KeyType::IcmpType,
            Value::IcmpCode(_) => KeyType::IcmpCode,
            Value::Concat(parts) => KeyType::Concat(parts.iter().map(Value::key_type).collect()),
        }
    }

    /// True for a prefix or a range (or a concatenation holding one).
    pub fn is_interval(&self) -> bool {
        match self {
            Value::Ipv4Prefix(p) => p.prefix_len() < 32,
            Value::Ipv4Range(a, b) => a != b,
            Value::PortRange(a, b) => a != b,
            Value::Concat(parts) => parts.iter().any(Value::is_interval),
            _ => false,
        }
    }

    /// The parts of a concatenation, or the value itself.
    pub fn parts(&self) -> &[Value] {
        match self {
            Value::Concat(parts) => parts,
            other => std::slice::from_ref(other),
        }
    }
}

impl From<Ipv4Addr> for Value {
    fn from(a: Ipv4Addr) -> Value {
        Value::Ipv4(a)
    }
}

impl From<Ipv4Net> for Value {
    fn from(n: Ipv4Net) -> Value {
        Value::Ipv4Prefix(n)
    }
}

/// What a rule or a verdict map decides.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `accept`
    Accept,
    /// `drop`
    Drop,
    /// `return`: back to the calling chain.
    Return,
    /// `continue`: go on with the next rule.
    Continue,
    /// `jump CHAIN`: call a chain, come back on `return`.
    Jump(String),
    /// `goto CHAIN`: continue in a chain, never come back.
    Goto(String),
}

impl Verdict {
    /// The chain this verdict enters, if any.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }
}

/// The data type of a map: verdicts (a verdict map, `vmap`) or values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MapData {
    /// `: verdict`
    Verdict,
    /// `: ipv4_addr`, `: inet_service`, `: ipv4_addr . inet_service`, ...
    Value(KeyType),
}

/// The data of one map element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Data {
    /// For a verdict map.
    Verdict(Verdict),
    /// For a value map (no intervals).
    Value(Value),
}

impl From<Verdict> for Data {
    fn from(v: Verdict) -> Data {
        Data::Verdict(v)
    }
}

impl From<Value> for Data {
    fn from(v: Value) -> Data {
        Data::Value(v)
    }
}
