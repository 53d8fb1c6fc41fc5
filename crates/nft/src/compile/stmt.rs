//! The statements of a rule: anonymous sets, numgen, marks, verdicts,
//! reject and NAT.

use std::net::Ipv4Addr;

use super::low::{self, Imm, Low, MetaKey, NatKind, SetTarget, REG_1, REG_2, REG_VERDICT};
use super::set::{self, KeySpec, SetSpec};
use super::{check_verdict, key_type, Compiler};
use crate::model::*;

/// `NFT_REJECT_ICMP_UNREACH`, `NFT_REJECT_TCP_RST`, `NFT_REJECT_ICMPX_UNREACH`
const REJECT_ICMP: u32 = 0;
const REJECT_TCP_RST: u32 = 1;
const REJECT_ICMPX: u32 = 2;
/// `NF_NAT_RANGE_PROTO_SPECIFIED`, `NF_NAT_RANGE_PROTO_RANDOM_FULLY`
const NAT_PROTO_SPECIFIED: u32 = 0x2;
pub(super) const NAT_RANDOM_FULLY: u32 = 0x10;

impl Compiler<'_> {
    pub(super) fn anon(
        &mut self,
        name: &str,
        kt: &KeyType,
        data: Option<&MapData>,
        elems: &[(&Value, Option<&Data>)],
    ) -> Result<SetTarget, String> {
        if elems.is_empty() {
            return Err("an anonymous set needs at least one element".into());
        }
        let interval = elems.iter().any(|(v, _)| v.is_interval());
        let flags = SetFlags {
            interval,
            constant: true,
            ..SetFlags::default()
        };
        let spec = set::build(name, kt, flags, data, elems, true)?;
        self.out.anon.push(spec);
        Ok(SetTarget::Anon(self.out.anon.len() - 1))
    }

    pub(super) fn numgen(&mut self, targets: &[Verdict]) -> Result<(), String> {
        if targets.is_empty() {
            return Err("numgen needs at least one target".into());
        }
        for t in targets {
            check_verdict(t)?;
        }
        let elements = targets
            .iter()
            .enumerate()
            .map(|(i, t)| set::Elem {
                key: (i as u32).to_ne_bytes().to_vec(),
                key_end: None,
                data: Some(set::ElemData::Verdict(t.clone())),
                end: false,
                open: false,
                expires_ms: None,
            })
            .collect();
        self.out.anon.push(SetSpec {
            name: "__map%d".into(),
            flags: set::SET_ANONYMOUS | set::SET_CONSTANT | set::SET_MAP,
            key: KeySpec::integer32(),
            data: Some(None),
            timeout_ms: None,
            elements,
        });
        let idx = self.out.anon.len() - 1;
        self.emit(Low::Numgen {
            dreg: REG_1,
            modulus: targets.len() as u32,
        });
        self.emit(Low::Lookup {
            sreg: REG_1,
            dreg: Some(REG_VERDICT),
            set: SetTarget::Anon(idx),
            invert: false,
        });
        Ok(())
    }

    pub(super) fn set_mark(&mut self, m: MarkSet) {
        match m {
            MarkSet::Value(v) => self.emit(Low::Immediate {
                dreg: REG_1,
                data: Imm::Value(v.to_ne_bytes().to_vec()),
            }),
            MarkSet::Or(v) | MarkSet::And(v) => {
                let (mask, xor) = match m {
                    MarkSet::Or(_) => (!v, v),
                    _ => (v, 0),
                };
                self.load(Field::Mark, REG_1);
                self.emit(Low::Bitwise {
                    sreg: REG_1,
                    dreg: REG_1,
                    mask: mask.to_ne_bytes().to_vec(),
                    xor: xor.to_ne_bytes().to_vec(),
                });
            }
        }
        self.emit(Low::MetaSet {
            key: MetaKey::Mark,
            sreg: REG_1,
        });
    }

    pub(super) fn verdict(&mut self, v: &Verdict) -> Result<(), String> {
        check_verdict(v)?;
        self.emit(Low::Immediate {
            dreg: REG_VERDICT,
            data: Imm::Verdict(v.clone()),
        });
        Ok(())
    }

    pub(super) fn reject(&mut self, r: Reject) {
        let (kind, code) = match r {
            Reject::PortUnreachable => (REJECT_ICMPX, 1),
            Reject::HostUnreachable => (REJECT_ICMPX, 2),
            Reject::AdminProhibited => (REJECT_ICMPX, 3),
            Reject::TcpReset => {
                self.need_l4(PROTO_TCP);
                (REJECT_TCP_RST, 0)
            }
            Reject::IcmpPortUnreachable => {
                self.need_nfproto();
                (REJECT_ICMP, 3)
            }
            Reject::IcmpAdminProhibited => {
                self.need_nfproto();
                (REJECT_ICMP, 13)
            }
        };
        self.emit(Low::Reject { kind, code });
    }

    pub(super) fn nat(&mut self, kind: NatKind, addr: Ipv4Addr, port: Option<u16>) {
        self.emit(Low::Immediate {
            dreg: REG_1,
            data: Imm::Value(addr.octets().to_vec()),
        });
        if let Some(p) = port {
            self.emit(Low::Immediate {
                dreg: REG_2,
                data: Imm::Value(p.to_be_bytes().to_vec()),
            });
        }
        self.emit(Low::Nat {
            kind,
            addr: Some(REG_1),
            proto: port.map(|_| REG_2),
            flags: port.map(|_| NAT_PROTO_SPECIFIED),
        });
    }

    pub(super) fn set_update(&mut self, key: &[Field], set: &str) -> Result<(), String> {
        let s = self
            .table
            .set(set)
            .ok_or_else(|| format!("set {set} is not in the table"))?;
        if !s.flags.dynamic {
            return Err(format!(
                "set {set} needs `flags dynamic` to be updated by rules"
            ));
        }
        if s.key != key_type(key)? {
            return Err(format!("set {set} has keys of type {}", s.key));
        }
        self.load_key(key)?;
        self.emit(Low::Dynset {
            sreg: REG_1,
            set: set.to_string(),
        });
        Ok(())
    }

    pub(super) fn dnat_map(&mut self, key: &[Field], map: &str) -> Result<(), String> {
        let m = self
            .table
            .map(map)
            .ok_or_else(|| format!("map {map} is not in the table"))?;
        let with_port = match &m.data {
            MapData::Value(KeyType::Ipv4Addr) => false,
            MapData::Value(KeyType::Concat(p))
                if p.as_slice() == [KeyType::Ipv4Addr, KeyType::InetService] =>
            {
                true
            }
            other => {
                return Err(format!(
                    "map {map} has data {other}; dnat needs ipv4_addr or ipv4_addr . inet_service"
                ))
            }
        };
        if m.key != key_type(key)? {
            return Err(format!("map {map} has keys of type {}", m.key));
        }
        self.load_key(key)?;
        self.emit(Low::Lookup {
            sreg: REG_1,
            dreg: Some(REG_1),
            set: SetTarget::Named(map.to_string()),
            invert: false,
        });
        self.emit(Low::Nat {
            kind: NatKind::Dnat,
            addr: Some(REG_1),
            proto: with_port.then_some(low::reg_at(1)),
            flags: None,
        });
        Ok(())
    }
}
