//! One policy's rules as an nftables chain, and the address sets its selectors stand for.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use weft_model::policy::{Action, NEntity, NRule, NormalizedPolicy, PolicyType};
use weft_model::selector::Selector;
use weft_model::Workload;
use weft_nft::{Chain, Expr, Field, KeyType, MarkSet, Rule, Set, SetRef, Value};

use super::memo::MemoRef;
use super::{chain_safe, MARK_ALLOW, MARK_PASS};

/// Address sets for selectors, one per distinct selector, holding every matching workload's
/// address cluster-wide (Felix's "IP sets"); also answers which policies select an endpoint.
/// Results come from the process's [`memo`](super::memo) while the workloads stay the same.
pub struct SelectorSets<'a> {
    workloads: &'a [Workload],
    memo: MemoRef,
    /// Canonical selector → its set's name and the selector, for the sets this table uses.
    names: BTreeMap<String, (String, Selector)>,
}

impl<'a> SelectorSets<'a> {
    pub fn new(workloads: &'a [Workload]) -> Self {
        SelectorSets {
            workloads,
            memo: MemoRef::for_workloads(workloads),
            names: BTreeMap::new(),
        }
    }

    /// The name of the set for `sel`, made on first use.
    pub fn set_for(&mut self, sel: &Selector) -> String {
        let canonical = sel.to_string();
        if let Some((name, _)) = self.names.get(&canonical) {
            return name.clone();
        }
        let digest = Sha256::digest(canonical.as_bytes());
        let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
        let name = format!("sel_{hex}");
        self.names.insert(canonical, (name.clone(), sel.clone()));
        name
    }

    /// Whether `sel` selects each of the input's workloads numbered `idx`.
    pub fn selects(&mut self, sel: &Selector, idx: &[usize]) -> Vec<bool> {
        let canonical = sel.to_string();
        self.memo
            .get()
            .selects(self.workloads, sel, &canonical, idx)
    }

    /// Each set's name and selector.
    pub fn selectors(&self) -> Vec<(String, Selector)> {
        self.names.values().cloned().collect()
    }

    pub fn into_sets(mut self) -> Vec<Set> {
        let names = std::mem::take(&mut self.names);
        names
            .into_iter()
            .map(|(canonical, (name, sel))| {
                let mut addrs = self
                    .memo
                    .get()
                    .members(self.workloads, &sel, &canonical)
                    .to_vec();
                addrs.sort_unstable();
                addrs.dedup();
                let members = addrs.into_iter().map(Value::from).collect();
                Set::new(&name, KeyType::Ipv4Addr, members)
            })
            .collect()
    }
}

/// Chain name of a policy in one direction.
pub fn policy_chain_name(p: &NormalizedPolicy, dir: PolicyType) -> String {
    let d = match dir {
        PolicyType::Ingress => "pi",
        PolicyType::Egress => "pe",
    };
    format!("{d}_{}", chain_safe(&p.key()))
}

/// The chain holding `p`'s rules for `dir`: Allow and Pass set a mark and return, Deny drops,
/// Log logs and goes on.
pub fn policy_chain(
    p: &NormalizedPolicy,
    dir: PolicyType,
    sets: &mut SelectorSets,
    deny: Expr,
) -> Chain {
    let rules = match dir {
        PolicyType::Ingress => &p.ingress,
        PolicyType::Egress => &p.egress,
    };
    let mut out = vec![];
    for (i, r) in rules.iter().enumerate() {
        let comment = format!(
            "policy {} {} rule {i}: {:?}",
            p.key(),
            match dir {
                PolicyType::Ingress => "ingress",
                PolicyType::Egress => "egress",
            },
            r.action
        );
        let mut exprs = matches(r, sets);
        match r.action {
            Action::Allow => {
                exprs.push(Expr::counter());
                exprs.push(Expr::SetMark(MarkSet::Or(MARK_ALLOW)));
                exprs.push(Expr::ret());
            }
            Action::Pass => {
                exprs.push(Expr::SetMark(MarkSet::Or(MARK_PASS)));
                exprs.push(Expr::ret());
            }
            Action::Deny => {
                exprs.push(Expr::counter());
                exprs.push(deny.clone());
            }
            Action::Log => {
                let mut prefix = format!("weft {} ", p.name);
                prefix.truncate(127);
                exprs.push(Expr::log(&prefix));
            }
        }
        out.push(Rule::new(exprs).with_comment(&truncate(&comment, 120)));
    }
    Chain::regular(&policy_chain_name(p, dir), out)
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// The match part of a rule: protocol, ICMP, source and destination.
fn matches(r: &NRule, sets: &mut SelectorSets) -> Vec<Expr> {
    let mut e = vec![];
    if let Some(p) = r.protocol {
        e.push(Expr::l4proto(p));
    }
    if let Some(p) = r.not_protocol {
        e.push(Expr::ne(Field::L4Proto, Value::Proto(p)));
    }
    if let Some((t, code)) = r.icmp {
        e.push(Expr::icmp_type(t));
        if let Some(c) = code {
            e.push(Expr::eq(Field::IcmpCode, Value::IcmpCode(c)));
        }
    }
    if let Some((t, code)) = r.not_icmp {
        // "not (type t [and code c])": with a code, only that pair is excluded.
        match code {
            None => e.push(Expr::ne(Field::IcmpType, Value::IcmpType(t))),
            Some(c) => e.push(Expr::Lookup {
                key: vec![Field::IcmpType, Field::IcmpCode],
                negate: true,
                set: SetRef::Anonymous(vec![Value::Concat(vec![
                    Value::IcmpType(t),
                    Value::IcmpCode(c),
                ])]),
            }),
        }
    }
    entity(&mut e, &r.src, Field::IpSaddr, Field::ThSport, sets);
    entity(&mut e, &r.dst, Field::IpDaddr, Field::ThDport, sets);
    e
}

fn entity(e: &mut Vec<Expr>, n: &NEntity, addr: Field, port: Field, sets: &mut SelectorSets) {
    if !n.nets.is_empty() {
        e.push(lookup(
            addr,
            false,
            n.nets.iter().map(|x| Value::from(*x)).collect(),
        ));
    }
    if !n.not_nets.is_empty() {
        e.push(lookup(
            addr,
            true,
            n.not_nets.iter().map(|x| Value::from(*x)).collect(),
        ));
    }
    if let Some(sel) = &n.selector {
        e.push(Expr::Lookup {
            key: vec![addr],
            negate: false,
            set: SetRef::Named(sets.set_for(sel)),
        });
    }
    if let Some(sel) = &n.not_selector {
        e.push(Expr::Lookup {
            key: vec![addr],
            negate: true,
            set: SetRef::Named(sets.set_for(sel)),
        });
    }
    if !n.ports.is_empty() {
        e.push(lookup(port, false, ports(&n.ports)));
    }
    if !n.not_ports.is_empty() {
        e.push(lookup(port, true, ports(&n.not_ports)));
    }
}

fn ports(r: &[(u16, u16)]) -> Vec<Value> {
    r.iter()
        .map(|&(a, b)| {
            if a == b {
                Value::Port(a)
            } else {
                Value::PortRange(a, b)
            }
        })
        .collect()
}

fn lookup(field: Field, negate: bool, values: Vec<Value>) -> Expr {
    Expr::Lookup {
        key: vec![field],
        negate,
        set: SetRef::Anonymous(values),
    }
}
