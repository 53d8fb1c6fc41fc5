//! The low-level nf_tables expressions a rule compiles to, one per kernel
//! expression. `Display` prints them like `nft --debug=netlink` does, so the
//! encodings can be compared with what nft itself produces.

use std::fmt::{self, Display, Formatter};

use crate::model::Verdict;

/// The verdict register.
pub(crate) const REG_VERDICT: u32 = 0;
/// The first 16-byte data register.
pub(crate) const REG_1: u32 = 1;
/// The second 16-byte data register.
pub(crate) const REG_2: u32 = 2;
/// The first 4-byte data register (`NFT_REG32_00`).
pub(crate) const REG32_00: u32 = 8;

/// The register nft uses for data at `word` (4-byte units) from the start of the
/// data registers: a 16-byte register when aligned on one, else a 4-byte one.
pub(crate) fn reg_at(word: u32) -> u32 {
    if word & 3 == 0 {
        REG_1 + word / 4
    } else {
        REG32_00 + word
    }
}

/// A `meta` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaKey {
    Mark = 3,
    Iifname = 6,
    Oifname = 7,
    Nfproto = 15,
    L4proto = 16,
}

impl MetaKey {
    fn name(self) -> &'static str {
        match self {
            MetaKey::Mark => "mark",
            MetaKey::Iifname => "iifname",
            MetaKey::Oifname => "oifname",
            MetaKey::Nfproto => "nfproto",
            MetaKey::L4proto => "l4proto",
        }
    }
}

/// Where a payload offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    Network = 1,
    Transport = 2,
}

/// A compare operator (`NFT_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq = 0,
    Neq = 1,
    Lte = 3,
    Gte = 5,
}

/// The set a lookup reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetTarget {
    /// A named set or map of the table.
    Named(String),
    /// The n-th anonymous set of the rule.
    Anon(usize),
}

/// The data an `immediate` loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Imm {
    Value(Vec<u8>),
    Verdict(Verdict),
}

/// NAT type (`NFT_NAT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NatKind {
    Snat = 0,
    Dnat = 1,
}

/// One kernel expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Low {
    Meta {
        key: MetaKey,
        dreg: u32,
    },
    MetaSet {
        key: MetaKey,
        sreg: u32,
    },
    Payload {
        base: Base,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    Cmp {
        sreg: u32,
        op: Cmp,
        data: Vec<u8>,
    },
    Bitwise {
        sreg: u32,
        dreg: u32,
        mask: Vec<u8>,
        xor: Vec<u8>,
    },
    Range {
        sreg: u32,
        neq: bool,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Lookup {
        sreg: u32,
        dreg: Option<u32>,
        set: SetTarget,
        invert: bool,
    },
    Immediate {
        dreg: u32,
        data: Imm,
    },
    Counter,
    CtState {
        dreg: u32,
    },
    Reject {
        kind: u32,
        code: u8,
    },
    Numgen {
        dreg: u32,
        modulus: u32,
    },
    Nat {
        kind: NatKind,
        addr: Option<u32>,
        proto: Option<u32>,
        flags: Option<u32>,
    },
    Masq {
        flags: Option<u32>,
    },
    Log {
        prefix: Option<String>,
    },
    /// `dynset` with the update operation on a named set.
    Dynset {
        sreg: u32,
        set: String,
    },
}

impl Low {
    /// The kernel's name of the expression.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Low::Meta { .. } | Low::MetaSet { .. } => "meta",
            Low::Payload { .. } => "payload",
            Low::Cmp { .. } => "cmp",
            Low::Bitwise { .. } => "bitwise",
            Low::Range { .. } => "range",
            Low::Lookup { .. } => "lookup",
            Low::Immediate { .. } => "immediate",
            Low::Counter => "counter",
            Low::CtState { .. } => "ct",
            Low::Reject { .. } => "reject",
            Low::Numgen { .. } => "numgen",
            Low::Nat { .. } => "nat",
            Low::Masq { .. } => "masq",
            Low::Log { .. } => "log",
            Low::Dynset { .. } => "dynset",
        }
    }
}

