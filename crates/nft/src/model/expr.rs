//! The expression vocabulary of a rule: matches, lookups, verdict maps, and the
//! statements (counter, log, mark, NAT, verdicts). Each compiles to a few
//! nf_tables expressions; each prints like `nft list` prints it.

use std::net::Ipv4Addr;
use std::ops::BitOr;

use super::value::{KeyType, Value, Verdict};

/// A packet field that can be matched, looked up or used as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `iifname`: the input interface name.
    Iifname,
    /// `oifname`: the output interface name.
    Oifname,
    /// `ip saddr` (implies IPv4).
    IpSaddr,
    /// `ip daddr` (implies IPv4).
    IpDaddr,
    /// `meta l4proto`: the transport protocol.
    L4Proto,
    /// `tcp sport` (implies TCP).
    TcpSport,
    /// `tcp dport` (implies TCP).
    TcpDport,
    /// `udp sport` (implies UDP).
    UdpSport,
    /// `udp dport` (implies UDP).
    UdpDport,
    /// `th sport`: the source port of any transport header.
    ThSport,
    /// `th dport`: the destination port of any transport header.
    ThDport,
    /// `icmp type` (implies IPv4 ICMP).
    IcmpType,
    /// `icmp code` (implies IPv4 ICMP).
    IcmpCode,
    /// `meta mark`: the packet mark.
    Mark,
    /// `numgen random mod N`: a fresh random number below N (4 bytes, host order, like a
    /// mark), as part of a map's key: `dnat ip to ip daddr . numgen random mod 2 map @m`
    /// picks one of two elements at random.
    Numgen(u32),
}

impl Field {
    /// The type of the field's values.
    pub fn key_type(self) -> KeyType {
        match self {
            Field::Iifname | Field::Oifname => KeyType::Ifname,
            Field::IpSaddr | Field::IpDaddr => KeyType::Ipv4Addr,
            Field::L4Proto => KeyType::InetProto,
            Field::TcpSport
            | Field::TcpDport
            | Field::UdpSport
            | Field::UdpDport
            | Field::ThSport
            | Field::ThDport => KeyType::InetService,
            Field::IcmpType => KeyType::IcmpType,
            Field::IcmpCode => KeyType::IcmpCode,
            Field::Mark | Field::Numgen(_) => KeyType::Mark,
        }
    }

    /// How nft names the field (`ip saddr`).
    pub fn nft_name(self) -> &'static str {
        match self {
            Field::Iifname => "iifname",
            Field::Oifname => "oifname",
            Field::IpSaddr => "ip saddr",
            Field::IpDaddr => "ip daddr",
            Field::L4Proto => "meta l4proto",
            Field::TcpSport => "tcp sport",
            Field::TcpDport => "tcp dport",
            Field::UdpSport => "udp sport",
            Field::UdpDport => "udp dport",
            Field::ThSport => "th sport",
            Field::ThDport => "th dport",
            Field::IcmpType => "icmp type",
            Field::IcmpCode => "icmp code",
            Field::Mark => "meta mark",
            Field::Numgen(_) => "numgen random mod",
        }
    }

    /// The transport protocol the field implies (`tcp dport` implies tcp).
    pub fn implied_l4proto(self) -> Option<u8> {
        match self {
            Field::TcpSport | Field::TcpDport => Some(super::value::PROTO_TCP),
            Field::UdpSport | Field::UdpDport => Some(super::value::PROTO_UDP),
            Field::IcmpType | Field::IcmpCode => Some(super::value::PROTO_ICMP),
            _ => None,
        }
    }
}

/// Equal or not equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CmpOp {
    /// Matches when equal (or inside the prefix, range, wildcard).
    #[default]
    Eq,
    /// Matches when not equal (`!=`).
    Neq,
}

/// The set a lookup searches: a named set of the table (`@name`) or an
/// anonymous set written inline (`{ 22, 80 }`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SetRef {
    /// `@name`
    Named(String),
    /// `{ a, b, ... }`
    Anonymous(Vec<Value>),
}

/// The verdict map a `vmap` consults: named (`@name`) or inline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MapRef {
    /// `@name`
    Named(String),
    /// `{ key : verdict, ... }`
    Anonymous(Vec<(Value, Verdict)>),
}

/// Conntrack states, a bit mask (`ct state established,related`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CtStates(pub u32);

impl CtStates {
    /// `invalid`
    pub const INVALID: CtStates = CtStates(1);
    /// `established`
    pub const ESTABLISHED: CtStates = CtStates(2);
    /// `related`
    pub const RELATED: CtStates = CtStates(4);
    /// `new`
    pub const NEW: CtStates = CtStates(8);
    /// `untracked`
    pub const UNTRACKED: CtStates = CtStates(64);

