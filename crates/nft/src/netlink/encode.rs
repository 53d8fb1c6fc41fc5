//! Encodes a table into one nfnetlink batch: BATCH_BEGIN, NEWTABLE + DELTABLE +
//! NEWTABLE (create if missing, flush, create again: an atomic replace),
//! chains, sets and their elements (in bulk messages), anonymous sets and
//! rules, BATCH_END. Each message has its own sequence number, so a kernel
//! error names the object it refused.

use super::attr::Writer;
use super::consts::*;
use super::exprs::put_elem;
use crate::compile::set::{SetSpec, BYTEORDER_NONE};
use crate::compile::{self, check_name};
use crate::fasthash::FastSet;
use crate::model::{ChainKind, Family, Hook, Policy, Table};
use crate::{Error, Result};

/// Bytes of elements per NEWSETELEM message (a nested attribute holds < 64 KiB).
const ELEMS_PER_MSG_BYTES: usize = 60_000;

/// What a message of a batch creates (to name it in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Obj {
    Begin,
    End,
    Table,
    DelTable,
    /// A chain of the new table (index in `chains`).
    Chain(usize),
    /// A set or map of the new table (index in sets, then maps).
    Set(usize),
    Elements(usize),
    AnonSet {
        chain: usize,
        rule: usize,
    },
    Rule {
        chain: usize,
        rule: usize,
    },
    /// Removal of the rules of a chain (of the old table when `old`).
    Flush {
        chain: usize,
        old: bool,
    },
    /// Removal of a chain / set of the old table.
    DelChain(usize),
    DelSet(usize),
    /// Removal of elements of a set of the new table.
    DelElements(usize),
}

/// An encoded batch and the object of each of its messages.
#[derive(Debug)]
pub(crate) struct Batch {
    pub buf: Vec<u8>,
    pub first_seq: u32,
    pub objs: Vec<Obj>,
    /// Anonymous sets were named by us (fresh table), not by the kernel.
    pub fixed_anon_names: bool,
}

impl Batch {
    /// The object of the message with sequence number `seq`.
    pub(crate) fn obj(&self, seq: u32) -> Option<Obj> {
        let i = seq.checked_sub(self.first_seq)? as usize;
        self.objs.get(i).copied()
    }

    /// The number of messages, BATCH_BEGIN and BATCH_END included.
    pub(crate) fn len(&self) -> usize {
        self.objs.len()
    }
}

/// The nfproto number of a family.
pub(crate) fn nfproto(f: Family) -> u8 {
    match f {
        Family::Inet => NFPROTO_INET,
        Family::Ip => NFPROTO_IPV4,
        Family::Ip6 => NFPROTO_IPV6,
    }
}

/// A batch being encoded.
pub(crate) struct Enc {
    pub w: Writer,
    seq: u32,
    first: u32,
    objs: Vec<Obj>,
    family: u8,
    next_set_id: u32,
    /// The table is created by this batch: we name anonymous sets ourselves.
    /// Otherwise (an update) the kernel names them, and chains and sets are
    /// created exclusively (a name that exists is an error, not an update).
    fresh: bool,
}

impl Enc {
    pub(crate) fn new(first_seq: u32, family: u8, capacity: usize, fresh: bool) -> Enc {
        Enc {
            w: Writer::with_capacity(capacity),
            seq: first_seq,
            first: first_seq,
            objs: Vec::new(),
            family,
            next_set_id: 1,
            fresh,
        }
    }

    pub(crate) fn begin(&mut self, msg: u16, flags: u16, obj: Obj) {
        self.w.begin(
            nft_type(msg),
            NLM_F_REQUEST | flags,
            self.seq,
            self.family,
            0,
        );
        self.objs.push(obj);
        self.seq = self.seq.wrapping_add(1);
    }

    /// Flags of a message creating a chain or set.
    fn create_flags(&self) -> u16 {
        if self.fresh {
            NLM_F_CREATE
        } else {
            NLM_F_CREATE | NLM_F_EXCL
        }
    }

