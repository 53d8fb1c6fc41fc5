//! Compiles the model to kernel form: each rule to nf_tables expressions (with
//! the protocol dependencies nft would add), each set and map to its kernel
//! type and elements. Pure computation, testable without a kernel.

pub(crate) mod low;
pub(crate) mod set;
mod stmt;

use crate::model::*;
use low::{Base, Cmp, Low, MetaKey, NatKind, SetTarget, REG_1, REG_VERDICT};
use set::{ifname_bytes, value_bytes, KeySpec, SetSpec};
use stmt::NAT_RANDOM_FULLY;

/// `NFPROTO_IPV4`
const NFPROTO_IPV4: u8 = 2;
/// Longest rule comment accepted.
pub(crate) const MAX_COMMENT: usize = 128;

/// A rule in kernel form.
#[derive(Debug, Clone, Default)]
pub(crate) struct CompiledRule {
    /// The kernel expressions.
    pub exprs: Vec<Low>,
    /// For each kernel expression, the index of the model expression it came from.
    pub origin: Vec<usize>,
    /// Anonymous sets the rule uses, created just before it.
    pub anon: Vec<SetSpec>,
}

/// What the rule has established so far (so dependencies are added once).
#[derive(Default)]
struct Ctx {
    nfproto: bool,
    l4: Option<u8>,
}

struct Compiler<'a> {
    table: &'a Table,
    ctx: Ctx,
    out: CompiledRule,
    cur: usize,
}

/// Compiles one rule of `table`. The error is the reason, without the rule's name.
pub(crate) fn compile_rule(table: &Table, rule: &Rule) -> Result<CompiledRule, String> {
    if let Some(c) = &rule.comment {
        if c.len() > MAX_COMMENT || c.contains('\0') || c.contains('"') {
            return Err(format!(
                "the comment must be at most {MAX_COMMENT} bytes without quotes or NUL"
            ));
        }
    }
    let mut c = Compiler {
        table,
        ctx: Ctx::default(),
        out: CompiledRule::default(),
        cur: 0,
    };
    for (i, e) in rule.exprs.iter().enumerate() {
        c.cur = i;
        c.expr(e).map_err(|r| format!("`{e}`: {r}"))?;
    }
    Ok(c.out)
}

/// Where a field's value comes from.
enum Source {
    Meta(MetaKey),
    Payload(Base, u32, u32),
    Numgen(u32),
}

fn source(field: Field) -> Source {
    match field {
        Field::Iifname => Source::Meta(MetaKey::Iifname),
        Field::Oifname => Source::Meta(MetaKey::Oifname),
        Field::L4Proto => Source::Meta(MetaKey::L4proto),
        Field::Mark => Source::Meta(MetaKey::Mark),
        Field::IpSaddr => Source::Payload(Base::Network, 12, 4),
        Field::IpDaddr => Source::Payload(Base::Network, 16, 4),
        Field::TcpSport | Field::UdpSport | Field::ThSport => {
            Source::Payload(Base::Transport, 0, 2)
        }
        Field::TcpDport | Field::UdpDport | Field::ThDport => {
            Source::Payload(Base::Transport, 2, 2)
        }
        Field::IcmpType => Source::Payload(Base::Transport, 0, 1),
        Field::IcmpCode => Source::Payload(Base::Transport, 1, 1),
        Field::Numgen(modulus) => Source::Numgen(modulus),
    }
}

fn field_len(field: Field) -> u32 {
    match source(field) {
        Source::Meta(MetaKey::Iifname | MetaKey::Oifname) => 16,
        Source::Meta(MetaKey::L4proto | MetaKey::Nfproto) => 1,
        Source::Meta(MetaKey::Mark) | Source::Numgen(_) => 4,
        Source::Payload(_, _, len) => len,
    }
}