    /// The names of the states, in nft's order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::INVALID, "invalid"),
            (Self::ESTABLISHED, "established"),
            (Self::RELATED, "related"),
            (Self::NEW, "new"),
            (Self::UNTRACKED, "untracked"),
        ]
        .into_iter()
        .filter(|(s, _)| self.0 & s.0 != 0)
        .map(|(_, n)| n)
        .collect()
    }
}

impl BitOr for CtStates {
    type Output = CtStates;
    fn bitor(self, rhs: CtStates) -> CtStates {
        CtStates(self.0 | rhs.0)
    }
}

/// How `meta mark set` computes the new mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkSet {
    /// `meta mark set 0x00004000`
    Value(u32),
    /// `meta mark set meta mark | 0x00004000` (set bits)
    Or(u32),
    /// `meta mark set meta mark & 0xffffbfff` (keep bits)
    And(u32),
}

/// How `reject` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reject {
    /// `reject`: answer with an ICMP (or ICMPv6) port unreachable (icmpx).
    #[default]
    PortUnreachable,
    /// `reject with icmpx admin-prohibited`
    AdminProhibited,
    /// `reject with icmpx host-unreachable`
    HostUnreachable,
    /// `reject with tcp reset` (implies TCP: `meta l4proto tcp` is added and shown
    /// unless the rule already matched TCP).
    TcpReset,
    /// `reject with icmp port-unreachable` (IPv4 only)
    IcmpPortUnreachable,
    /// `reject with icmp admin-prohibited` (IPv4 only)
    IcmpAdminProhibited,
}

/// One element of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Expr {
    /// `FIELD VALUE` or `FIELD != VALUE`: the value may be a prefix or range of
    /// addresses, a range of ports, or an interface wildcard (`"cali*"`).
    Match {
        /// What is compared.
        field: Field,
        /// `==` or `!=`.
        op: CmpOp,
        /// With what.
        value: Value,
    },
    /// `FIELD @set`, `FIELD . FIELD @set`, `FIELD { a, b }`, `FIELD != @set`.
    Lookup {
        /// The key: one field, or several for a concatenation.
        key: Vec<Field>,
        /// True for `!=` (match when not in the set).
        negate: bool,
        /// The set.
        set: SetRef,
    },
    /// `KEY vmap @map` / `KEY vmap { k : verdict }`: the verdict of the element
    /// the key finds; no element, no verdict (the next rule runs).
    Vmap {
        /// The key: one field, or several for a concatenation.
        key: Vec<Field>,
        /// The verdict map.
        map: MapRef,
    },
    /// `numgen random mod N vmap { 0 : t0, 1 : t1, ... }`: one of the targets at
    /// random, evenly (N = number of targets).
    NumgenVmap {
        /// The verdicts to choose from.
        targets: Vec<Verdict>,
    },
    /// `numgen random mod M V`: matches when a fresh random number below `M` is
    /// `V`. A cascade `mod N 0`, `mod N-1 0`, ..., `mod 2 0`, then the last
    /// target, spreads evenly without sets: unlike [`Expr::NumgenVmap`], whose
    /// anonymous map per rule costs the kernel time that grows with the square
    /// of their number in one transaction (thousands of services).
    NumgenIs {
        /// The modulus `M` (at least 1).
        modulus: u32,
        /// The value matched, below `M`.
        value: u32,
    },
    /// `ct state a,b`: matches when the connection is in any of the states.
    CtState(CtStates),
    /// `meta mark & MASK == VALUE` / `meta mark & MASK != VALUE`.
    MarkMasked {
        /// Bits compared.
        mask: u32,
        /// `==` or `!=`.
        op: CmpOp,
        /// Expected value of those bits.
        value: u32,
    },
    /// `meta mark set ...`
    SetMark(MarkSet),
    /// `counter`
    Counter,
    /// `log` / `log prefix "..."`
    Log {
        /// Text put before each logged packet.
        prefix: Option<String>,
    },
    /// `accept`, `drop`, `jump c`, `goto c`, `return`, `continue`.
    Verdict(Verdict),
    /// `reject ...` (ends the rule).
    Reject(Reject),
    /// `dnat ip to ADDR[:PORT]` (a port needs a transport protocol match earlier
    /// in the rule for `nft` to accept it; the kernel does not care).
    Dnat {
        /// New destination address.
        addr: Ipv4Addr,
        /// New destination port.
        port: Option<u16>,
    },
    /// `dnat ip to KEY map @map`: the destination (address, or `address . port`)
    /// found in a map of the table.
    DnatMap {
        /// The key: one field, or several for a concatenation.
        key: Vec<Field>,
        /// A named map with data `ipv4_addr` or `ipv4_addr . inet_service`.
        map: String,
    },
    /// `snat ip to ADDR[:PORT]`
    Snat {
        /// New source address.
        addr: Ipv4Addr,
        /// New source port.
        port: Option<u16>,
    },
    /// `update @set { KEY }`: adds the key to a dynamic set of the table, or
    /// refreshes its timeout when it is already there.
    SetUpdate {
        /// The key: one field, or several for a concatenation.
        key: Vec<Field>,
        /// A named set with `flags dynamic`.
        set: String,
    },
    /// `masquerade` / `masquerade fully-random`
    Masquerade {
        /// Pick source ports fully at random.
        fully_random: bool,
    },
}

