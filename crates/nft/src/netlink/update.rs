//! Incremental transactions: the messages that turn the table the kernel
//! holds (`old`, as last applied) into `new`, in one batch. Chains whose rules
//! changed are flushed and refilled; sets and maps get their elements added
//! and removed; chains and sets that appeared or vanished are created or
//! deleted. Cost follows the size of the change, not of the table.

use super::consts::*;
use super::encode::{add_chain, add_rule, add_set, nfproto, put_elements, Batch, Enc, Obj};
use super::exprs::put_elem;
use crate::compile::check_name;
use crate::compile::set::{self, SetSpec};
use crate::fasthash::FastMap;
use crate::model::{Data, Family, KeyType, MapData, SetFlags, Table, Value};
use crate::{Error, Result};

/// The batch turning `old` into `new`, or `None` when only a full replace can
/// (another table, or a set type or base chain changed). A batch of two
/// messages (begin, end) means nothing changed.
pub(crate) fn encode_update(old: &Table, new: &Table, first_seq: u32) -> Result<Option<Batch>> {
    if old.family != new.family || old.name != new.name {
        return Ok(None);
    }
    check_name("table", &new.name)?;
    if new.family != Family::Inet {
        return Err(Error::invalid(
            format!("table {} {}", new.family.nft_name(), new.name),
            "only inet tables can be programmed",
        ));
    }
    // Names are not checked for duplicates here: chains and sets are created
    // exclusively, so a duplicate makes the kernel refuse the update, and the
    // full replace that follows reports it.
    let new_sets = views(new);
    let old_sets = views(old);
    let old_set_at: FastMap<&str, usize> = old_sets
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name, i))
        .collect();
    let new_set_names: FastMap<&str, usize> = new_sets
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name, i))
        .collect();
    for s in &new_sets {
        if let Some(&oi) = old_set_at.get(s.name) {
            let o = &old_sets[oi];
            if (o.key, o.flags, o.data) != (s.key, s.flags, s.data) {
                return Ok(None);
            }
        }
    }
    let chains = ChainIndex::new(old, new);
    for (ni, c) in new.chains.iter().enumerate() {
        if let Some(oi) = chains.old_of(ni, &c.name) {
            if old.chains[oi].base != c.base {
                return Ok(None);
            }
        }
    }

    let t = new.name.as_str();
    let mut e = Enc::new(first_seq, nfproto(new.family), 4096, false);
    e.batch_marker(NFNL_MSG_BATCH_BEGIN, Obj::Begin);
    // Chains and sets first: what follows may refer to them.
    for (i, c) in new.chains.iter().enumerate() {
        if chains.old_of(i, &c.name).is_none() {
            add_chain(&mut e, new, i)?;
        }
    }
    for (i, s) in new_sets.iter().enumerate() {
        match old_set_at.get(s.name) {
            None => add_set(&mut e, t, &s.spec(&s.elems)?, i)?,
            Some(&oi) if old_sets[oi].elems != s.elems => {
                change_elements(&mut e, t, &old_sets[oi], s, i)?
            }
            Some(_) => {}
        }
    }
    for (ci, c) in new.chains.iter().enumerate() {
        let changed = match chains.old_of(ci, &c.name) {
            None => true,
            Some(oi) if old.chains[oi].rules != c.rules => {
                flush_chain(
                    &mut e,
                    t,
                    &c.name,
                    Obj::Flush {
                        chain: ci,
                        old: false,
                    },
                )?;
                true
            }
            Some(_) => false,
        };
        if changed {
            for ri in 0..c.rules.len() {
                add_rule(&mut e, new, ci, ri)?;
            }
        }
    }
    // Then what vanished: rules of removed chains, the chains, the sets.
    let gone: Vec<usize> = (0..old.chains.len())
        .filter(|&i| !chains.in_new(i, &old.chains[i].name))
        .collect();
    for &i in &gone {
        flush_chain(
            &mut e,
            t,
            &old.chains[i].name,
            Obj::Flush {
                chain: i,
                old: true,
            },
        )?;
    }
    for &i in &gone {
        e.begin(NFT_MSG_DELCHAIN, 0, Obj::DelChain(i));
        e.w.put_str(NFTA_CHAIN_TABLE, t);
        e.w.put_str(NFTA_CHAIN_NAME, &old.chains[i].name);
        e.end(|| format!("chain {}", old.chains[i].name))?;
    }
    for (i, s) in old_sets.iter().enumerate() {
        if !new_set_names.contains_key(s.name) {
            e.begin(NFT_MSG_DELSET, 0, Obj::DelSet(i));
            e.w.put_str(NFTA_SET_TABLE, t);
            e.w.put_str(NFTA_SET_NAME, s.name);
            e.end(|| format!("set {}", s.name))?;
        }
    }
    e.finish().map(Some)
}