/// The key type of a lookup key made of fields.
fn key_type(key: &[Field]) -> Result<KeyType, String> {
    match key {
        [] => Err("the key has no field".into()),
        [one] => Ok(one.key_type()),
        many => Ok(KeyType::Concat(many.iter().map(|f| f.key_type()).collect())),
    }
}

impl Compiler<'_> {
    fn emit(&mut self, e: Low) {
        self.out.exprs.push(e);
        self.out.origin.push(self.cur);
    }

    fn cmp(&mut self, op: Cmp, data: Vec<u8>) {
        self.emit(Low::Cmp {
            sreg: REG_1,
            op,
            data,
        });
    }

    fn need_nfproto(&mut self) {
        if !self.ctx.nfproto {
            self.emit(Low::Meta {
                key: MetaKey::Nfproto,
                dreg: REG_1,
            });
            self.cmp(Cmp::Eq, vec![NFPROTO_IPV4]);
            self.ctx.nfproto = true;
        }
    }

    fn need_l4(&mut self, p: u8) {
        if self.ctx.l4 != Some(p) {
            self.emit(Low::Meta {
                key: MetaKey::L4proto,
                dreg: REG_1,
            });
            self.cmp(Cmp::Eq, vec![p]);
            self.ctx.l4 = Some(p);
        }
    }

    /// The matches a field needs before it can be read (as nft adds them).
    fn deps(&mut self, field: Field) {
        match field {
            Field::IpSaddr | Field::IpDaddr => self.need_nfproto(),
            Field::IcmpType | Field::IcmpCode => {
                if self.ctx.l4 != Some(PROTO_ICMP) {
                    self.need_nfproto();
                    self.need_l4(PROTO_ICMP);
                }
            }
            f => {
                if let Some(p) = f.implied_l4proto() {
                    self.need_l4(p);
                }
            }
        }
    }

    fn load(&mut self, field: Field, dreg: u32) {
        match source(field) {
            Source::Meta(key) => self.emit(Low::Meta { key, dreg }),
            Source::Payload(base, offset, len) => self.emit(Low::Payload {
                base,
                offset,
                len,
                dreg,
            }),
            Source::Numgen(modulus) => self.emit(Low::Numgen { dreg, modulus }),
        }
    }

    /// Dependencies, then each field into consecutive registers (concatenation).
    fn load_key(&mut self, key: &[Field]) -> Result<(), String> {
        let kt = key_type(key)?;
        KeySpec::of(&kt)?;
        for f in key {
            self.deps(*f);
        }
        let mut word = 0;
        for f in key {
            self.load(*f, low::reg_at(word));
            word += set::pad4(field_len(*f)) / 4;
        }
        Ok(())
    }

    fn expr(&mut self, e: &Expr) -> Result<(), String> {
        match e {
            Expr::Match { field, op, value } => self.matches(*field, *op, value)?,
            Expr::Lookup { key, negate, set } => {
                let target = match set {
                    SetRef::Named(n) => {
                        if let Some(s) = self.table.set(n) {
                            if s.key != key_type(key)? {
                                return Err(format!("set {n} has keys of type {}", s.key));
                            }
                        }
                        SetTarget::Named(n.clone())
                    }
                    SetRef::Anonymous(values) => {
                        let kt = key_type(key)?;
                        let elems: Vec<_> = values.iter().map(|v| (v, None)).collect();
                        self.anon("__set%d", &kt, None, &elems)?
                    }
                };
                self.load_key(key)?;
                self.emit(Low::Lookup {
                    sreg: REG_1,
                    dreg: None,
                    set: target,
                    invert: *negate,
                });
            }
            Expr::Vmap { key, map } => {
                let target = match map {
                    MapRef::Named(n) => {
                        if let Some(m) = self.table.map(n) {
                            if m.data != MapData::Verdict || m.key != key_type(key)? {
                                return Err(format!(
                                    "map {n} is not a verdict map of {}",
                                    key_type(key)?
                                ));
                            }
                        }
                        SetTarget::Named(n.clone())
                    }
                    MapRef::Anonymous(items) => {
                        let kt = key_type(key)?;
                        let data: Vec<Data> = items
                            .iter()
                            .map(|(_, v)| Data::Verdict(v.clone()))
                            .collect();
                        let elems: Vec<_> = items
                            .iter()
                            .zip(&data)
                            .map(|((k, _), d)| (k, Some(d)))
                            .collect();
                        self.anon("__map%d", &kt, Some(&MapData::Verdict), &elems)?
                    }
                };
                self.load_key(key)?;
                self.emit(Low::Lookup {
                    sreg: REG_1,
                    dreg: Some(REG_VERDICT),
                    set: target,
                    invert: false,
                });
            }
            Expr::NumgenVmap { targets } => self.numgen(targets)?,
            Expr::NumgenIs { modulus, value } => {
                if *modulus == 0 || value >= modulus {
                    return Err("the value must be below the modulus (at least 1)".into());
                }
                self.emit(Low::Numgen {
                    dreg: REG_1,
                    modulus: *modulus,
                });
                self.cmp(Cmp::Eq, value.to_ne_bytes().to_vec());
            }
            Expr::CtState(states) => {
                if states.0 == 0 {
                    return Err("no conntrack state given".into());
                }
                self.emit(Low::CtState { dreg: REG_1 });
                self.emit(Low::Bitwise {
                    sreg: REG_1,
                    dreg: REG_1,
                    mask: states.0.to_ne_bytes().to_vec(),
                    xor: vec![0; 4],
                });
                self.cmp(Cmp::Neq, vec![0; 4]);
            }
            Expr::MarkMasked { mask, op, value } => {
                self.load(Field::Mark, REG_1);
                self.emit(Low::Bitwise {
                    sreg: REG_1,
                    dreg: REG_1,
                    mask: mask.to_ne_bytes().to_vec(),
                    xor: vec![0; 4],
                });
                self.cmp(cmp_op(*op), value.to_ne_bytes().to_vec());
            }
            Expr::SetMark(m) => self.set_mark(*m),
            Expr::Counter => self.emit(Low::Counter),
            Expr::Log { prefix } => {
                if let Some(p) = prefix {
                    if p.len() > 127 || p.contains(['\0', '"']) {
                        return Err("a log prefix is at most 127 bytes without quotes".into());
                    }
                }
                self.emit(Low::Log {
                    prefix: prefix.clone(),
                })
            }
            Expr::Verdict(v) => self.verdict(v)?,
            Expr::Reject(r) => self.reject(*r),
            Expr::Dnat { addr, port } => self.nat(NatKind::Dnat, *addr, *port),
            Expr::Snat { addr, port } => self.nat(NatKind::Snat, *addr, *port),
            Expr::DnatMap { key, map } => self.dnat_map(key, map)?,
            Expr::SetUpdate { key, set } => self.set_update(key, set)?,
            Expr::Masquerade { fully_random } => self.emit(Low::Masq {
                flags: fully_random.then_some(NAT_RANDOM_FULLY),
            }),
        }
        Ok(())
    }

    fn matches(&mut self, field: Field, op: CmpOp, value: &Value) -> Result<(), String> {
        set::check_type(value, &field.key_type())?;
        self.deps(field);
        let cop = cmp_op(op);
        match value {
            Value::Ifname(n) if n.ends_with('*') => {
                let stem = &n[..n.len() - 1];
                if stem.is_empty() || stem.len() > 15 || stem.contains(['\0', '*']) {
                    return Err(format!("bad interface wildcard {n:?}"));
                }
                self.load(field, REG_1);
                self.cmp(cop, stem.as_bytes().to_vec());
            }
            Value::Ifname(n) => {
                let b = ifname_bytes(n)?;
                self.load(field, REG_1);
                self.cmp(cop, b);
            }
            Value::Ipv4Prefix(p) if p.prefix_len() < 32 => {
                let (base, offset) = match source(field) {
                    Source::Payload(b, o, _) => (b, o),
                    Source::Meta(_) | Source::Numgen(_) => {
                        return Err("a prefix needs an address field".into())
                    }
                };
                let bits = u32::from(p.prefix_len());
                if bits == 0 {
                    return Err("a /0 prefix matches every address; leave the match out".into());
                }
                let net = p.network().octets();
                if bits % 8 == 0 {
                    let len = bits / 8;
                    self.emit(Low::Payload {
                        base,
                        offset,
                        len,
                        dreg: REG_1,
                    });
                    self.cmp(cop, net[..len as usize].to_vec());
                } else {
                    self.load(field, REG_1);
                    self.emit(Low::Bitwise {
                        sreg: REG_1,
                        dreg: REG_1,
                        mask: p.netmask().octets().to_vec(),
                        xor: vec![0; 4],
                    });
                    self.cmp(cop, net.to_vec());
                }
            }
            Value::Ipv4Range(a, b) if a != b => {
                self.range(field, op, a.octets().to_vec(), b.octets().to_vec(), a < b)?
            }
            Value::PortRange(a, b) if a != b => self.range(
                field,
                op,
                a.to_be_bytes().to_vec(),
                b.to_be_bytes().to_vec(),
                a < b,
            )?,
            other => {
                let b = value_bytes(other)?;
                self.load(field, REG_1);
                self.cmp(cop, b);
            }
        }
        if field == Field::L4Proto && op == CmpOp::Eq {
            if let Value::Proto(p) = value {
                self.ctx.l4 = Some(*p);
            }
        }
        Ok(())
    }

    fn range(
        &mut self,
        field: Field,
        op: CmpOp,
        from: Vec<u8>,
        to: Vec<u8>,
        ordered: bool,
    ) -> Result<(), String> {
        if !ordered {
            return Err("the range ends before it starts".into());
        }
        self.load(field, REG_1);
        match op {
            CmpOp::Eq => {
                self.cmp(Cmp::Gte, from);
                self.cmp(Cmp::Lte, to);
            }
            CmpOp::Neq => self.emit(Low::Range {
                sreg: REG_1,
                neq: true,
                from,
                to,
            }),
        }
        Ok(())
    }
}