/// Data as nft's debug output shows it: 4-byte words read in host order.
pub(crate) struct Words<'a>(pub &'a [u8]);

impl Display for Words<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (i, chunk) in self.0.chunks(4).enumerate() {
            let mut w = [0u8; 4];
            w[..chunk.len()].copy_from_slice(chunk);
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "0x{:08x}", u32::from_ne_bytes(w))?;
        }
        Ok(())
    }
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Jump(c) => format!("jump -> {c}"),
        Verdict::Goto(c) => format!("goto -> {c}"),
        other => other.to_string(),
    }
}

impl Display for Low {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("[ ")?;
        match self {
            Low::Meta { key, dreg } => write!(f, "meta load {} => reg {dreg}", key.name())?,
            Low::MetaSet { key, sreg } => write!(f, "meta set {} with reg {sreg}", key.name())?,
            Low::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                let b = match base {
                    Base::Network => "network header",
                    Base::Transport => "transport header",
                };
                write!(f, "payload load {len}b @ {b} + {offset} => reg {dreg}")?
            }
            Low::Cmp { sreg, op, data } => {
                let o = match op {
                    Cmp::Eq => "eq",
                    Cmp::Neq => "neq",
                    Cmp::Lte => "lte",
                    Cmp::Gte => "gte",
                };
                write!(f, "cmp {o} reg {sreg} {}", Words(data))?
            }
            Low::Bitwise {
                sreg,
                dreg,
                mask,
                xor,
            } => write!(
                f,
                "bitwise reg {dreg} = ( reg {sreg} & {} ) ^ {}",
                Words(mask),
                Words(xor)
            )?,
            Low::Range {
                sreg,
                neq,
                from,
                to,
            } => {
                let o = if *neq { "neq" } else { "eq" };
                write!(f, "range {o} reg {sreg} {} {}", Words(from), Words(to))?
            }
            Low::Lookup {
                sreg,
                dreg,
                set,
                invert,
            } => {
                let name = match set {
                    SetTarget::Named(n) => n.clone(),
                    SetTarget::Anon(_) if dreg.is_some() => "__map%d".to_string(),
                    SetTarget::Anon(_) => "__set%d".to_string(),
                };
                write!(f, "lookup reg {sreg} set {name}")?;
                if let Some(d) = dreg {
                    write!(f, " dreg {d}")?;
                }
                if *invert {
                    f.write_str(" 0x1")?;
                }
            }
            Low::Immediate { dreg, data } => match data {
                Imm::Value(v) => write!(f, "immediate reg {dreg} {}", Words(v))?,
                Imm::Verdict(v) => write!(f, "immediate reg {dreg} {}", verdict_text(v))?,
            },
            Low::Counter => f.write_str("counter pkts 0 bytes 0")?,
            Low::CtState { dreg } => write!(f, "ct load state => reg {dreg}")?,
            Low::Reject { kind, code } => write!(f, "reject type {kind} code {code}")?,
            Low::Numgen { dreg, modulus } => write!(f, "numgen reg {dreg} = random mod {modulus}")?,
            Low::Nat {
                kind,
                addr,
                proto,
                flags,
            } => {
                let k = match kind {
                    NatKind::Snat => "snat",
                    NatKind::Dnat => "dnat",
                };
                write!(f, "nat {k} ip")?;
                if let Some(a) = addr {
                    write!(f, " addr_min reg {a}")?;
                }
                if let Some(p) = proto {
                    write!(f, " proto_min reg {p}")?;
                }
                if let Some(fl) = flags {
                    write!(f, " flags 0x{fl:x}")?;
                }
            }
            Low::Masq { flags } => {
                f.write_str("masq")?;
                if let Some(fl) = flags {
                    write!(f, " flags 0x{fl:x}")?;
                }
            }
            Low::Log { prefix } => {
                f.write_str("log")?;
                if let Some(p) = prefix {
                    write!(f, " prefix {p}")?;
                }
            }
            Low::Dynset { sreg, set } => write!(f, "dynset update reg_key {sreg} set {set}")?,
        }
        f.write_str(" ]")
    }
}
