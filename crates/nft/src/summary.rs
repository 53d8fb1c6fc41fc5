//! A summary of a table, enough to detect drift: its chains (base chain
//! settings, and per rule the kernel expressions and the comment) and its named
//! sets and maps (type, flags, element count). It is computed from the model
//! ([`Summary::of`]) or read from the kernel ([`crate::Backend::read`]), and
//! [`drift`] lists the differences.

use std::collections::BTreeMap;
use std::fmt;

use crate::compile::{self, set::SetSpec};
use crate::model::{Family, Table};
use crate::Result;

/// What a table holds, in a form both the model and the kernel yield.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// The table's family.
    pub family: Family,
    /// The table's name.
    pub name: String,
    /// Chains by name.
    pub chains: BTreeMap<String, ChainSummary>,
    /// Named sets and maps by name (anonymous sets are part of their rules).
    pub sets: BTreeMap<String, SetSummary>,
}

/// One chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChainSummary {
    /// For a base chain, its settings as nft prints them
    /// (`type filter hook forward priority filter; policy accept;`).
    pub base: Option<String>,
    /// The rules, in order.
    pub rules: Vec<RuleSummary>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSummary {
    /// The kernel expression names, e.g. `["meta", "cmp", "immediate"]`.
    pub exprs: Vec<String>,
    /// The comment.
    pub comment: Option<String>,
}

impl fmt::Display for RuleSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.exprs.join(" "))?;
        if let Some(c) = &self.comment {
            write!(f, " comment {c:?}")?;
        }
        Ok(())
    }
}

/// One named set or map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetSummary {
    /// The kernel set flags (`NFT_SET_*`, anonymous never set here).
    pub flags: u32,
    /// nft's key type id (concatenations: ids shifted by 6 bits).
    pub key_type: u32,
    /// Key length in bytes.
    pub key_len: u32,
    /// Data type of a map (`0xffffff00` for verdicts).
    pub data_type: Option<u32>,
    /// Number of elements (an interval counts once).
    pub elements: usize,
    /// Filled from the packet path (`flags dynamic`): its elements are not compared.
    pub dynamic: bool,
}

impl SetSummary {
    pub(crate) fn of(s: &SetSpec) -> SetSummary {
        SetSummary {
            // As read back: flags the kernel may add on its own are not compared.
            flags: s.flags & 0x8f,
            dynamic: s.flags & crate::compile::set::SET_EVAL != 0,
            key_type: s.key.type_id,
            key_len: s.key.len,
            data_type: s.data.as_ref().map(|d| match d {
                None => crate::netlink::consts::NFT_DATA_VERDICT,
                Some(k) => k.type_id,
            }),
            elements: s.count(),
        }
    }
}

impl Summary {
    /// The summary of what applying `table` programs.
    pub fn of(table: &Table) -> Result<Summary> {
        let mut s = Summary {
            family: table.family,
            name: table.name.clone(),
            ..Summary::default()
        };
        for spec in compile::compile_sets(table)? {
            s.sets.insert(spec.name.clone(), SetSummary::of(&spec));
        }
        for (ci, c) in table.chains.iter().enumerate() {
            let mut cs = ChainSummary {
                base: c.base.map(|b| b.to_string()),
                rules: Vec::with_capacity(c.rules.len()),
            };
            for (ri, r) in c.rules.iter().enumerate() {
                let compiled = compile::compile_rule(table, r).map_err(|reason| {
                    crate::Error::invalid(crate::netlink::encode::rule_name(table, ci, ri), reason)
                })?;
                cs.rules.push(RuleSummary {
                    exprs: compiled
                        .exprs
                        .iter()
                        .map(|x| x.name().to_string())
                        .collect(),
                    comment: r.comment.clone(),
                });
            }
            s.chains.insert(c.name.clone(), cs);
        }
        Ok(s)
    }

    /// Total number of rules.
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }
}

/// The differences between what the model programs and what the kernel holds,
/// one line each; empty when they agree.
pub fn drift(model: &Summary, kernel: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    if model.family != kernel.family || model.name != kernel.name {
        out.push(format!(
            "comparing table {} {} with table {} {}",
            model.family.nft_name(),
            model.name,
            kernel.family.nft_name(),
            kernel.name
        ));
    }
    for (name, m) in &model.chains {
        let Some(k) = kernel.chains.get(name) else {
            out.push(format!("chain {name} is missing from the kernel"));
            continue;
        };
        if m.base != k.base {
            out.push(format!(
                "chain {name}: expected {}, the kernel has {}",
                base_text(&m.base),
                base_text(&k.base)
            ));
        }
        if m.rules.len() != k.rules.len() {
            out.push(format!(
                "chain {name}: {} rules expected, the kernel has {}",
                m.rules.len(),
                k.rules.len()
            ));
        }
        for (i, (mr, kr)) in m.rules.iter().zip(&k.rules).enumerate() {
            if mr != kr {
                out.push(format!(
                    "chain {name} rule #{}: expected {mr}, the kernel has {kr}",
                    i + 1
                ));
            }
        }
    }
    for name in kernel.chains.keys() {
        if !model.chains.contains_key(name) {
            out.push(format!("chain {name} in the kernel is not in the model"));
        }
    }
    for (name, m) in &model.sets {
        let Some(k) = kernel.sets.get(name) else {
            out.push(format!("set {name} is missing from the kernel"));
            continue;
        };
        if (m.flags, m.key_type, m.key_len, m.data_type)
            != (k.flags, k.key_type, k.key_len, k.data_type)
        {
            out.push(format!(
                "set {name}: type or flags differ (expected flags 0x{:x} key {}/{} data {:?}, the kernel has flags 0x{:x} key {}/{} data {:?})",
                m.flags, m.key_type, m.key_len, m.data_type, k.flags, k.key_type, k.key_len, k.data_type
            ));
        }
        if m.elements != k.elements && !m.dynamic {
            out.push(format!(
                "set {name}: {} elements expected, the kernel has {}",
                m.elements, k.elements
            ));
        }
    }
    for name in kernel.sets.keys() {
        if !model.sets.contains_key(name) {
            out.push(format!("set {name} in the kernel is not in the model"));
        }
    }
    out
}

fn base_text(b: &Option<String>) -> String {
    match b {
        Some(b) => format!("`{b}`"),
        None => "a regular chain".to_string(),
    }
}