fn cmp_op(op: CmpOp) -> Cmp {
    match op {
        CmpOp::Eq => Cmp::Eq,
        CmpOp::Neq => Cmp::Neq,
    }
}

/// Checks the chain name of a jump or goto.
fn check_verdict(v: &Verdict) -> Result<(), String> {
    match v.chain() {
        Some(c) if c.is_empty() || c.len() > 255 || c.contains('\0') => {
            Err(format!("bad chain name {c:?} in `{v}`"))
        }
        _ => Ok(()),
    }
}

/// The kernel form of every named set and map of the table, sets first.
pub(crate) fn compile_sets(table: &Table) -> Result<Vec<SetSpec>, crate::Error> {
    let mut out = Vec::with_capacity(table.sets.len() + table.maps.len());
    for s in &table.sets {
        check_name("set", &s.name)?;
        out.push(set::of_set(s).map_err(|r| crate::Error::invalid(format!("set {}", s.name), r))?);
    }
    for m in &table.maps {
        check_name("map", &m.name)?;
        out.push(set::of_map(m).map_err(|r| crate::Error::invalid(format!("map {}", m.name), r))?);
    }
    Ok(out)
}

/// Checks the name of a table, chain, set or map.
pub(crate) fn check_name(kind: &str, name: &str) -> Result<(), crate::Error> {
    if name.is_empty() || name.len() > 255 || name.contains('\0') || name.starts_with("__") {
        return Err(crate::Error::invalid(
            format!("{kind} {name:?}"),
            "names are 1-255 bytes, without NUL, and do not start with `__`",
        ));
    }
    Ok(())
}