/// Lengths of the common prefix and (after it) the common suffix of two lists.
fn common_ends<T>(a: &[T], b: &[T], eq: impl Fn(&T, &T) -> bool) -> (usize, usize) {
    let p = a.iter().zip(b).take_while(|(x, y)| eq(x, y)).count();
    let q = a[p..]
        .iter()
        .rev()
        .zip(b[p..].iter().rev())
        .take_while(|(x, y)| eq(x, y))
        .count();
    (p, q)
}

/// Which chain of `old` has the name of a chain of `new`, and back. Chains
/// in a common prefix and suffix (by name) match by position; only the
/// middle, where chains appeared or vanished, is indexed by name.
struct ChainIndex<'a> {
    prefix: usize,
    suffix: usize,
    old_len: usize,
    new_len: usize,
    old_mid: FastMap<&'a str, usize>,
    new_mid: FastMap<&'a str, usize>,
}

impl<'a> ChainIndex<'a> {
    fn new(old: &'a Table, new: &'a Table) -> ChainIndex<'a> {
        let (prefix, suffix) = common_ends(&old.chains, &new.chains, |a, b| a.name == b.name);
        let mid = |t: &'a Table| -> FastMap<&'a str, usize> {
            let end = t.chains.len() - suffix;
            (prefix..end)
                .map(|i| (t.chains[i].name.as_str(), i))
                .collect()
        };
        ChainIndex {
            prefix,
            suffix,
            old_len: old.chains.len(),
            new_len: new.chains.len(),
            old_mid: mid(old),
            new_mid: mid(new),
        }
    }

    /// The index in `old` of chain `i` (named `name`) of `new`.
    fn old_of(&self, i: usize, name: &str) -> Option<usize> {
        if i < self.prefix {
            Some(i)
        } else if i >= self.new_len - self.suffix {
            Some(i + self.old_len - self.new_len)
        } else {
            self.old_mid.get(name).copied()
        }
    }

    /// Whether chain `i` (named `name`) of `old` is also in `new`.
    fn in_new(&self, i: usize, name: &str) -> bool {
        i < self.prefix || i >= self.old_len - self.suffix || self.new_mid.contains_key(name)
    }
}

/// DELRULE without a handle: every rule of the chain.
fn flush_chain(e: &mut Enc, table: &str, chain: &str, obj: Obj) -> Result<()> {
    e.begin(NFT_MSG_DELRULE, 0, obj);
    e.w.put_str(NFTA_RULE_TABLE, table);
    e.w.put_str(NFTA_RULE_CHAIN, chain);
    e.end(|| format!("chain {chain}"))
}

/// A set or map of the model, seen the same way for both.
struct View<'a> {
    name: &'a str,
    key: &'a KeyType,
    flags: SetFlags,
    data: Option<&'a MapData>,
    elems: Vec<(&'a Value, Option<&'a Data>)>,
}

impl View<'_> {
    /// The kernel form of this set holding `elems`.
    fn spec(&self, elems: &[(&Value, Option<&Data>)]) -> Result<SetSpec> {
        set::build(self.name, self.key, self.flags, self.data, elems, false)
            .map_err(|r| Error::invalid(format!("set {}", self.name), r))
    }
}