impl Expr {
    /// `FIELD VALUE`
    pub fn eq(field: Field, value: impl Into<Value>) -> Expr {
        Expr::Match {
            field,
            op: CmpOp::Eq,
            value: value.into(),
        }
    }

    /// `FIELD != VALUE`
    pub fn ne(field: Field, value: impl Into<Value>) -> Expr {
        Expr::Match {
            field,
            op: CmpOp::Neq,
            value: value.into(),
        }
    }

    /// `iifname "NAME"` (a trailing `*` is a wildcard).
    pub fn iifname(name: &str) -> Expr {
        Expr::eq(Field::Iifname, Value::Ifname(name.to_string()))
    }

    /// `oifname "NAME"` (a trailing `*` is a wildcard).
    pub fn oifname(name: &str) -> Expr {
        Expr::eq(Field::Oifname, Value::Ifname(name.to_string()))
    }

    /// `ip saddr VALUE` (an address, a prefix or a range).
    pub fn ip_saddr(value: impl Into<Value>) -> Expr {
        Expr::eq(Field::IpSaddr, value)
    }

    /// `ip daddr VALUE` (an address, a prefix or a range).
    pub fn ip_daddr(value: impl Into<Value>) -> Expr {
        Expr::eq(Field::IpDaddr, value)
    }

    /// `meta l4proto PROTO`
    pub fn l4proto(proto: u8) -> Expr {
        Expr::eq(Field::L4Proto, Value::Proto(proto))
    }

    /// `tcp dport PORT`
    pub fn tcp_dport(port: u16) -> Expr {
        Expr::eq(Field::TcpDport, Value::Port(port))
    }

    /// `udp dport PORT`
    pub fn udp_dport(port: u16) -> Expr {
        Expr::eq(Field::UdpDport, Value::Port(port))
    }

    /// `icmp type TYPE`
    pub fn icmp_type(t: u8) -> Expr {
        Expr::eq(Field::IcmpType, Value::IcmpType(t))
    }

    /// `KEY @set`
    pub fn in_set(key: &[Field], set: &str) -> Expr {
        Expr::Lookup {
            key: key.to_vec(),
            negate: false,
            set: SetRef::Named(set.to_string()),
        }
    }

    /// `KEY != @set`
    pub fn not_in_set(key: &[Field], set: &str) -> Expr {
        Expr::Lookup {
            key: key.to_vec(),
            negate: true,
            set: SetRef::Named(set.to_string()),
        }
    }

    /// `KEY vmap @map`
    pub fn vmap(key: &[Field], map: &str) -> Expr {
        Expr::Vmap {
            key: key.to_vec(),
            map: MapRef::Named(map.to_string()),
        }
    }

    /// `ct state STATES`
    pub fn ct_state(states: CtStates) -> Expr {
        Expr::CtState(states)
    }

    /// `counter`
    pub fn counter() -> Expr {
        Expr::Counter
    }

    /// `log prefix "PREFIX"`
    pub fn log(prefix: &str) -> Expr {
        Expr::Log {
            prefix: Some(prefix.to_string()),
        }
    }

    /// `accept`
    pub fn accept() -> Expr {
        Expr::Verdict(Verdict::Accept)
    }

    /// `drop`
    pub fn drop() -> Expr {
        Expr::Verdict(Verdict::Drop)
    }

    /// `return`
    pub fn ret() -> Expr {
        Expr::Verdict(Verdict::Return)
    }

    /// `jump CHAIN`
    pub fn jump(chain: &str) -> Expr {
        Expr::Verdict(Verdict::Jump(chain.to_string()))
    }

    /// `goto CHAIN`
    pub fn goto(chain: &str) -> Expr {
        Expr::Verdict(Verdict::Goto(chain.to_string()))
    }

    /// `dnat ip to ADDR[:PORT]`
    pub fn dnat(addr: Ipv4Addr, port: Option<u16>) -> Expr {
        Expr::Dnat { addr, port }
    }

    /// `update @SET { KEY }`
    pub fn set_update(key: &[Field], set: &str) -> Expr {
        Expr::SetUpdate {
            key: key.to_vec(),
            set: set.to_string(),
        }
    }

    /// `masquerade`
    pub fn masquerade() -> Expr {
        Expr::Masquerade {
            fully_random: false,
        }
    }
}
