//! Message bodies: set elements, and rules with their expressions, as
//! nf_tables attributes.

use super::attr::Writer;
use super::consts::*;
use super::encode::udata;
use crate::compile::low::{Imm, Low, SetTarget};
use crate::compile::set::{Elem, ElemData};
use crate::compile::CompiledRule;
use crate::model::Verdict;

pub(crate) fn put_value(w: &mut Writer, ty: u16, bytes: &[u8]) {
    let n = w.open(ty);
    w.put(NFTA_DATA_VALUE, bytes);
    w.close(n);
}

pub(crate) fn put_verdict(w: &mut Writer, ty: u16, v: &Verdict) {
    let n = w.open(ty);
    let vn = w.open(NFTA_DATA_VERDICT);
    let code: i32 = match v {
        Verdict::Accept => NF_ACCEPT as i32,
        Verdict::Drop => NF_DROP as i32,
        Verdict::Continue => NFT_CONTINUE,
        Verdict::Return => NFT_RETURN,
        Verdict::Jump(_) => NFT_JUMP,
        Verdict::Goto(_) => NFT_GOTO,
    };
    w.put_u32(NFTA_VERDICT_CODE, code as u32);
    if let Some(c) = v.chain() {
        w.put_str(NFTA_VERDICT_CHAIN, c);
    }
    w.close(vn);
    w.close(n);
}

pub(crate) fn put_elem(w: &mut Writer, el: &Elem) {
    let n = w.open(NFTA_LIST_ELEM);
    if el.end {
        w.put_u32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
    }
    put_value(w, NFTA_SET_ELEM_KEY, &el.key);
    if let Some(ms) = el.expires_ms {
        w.put(NFTA_SET_ELEM_EXPIRATION, &ms.to_be_bytes());
    }
    if let Some(k) = &el.key_end {
        put_value(w, NFTA_SET_ELEM_KEY_END, k);
    }
    match &el.data {
        Some(ElemData::Verdict(v)) => put_verdict(w, NFTA_SET_ELEM_DATA, v),
        Some(ElemData::Value(b)) => put_value(w, NFTA_SET_ELEM_DATA, b),
        None => {}
    }
    if el.open {
        let mut ud = Vec::new();
        udata(
            &mut ud,
            UDATA_SET_ELEM_FLAGS,
            &UDATA_ELEM_INTERVAL_OPEN.to_ne_bytes(),
        );
        w.put(NFTA_SET_ELEM_USERDATA, &ud);
    }
    w.close(n);
}

/// The body of a NEWRULE message. Returns, for each expression, the offsets
/// (from the start of the message) where it begins and ends.
pub(crate) fn put_rule(
    w: &mut Writer,
    table: &str,
    chain: &str,
    rule: &CompiledRule,
    anon: &[(String, u32)],
    comment: Option<&str>,
) -> Vec<(usize, usize)> {
    let mut spans = Vec::with_capacity(rule.exprs.len());
    w.put_str(NFTA_RULE_TABLE, table);
    w.put_str(NFTA_RULE_CHAIN, chain);
    let list = w.open(NFTA_RULE_EXPRESSIONS);
    for x in &rule.exprs {
        let start = w.msg_offset();
        let el = w.open(NFTA_LIST_ELEM);
        w.put_str(NFTA_EXPR_NAME, x.name());
        let data = w.open(NFTA_EXPR_DATA);
        put_expr(w, x, anon);
        w.close(data);
        w.close(el);
        spans.push((start, w.msg_offset()));
    }
    w.close(list);
    if let Some(c) = comment {
        let mut ud = Vec::new();
        let mut v = c.as_bytes().to_vec();
        v.push(0);
        udata(&mut ud, UDATA_RULE_COMMENT, &v);
        w.put(NFTA_RULE_USERDATA, &ud);
    }
    spans
}