    pub(crate) fn batch_marker(&mut self, ty: u16, obj: Obj) {
        self.w.begin(
            ty,
            NLM_F_REQUEST,
            self.seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.w.end();
        self.objs.push(obj);
        self.seq = self.seq.wrapping_add(1);
    }

    pub(crate) fn finish(mut self) -> Result<Batch> {
        self.batch_marker(NFNL_MSG_BATCH_END, Obj::End);
        Ok(Batch {
            buf: self.w.buf,
            first_seq: self.first,
            objs: self.objs,
            fixed_anon_names: self.fresh,
        })
    }

    pub(crate) fn end(&mut self, what: impl FnOnce() -> String) -> Result<()> {
        self.w.end();
        if self.w.overflow {
            return Err(Error::invalid(
                what(),
                "too large for one netlink attribute (64 KiB); split it",
            ));
        }
        Ok(())
    }
}

/// A batch that deletes a table.
pub(crate) fn encode_delete(family: Family, name: &str, first_seq: u32) -> Result<Batch> {
    check_name("table", name)?;
    let mut e = Enc::new(first_seq, nfproto(family), 256, false);
    e.batch_marker(NFNL_MSG_BATCH_BEGIN, Obj::Begin);
    e.begin(NFT_MSG_DELTABLE, 0, Obj::DelTable);
    e.w.put_str(NFTA_TABLE_NAME, name);
    e.end(|| format!("table {name}"))?;
    e.finish()
}

/// A batch that replaces `table` whole.
#[cfg(test)]
pub(crate) fn encode_table(table: &Table, first_seq: u32) -> Result<Batch> {
    encode_table_keeping(table, first_seq, &[])
}

/// Elements the packet path added to a dynamic set: the set's name, and each
/// element's key (as the kernel holds it) with the milliseconds it has left.
pub(crate) type Carried = (String, Vec<(Vec<u8>, u64)>);

/// [`encode_table`], with the elements of dynamic sets `carry` put back into
/// the new table (a full replace keeps what the packet path learned, such as
/// session affinity), each expiring when it would have.
pub(crate) fn encode_table_keeping(
    table: &Table,
    first_seq: u32,
    carry: &[Carried],
) -> Result<Batch> {
    check_name("table", &table.name)?;
    if table.family != Family::Inet {
        return Err(Error::invalid(
            format!("table {} {}", table.family.nft_name(), table.name),
            "only inet tables can be programmed",
        ));
    }
    check_unique(table)?;
    let mut sets = compile::compile_sets(table)?;
    for (name, elems) in carry {
        if let Some(s) = sets
            .iter_mut()
            .find(|s| &s.name == name && s.flags & compile::set::SET_EVAL != 0)
        {
            let cap = s.timeout_ms.unwrap_or(u64::MAX);
            s.elements.extend(
                elems
                    .iter()
                    .filter(|(k, _)| k.len() == s.key.len as usize)
                    .map(|(k, ms)| compile::set::Elem::carried(k.clone(), (*ms).clamp(1, cap))),
            );
        }
    }
    let (_, rules, _, elements) = table.size();
    let mut e = Enc::new(
        first_seq,
        nfproto(table.family),
        4096 + rules * 200 + elements * 40,
        true,
    );
    let t = table.name.as_str();

    e.batch_marker(NFNL_MSG_BATCH_BEGIN, Obj::Begin);
    for (msg, obj) in [
        (NFT_MSG_NEWTABLE, Obj::Table),
        (NFT_MSG_DELTABLE, Obj::DelTable),
        (NFT_MSG_NEWTABLE, Obj::Table),
    ] {
        e.begin(
            msg,
            if msg == NFT_MSG_NEWTABLE {
                NLM_F_CREATE
            } else {
                0
            },
            obj,
        );
        e.w.put_str(NFTA_TABLE_NAME, t);
        if msg == NFT_MSG_NEWTABLE {
            e.w.put_u32(NFTA_TABLE_FLAGS, 0);
        }
        e.end(|| format!("table {t}"))?;
    }
    for i in 0..table.chains.len() {
        add_chain(&mut e, table, i)?;
    }
    for (i, s) in sets.iter().enumerate() {
        add_set(&mut e, t, s, i)?;
    }
    for (ci, c) in table.chains.iter().enumerate() {
        for ri in 0..c.rules.len() {
            add_rule(&mut e, table, ci, ri)?;
        }
    }
    e.finish()
}

/// NEWCHAIN for chain `i` of `table`.
pub(crate) fn add_chain(e: &mut Enc, table: &Table, i: usize) -> Result<()> {
    let t = table.name.as_str();
    let Some(c) = table.chains.get(i) else {
        return Ok(());
    };
    {
        e.begin(NFT_MSG_NEWCHAIN, e.create_flags(), Obj::Chain(i));
        e.w.put_str(NFTA_CHAIN_TABLE, t);
        e.w.put_str(NFTA_CHAIN_NAME, &c.name);
        if let Some(b) = &c.base {
            let hook = e.w.open(NFTA_CHAIN_HOOK);
            e.w.put_u32(NFTA_HOOK_HOOKNUM, hook_num(b.hook));
            e.w.put_u32(NFTA_HOOK_PRIORITY, b.priority as u32);
            e.w.close(hook);
            e.w.put_u32(
                NFTA_CHAIN_POLICY,
                match b.policy {
                    Policy::Accept => NF_ACCEPT,
                    Policy::Drop => NF_DROP,
                },
            );
            e.w.put_str(NFTA_CHAIN_TYPE, b.kind.nft_name());
        }
        e.end(|| format!("chain {}", c.name))?;
    }
    Ok(())
}

/// NEWSET and its elements for set `i` (sets, then maps) of the new table.
pub(crate) fn add_set(e: &mut Enc, table: &str, s: &SetSpec, i: usize) -> Result<()> {
    let id = put_set(e, table, &s.name, s, Obj::Set(i))?;
    put_elements(e, table, &s.name, s, id, Obj::Elements(i))
}

/// NEWRULE (after its anonymous sets) for rule `ri` of chain `ci` of `table`.
pub(crate) fn add_rule(e: &mut Enc, table: &Table, ci: usize, ri: usize) -> Result<()> {
    let t = table.name.as_str();
    let Some((c, r)) = table
        .chains
        .get(ci)
        .and_then(|c| Some((c, c.rules.get(ri)?)))
    else {
        return Ok(());
    };
    let compiled = compile::compile_rule(table, r)
        .map_err(|reason| Error::invalid(rule_name(table, ci, ri), reason))?;
    let mut ids = Vec::with_capacity(compiled.anon.len());
    for s in &compiled.anon {
        let obj = Obj::AnonSet {
            chain: ci,
            rule: ri,
        };
        let name = anon_name(&s.name, e.fresh.then_some(e.next_set_id));
        let id = put_set(e, t, &name, s, obj)?;
        put_elements(e, t, &name, s, id, obj)?;
        ids.push((name, id));
    }
    e.begin(
        NFT_MSG_NEWRULE,
        NLM_F_CREATE | NLM_F_APPEND,
        Obj::Rule {
            chain: ci,
            rule: ri,
        },
    );
    super::exprs::put_rule(&mut e.w, t, &c.name, &compiled, &ids, r.comment.as_deref());
    e.end(|| rule_name(table, ci, ri))
}

/// `rule #3 of chain "fwd"` (1-based).
pub(crate) fn rule_name(table: &Table, chain: usize, rule: usize) -> String {
    let c = table
        .chains
        .get(chain)
        .map(|c| c.name.as_str())
        .unwrap_or("?");
    format!("rule #{} of chain {c:?}", rule + 1)
}

/// Chain names and set/map names must be unique (the kernel would merge them).
pub(crate) fn check_unique(table: &Table) -> Result<()> {
    let mut seen = FastSet::default();
    for c in &table.chains {
        check_name("chain", &c.name)?;
        if !seen.insert(c.name.as_str()) {
            return Err(Error::invalid(format!("chain {}", c.name), "defined twice"));
        }
    }
    let mut seen = FastSet::default();
    for n in table
        .sets
        .iter()
        .map(|s| &s.name)
        .chain(table.maps.iter().map(|m| &m.name))
    {
        if !seen.insert(n.as_str()) {
            return Err(Error::invalid(
                format!("set or map {n}"),
                "defined twice (sets and maps share one namespace)",
            ));
        }
    }
    Ok(())
}

fn hook_num(h: Hook) -> u32 {
    match h {
        Hook::Prerouting => 0,
        Hook::Input => 1,
        Hook::Forward => 2,
        Hook::Output => 3,
        Hook::Postrouting => 4,
    }
}

/// The model's hook of a kernel hook number.
pub(crate) fn hook_of(n: u32) -> Option<Hook> {
    Some(match n {
        0 => Hook::Prerouting,
        1 => Hook::Input,
        2 => Hook::Forward,
        3 => Hook::Output,
        4 => Hook::Postrouting,
        _ => return None,
    })
}

/// The model's chain type of a kernel type name.
pub(crate) fn kind_of(s: &str) -> Option<ChainKind> {
    match s {
        "filter" => Some(ChainKind::Filter),
        "nat" => Some(ChainKind::Nat),
        _ => None,
    }
}

/// nft's user data TLV: type, length, value.
pub(crate) fn udata(out: &mut Vec<u8>, ty: u8, value: &[u8]) {
    out.push(ty);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

/// The name of an anonymous set in a fresh table: `__set%d` with a number
/// unique in the batch, always 8 digits (so a rule's encoding has the same
/// length whatever the number).
///
/// Giving the number ourselves spares the kernel its search for a free one,
/// which scans every set of the table (quadratic with thousands of them). In
/// a table that already holds anonymous sets the kernel picks (`None`).
pub(crate) fn anon_name(pattern: &str, id: Option<u32>) -> String {
    match id {
        Some(id) => pattern.replace("%d", &format!("{id:08}")),
        None => pattern.to_string(),
    }
}

/// NEWSET; returns the set's id in the batch.
pub(crate) fn put_set(e: &mut Enc, table: &str, name: &str, s: &SetSpec, obj: Obj) -> Result<u32> {
    let id = e.next_set_id;
    e.next_set_id += 1;
    e.begin(NFT_MSG_NEWSET, e.create_flags(), obj);
    e.w.put_str(NFTA_SET_TABLE, table);
    e.w.put_str(NFTA_SET_NAME, name);
    e.w.put_u32(NFTA_SET_FLAGS, s.flags);
    e.w.put_u32(NFTA_SET_KEY_TYPE, s.key.type_id);
    e.w.put_u32(NFTA_SET_KEY_LEN, s.key.len);
    let mut ud = Vec::new();
    udata(
        &mut ud,
        UDATA_SET_KEYBYTEORDER,
        &s.key.byteorder.to_ne_bytes(),
    );
    match &s.data {
        None => {}
        Some(None) => {
            e.w.put_u32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
            e.w.put_u32(NFTA_SET_DATA_LEN, 0);
            udata(
                &mut ud,
                UDATA_SET_DATABYTEORDER,
                &BYTEORDER_NONE.to_ne_bytes(),
            );
        }
        Some(Some(d)) => {
            e.w.put_u32(NFTA_SET_DATA_TYPE, d.type_id);
            e.w.put_u32(NFTA_SET_DATA_LEN, d.len);
            udata(&mut ud, UDATA_SET_DATABYTEORDER, &d.byteorder.to_ne_bytes());
        }
    }
    e.w.put_u32(NFTA_SET_ID, id);
    if let Some(ms) = s.timeout_ms {
        e.w.put(NFTA_SET_TIMEOUT, &ms.to_be_bytes());
    }
    let concat = s.flags & crate::compile::set::SET_CONCAT != 0;
    let dynamic = s.flags & crate::compile::set::SET_EVAL != 0;
    if s.anonymous() || concat || dynamic {
        let desc = e.w.open(NFTA_SET_DESC);
        if s.anonymous() {
            e.w.put_u32(NFTA_SET_DESC_SIZE, s.elements.len() as u32);
        } else if dynamic {
            e.w.put_u32(NFTA_SET_DESC_SIZE, crate::compile::set::DYNAMIC_SET_SIZE);
        }
        if concat {
            let c = e.w.open(NFTA_SET_DESC_CONCAT);
            for len in &s.key.parts {
                let el = e.w.open(NFTA_LIST_ELEM);
                e.w.put_u32(NFTA_SET_FIELD_LEN, *len);
                e.w.close(el);
            }
            e.w.close(c);
        }
        e.w.close(desc);
    }
    e.w.put(NFTA_SET_USERDATA, &ud);
    e.end(|| format!("set {}", s.name))?;
    Ok(id)
}

fn begin_elements(e: &mut Enc, table: &str, name: &str, id: u32, obj: Obj) -> usize {
    e.begin(NFT_MSG_NEWSETELEM, NLM_F_CREATE, obj);
    e.w.put_str(NFTA_SET_ELEM_LIST_TABLE, table);
    e.w.put_str(NFTA_SET_ELEM_LIST_SET, name);
    e.w.put_u32(NFTA_SET_ELEM_LIST_SET_ID, id);
    e.w.open(NFTA_SET_ELEM_LIST_ELEMENTS)
}

/// NEWSETELEM messages holding all elements, as few as fit.
pub(crate) fn put_elements(
    e: &mut Enc,
    table: &str,
    name: &str,
    s: &SetSpec,
    id: u32,
    obj: Obj,
) -> Result<()> {
    if s.elements.is_empty() {
        return Ok(());
    }
    let mut list = begin_elements(e, table, name, id, obj);
    for el in &s.elements {
        if e.w.since(list) > ELEMS_PER_MSG_BYTES {
            e.w.close(list);
            e.end(|| format!("elements of set {name}"))?;
            list = begin_elements(e, table, name, id, obj);
        }
        put_elem(&mut e.w, el);
    }
    e.w.close(list);
    e.end(|| format!("elements of set {name}"))
}