/// The sets, then the maps, of a table (the order of [`Obj::Set`] indexes).
fn views(t: &Table) -> Vec<View<'_>> {
    let sets = t.sets.iter().map(|s| View {
        name: &s.name,
        key: &s.key,
        flags: s.flags,
        data: None,
        elems: s.elements.iter().map(|v| (v, None)).collect(),
    });
    let maps = t.maps.iter().map(|m| View {
        name: &m.name,
        key: &m.key,
        flags: m.flags,
        data: Some(&m.data),
        elems: m.elements.iter().map(|(k, d)| (k, Some(d))).collect(),
    });
    sets.chain(maps).collect()
}

/// Element changes of a set that exists before and after. Interval sets are
/// flushed and refilled (their start and end elements do not diff well);
/// others lose the keys that vanished or changed data, and gain the new ones
/// (only those are encoded: cost follows the change).
fn change_elements(
    e: &mut Enc,
    table: &str,
    old: &View<'_>,
    new: &View<'_>,
    i: usize,
) -> Result<()> {
    if new.flags.interval {
        e.begin(NFT_MSG_DELSETELEM, 0, Obj::DelElements(i));
        e.w.put_str(NFTA_SET_ELEM_LIST_TABLE, table);
        e.w.put_str(NFTA_SET_ELEM_LIST_SET, new.name);
        e.end(|| format!("set {}", new.name))?;
        return put_elements(
            e,
            table,
            new.name,
            &new.spec(&new.elems)?,
            0,
            Obj::Elements(i),
        );
    }
    // Elements in a common prefix and suffix are unchanged; compare the middles.
    let (p, q) = common_ends(&old.elems, &new.elems, |a, b| a == b);
    let old_mid = &old.elems[p..old.elems.len() - q];
    let new_mid = &new.elems[p..new.elems.len() - q];
    let before: FastMap<&Value, Option<&Data>> = old_mid.iter().copied().collect();
    let after: FastMap<&Value, Option<&Data>> = new_mid.iter().copied().collect();
    let mut removed: Vec<(&Value, Option<&Data>)> = old_mid
        .iter()
        .filter(|(k, d)| after.get(k) != Some(d))
        .copied()
        .collect();
    let added: Vec<(&Value, Option<&Data>)> = new_mid
        .iter()
        .filter(|(k, d)| before.get(k) != Some(d))
        .copied()
        .collect();
    // A key written twice in the model may still be outside the middle.
    if !removed.is_empty() && (p > 0 || q > 0) {
        if removed.len() <= 16 {
            removed.retain(|el| !new.elems.contains(el));
        } else {
            let all: FastMap<&Value, Option<&Data>> = new.elems.iter().copied().collect();
            removed.retain(|(k, d)| all.get(k) != Some(d));
        }
    }
    if !removed.is_empty() {
        let mut part = new.spec(&removed)?;
        for el in &mut part.elements {
            el.data = None;
        }
        put_element_list(e, table, &part, NFT_MSG_DELSETELEM, Obj::DelElements(i))?;
    }
    if !added.is_empty() {
        put_elements(e, table, new.name, &new.spec(&added)?, 0, Obj::Elements(i))?;
    }
    Ok(())
}

/// Element list messages of type `msg` (chunked like additions).
fn put_element_list(e: &mut Enc, table: &str, s: &SetSpec, msg: u16, obj: Obj) -> Result<()> {
    let start = |e: &mut Enc| {
        e.begin(msg, 0, obj);
        e.w.put_str(NFTA_SET_ELEM_LIST_TABLE, table);
        e.w.put_str(NFTA_SET_ELEM_LIST_SET, &s.name);
        e.w.open(NFTA_SET_ELEM_LIST_ELEMENTS)
    };
    let mut list = start(e);
    for el in &s.elements {
        if e.w.since(list) > 60_000 {
            e.w.close(list);
            e.end(|| format!("elements of set {}", s.name))?;
            list = start(e);
        }
        put_elem(&mut e.w, el);
    }
    e.w.close(list);
    e.end(|| format!("elements of set {}", s.name))
}