fn put_expr(w: &mut Writer, x: &Low, anon: &[(String, u32)]) {
    match x {
        Low::Meta { key, dreg } => {
            w.put_u32(NFTA_META_DREG, *dreg);
            w.put_u32(NFTA_META_KEY, *key as u32);
        }
        Low::MetaSet { key, sreg } => {
            w.put_u32(NFTA_META_KEY, *key as u32);
            w.put_u32(NFTA_META_SREG, *sreg);
        }
        Low::Payload {
            base,
            offset,
            len,
            dreg,
        } => {
            w.put_u32(NFTA_PAYLOAD_DREG, *dreg);
            w.put_u32(NFTA_PAYLOAD_BASE, *base as u32);
            w.put_u32(NFTA_PAYLOAD_OFFSET, *offset);
            w.put_u32(NFTA_PAYLOAD_LEN, *len);
        }
        Low::Cmp { sreg, op, data } => {
            w.put_u32(NFTA_CMP_SREG, *sreg);
            w.put_u32(NFTA_CMP_OP, *op as u32);
            put_value(w, NFTA_CMP_DATA, data);
        }
        Low::Bitwise {
            sreg,
            dreg,
            mask,
            xor,
        } => {
            w.put_u32(NFTA_BITWISE_SREG, *sreg);
            w.put_u32(NFTA_BITWISE_DREG, *dreg);
            w.put_u32(NFTA_BITWISE_LEN, mask.len() as u32);
            put_value(w, NFTA_BITWISE_MASK, mask);
            put_value(w, NFTA_BITWISE_XOR, xor);
        }
        Low::Range {
            sreg,
            neq,
            from,
            to,
        } => {
            w.put_u32(NFTA_RANGE_SREG, *sreg);
            w.put_u32(NFTA_RANGE_OP, u32::from(*neq));
            put_value(w, NFTA_RANGE_FROM_DATA, from);
            put_value(w, NFTA_RANGE_TO_DATA, to);
        }
        Low::Lookup {
            sreg,
            dreg,
            set,
            invert,
        } => {
            match set {
                SetTarget::Named(n) => w.put_str(NFTA_LOOKUP_SET, n),
                SetTarget::Anon(i) => {
                    let (name, id) = anon
                        .get(*i)
                        .map(|(n, id)| (n.as_str(), *id))
                        .unwrap_or(("__set%d", 0));
                    w.put_str(NFTA_LOOKUP_SET, name);
                    w.put_u32(NFTA_LOOKUP_SET_ID, id);
                }
            }
            w.put_u32(NFTA_LOOKUP_SREG, *sreg);
            if let Some(d) = dreg {
                w.put_u32(NFTA_LOOKUP_DREG, *d);
            }
            if *invert {
                w.put_u32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
            }
        }
        Low::Immediate { dreg, data } => {
            w.put_u32(NFTA_IMMEDIATE_DREG, *dreg);
            match data {
                Imm::Value(v) => put_value(w, NFTA_IMMEDIATE_DATA, v),
                Imm::Verdict(v) => put_verdict(w, NFTA_IMMEDIATE_DATA, v),
            }
        }
        Low::Counter => {}
        Low::CtState { dreg } => {
            w.put_u32(NFTA_CT_DREG, *dreg);
            w.put_u32(NFTA_CT_KEY, NFT_CT_STATE);
        }
        Low::Reject { kind, code } => {
            w.put_u32(NFTA_REJECT_TYPE, *kind);
            w.put_u8(NFTA_REJECT_ICMP_CODE, *code);
        }
        Low::Numgen { dreg, modulus } => {
            w.put_u32(NFTA_NG_DREG, *dreg);
            w.put_u32(NFTA_NG_MODULUS, *modulus);
            w.put_u32(NFTA_NG_TYPE, NFT_NG_RANDOM);
            w.put_u32(NFTA_NG_OFFSET, 0);
        }
        Low::Nat {
            kind,
            addr,
            proto,
            flags,
        } => {
            w.put_u32(NFTA_NAT_TYPE, *kind as u32);
            w.put_u32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4));
            if let Some(a) = addr {
                w.put_u32(NFTA_NAT_REG_ADDR_MIN, *a);
            }
            if let Some(p) = proto {
                w.put_u32(NFTA_NAT_REG_PROTO_MIN, *p);
            }
            if let Some(f) = flags {
                w.put_u32(NFTA_NAT_FLAGS, *f);
            }
        }
        Low::Masq { flags } => {
            if let Some(f) = flags {
                w.put_u32(NFTA_MASQ_FLAGS, *f);
            }
        }
        Low::Log { prefix } => {
            if let Some(p) = prefix {
                w.put_str(NFTA_LOG_PREFIX, p);
            }
        }
        Low::Dynset { sreg, set } => {
            w.put_str(NFTA_DYNSET_SET_NAME, set);
            w.put_u32(NFTA_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
            w.put_u32(NFTA_DYNSET_SREG_KEY, *sreg);
        }
    }
}
