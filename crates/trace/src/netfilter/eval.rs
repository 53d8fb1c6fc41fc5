//! An interpreter of weft's nftables model: one packet through the base chains of a hook, rule
//! by rule, following jumps, gotos, returns and verdict maps, exactly as the table the agent
//! applies is written. Random load balancing (`numgen`) takes a given choice, so every
//! alternative can be followed.

use std::net::Ipv4Addr;

use weft_nft::{
    Chain, ChainKind, CmpOp, CtStates, Data, Expr, Field, Hook, MapRef, MarkSet, Policy, Reject,
    SetRef, Verdict,
};

use super::matching::{field, key_matches, value_matches, Fv};
use super::Indexed;

/// What the rules look at.
#[derive(Clone, Debug)]
pub struct Pkt<'a> {
    pub iif: Option<&'a str>,
    pub oif: Option<&'a str>,
    pub saddr: Ipv4Addr,
    pub daddr: Ipv4Addr,
    pub proto: u8,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
    pub ct: CtStates,
}

/// How the hook ends for the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Final {
    Accept,
    Drop,
    Reject(Reject),
}

/// A NAT statement that ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatAction {
    Dnat { addr: Ipv4Addr, port: Option<u16> },
    Snat { addr: Ipv4Addr, port: Option<u16> },
    Masquerade,
}

/// A rule that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub chain: String,
    /// Position in the chain.
    pub rule: usize,
    pub comment: Option<String>,
    /// The rule as `nft list` prints it.
    pub text: String,
}

/// A random choice among N targets (`numgen`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choice {
    pub chain: String,
    pub chosen: usize,
    /// What is chosen from, in order: chains, or the addresses (`ip:port`) DNATed to.
    pub targets: Vec<String>,
}

/// The packet's way through one hook.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: Final,
    /// The rule whose verdict ended the hook (None: a chain's policy, or no rule at all).
    pub decided_by: Option<Hit>,
    /// Base chains and chains entered, in order.
    pub chains: Vec<String>,
    /// Rules that matched, in order.
    pub hits: Vec<Hit>,
    pub nat: Option<NatAction>,
    pub mark: u32,
    pub choice: Option<Choice>,
}

/// Where the walk is inside one chain.
struct Frame<'t> {
    chain: &'t Chain,
    next: usize,
    numgen_seen: usize,
}

/// What a rule decided.
enum Act {
    NoMatch,
    Next,
    Verdict(Verdict),
    Final(Final),
}

struct Walk<'t, 'p> {
    t: &'t Indexed,
    p: &'p Pkt<'p>,
    choice: usize,
    out: Outcome,
}

impl<'t> Walk<'t, '_> {
    fn lookup(&self, key: &[Field], set: &SetRef) -> Option<bool> {
        let k: Option<Vec<Fv>> = key
            .iter()
            .map(|f| field(self.p, self.out.mark, *f))
            .collect();
        let k = k?;
        Some(match set {
            SetRef::Named(n) => self
                .t
                .set(n)
                .is_some_and(|s| s.elements.iter().any(|e| key_matches(&k, e))),
            SetRef::Anonymous(v) => v.iter().any(|e| key_matches(&k, e)),
        })
    }

    fn vmap(&self, key: &[Field], map: &MapRef) -> Option<Verdict> {
        let k: Vec<Fv> = key
            .iter()
            .map(|f| field(self.p, self.out.mark, *f))
            .collect::<Option<_>>()?;
        match map {
            MapRef::Named(n) => self.t.map(n)?.elements.iter().find_map(|(e, d)| match d {
                Data::Verdict(v) if key_matches(&k, e) => Some(v.clone()),
                _ => None,
            }),
            MapRef::Anonymous(els) => els
                .iter()
                .find(|(e, _)| key_matches(&k, e))
                .map(|(_, v)| v.clone()),
        }
    }

    /// The destinations `dnat ip to KEY map @map` may give the packet: one per value of the
    /// key's `numgen random mod N` (0 to N-1, in order, as far as the map has them), or the
    /// one its key finds.
    fn dnat_map(&self, key: &[Field], map: &str) -> Vec<(Ipv4Addr, Option<u16>)> {
        let Some(m) = self.t.map(map) else {
            return vec![];
        };
        let choices = key
            .iter()
            .find_map(|k| match k {
                Field::Numgen(n) => Some(*n),
                _ => None,
            })
            .unwrap_or(1);
        let mut out = vec![];
        for c in 0..choices {
            let k: Option<Vec<Fv>> = key
                .iter()
                .map(|f| match f {
                    Field::Numgen(_) => Some(Fv::Mark(c)),
                    f => field(self.p, self.out.mark, *f),
                })
                .collect();
            let Some(k) = k else { return vec![] };
            let dest = m.elements.iter().find_map(|(e, d)| match d {
                Data::Value(v) if key_matches(&k, e) => match v.parts() {
                    [weft_nft::Value::Ipv4(a)] => Some((*a, None)),
                    [weft_nft::Value::Ipv4(a), weft_nft::Value::Port(p)] => Some((*a, Some(*p))),
                    _ => None,
                },
                _ => None,
            });
            match dest {
                Some(d) => out.push(d),
                None => break,
            }
        }
        out
    }

    fn rule(&mut self, f: &mut Frame<'t>, exprs: &[Expr]) -> Act {
        for e in exprs {
            match e {
                Expr::Match {
                    field: fl,
                    op,
                    value,
                } => {
                    let Some(fv) = field(self.p, self.out.mark, *fl) else {
                        return Act::NoMatch;
                    };
                    if value_matches(fv, value) != (*op == CmpOp::Eq) {
                        return Act::NoMatch;
                    }
                }
                Expr::Lookup { key, negate, set } => match self.lookup(key, set) {
                    Some(found) if found != *negate => {}
                    _ => return Act::NoMatch,
                },
                Expr::Vmap { key, map } => match self.vmap(key, map) {
                    Some(v) => return Act::Verdict(v),
                    None => return Act::NoMatch,
                },
                Expr::NumgenVmap { targets } => {
                    let i = self.choice.min(targets.len().saturating_sub(1));
                    let names = targets.iter().map(verdict_target).collect();
                    self.note_choice(f.chain, i, names);
                    match targets.get(i) {
                        Some(v) => return Act::Verdict(v.clone()),
                        None => return Act::NoMatch,
                    }
                }
                Expr::NumgenIs { .. } => {
                    let k = f.numgen_seen;
                    f.numgen_seen += 1;
                    if k == 0 {
                        let targets = cascade_targets(f.chain);
                        let i = self.choice.min(targets.len().saturating_sub(1));
                        self.note_choice(f.chain, i, targets);
                    }
                    let want = self.out.choice.as_ref().map(|c| c.chosen).unwrap_or(0);
                    if k != want {
                        return Act::NoMatch;
                    }
                }
                Expr::CtState(s) => {
                    if self.p.ct.0 & s.0 == 0 {
                        return Act::NoMatch;
                    }
                }
                Expr::MarkMasked { mask, op, value } => {
                    if ((self.out.mark & mask) == *value) != (*op == CmpOp::Eq) {
                        return Act::NoMatch;
                    }
                }
                Expr::SetMark(m) => {
                    self.out.mark = match m {
                        MarkSet::Value(v) => *v,
                        MarkSet::Or(v) => self.out.mark | v,
                        MarkSet::And(v) => self.out.mark & v,
                    }
                }
                // Statements that do not change the verdict (a session-affinity set is empty in
                // the plan: the kernel fills it with the clients it has seen).
                Expr::Counter | Expr::Log { .. } | Expr::SetUpdate { .. } => {}
                Expr::Verdict(v) => return Act::Verdict(v.clone()),
                Expr::Reject(r) => return Act::Final(Final::Reject(*r)),
                Expr::Dnat { addr, port } => {
                    self.out.nat = Some(NatAction::Dnat {
                        addr: *addr,
                        port: *port,
                    });
                    return Act::Final(Final::Accept);
                }
                Expr::Snat { addr, port } => {
                    self.out.nat = Some(NatAction::Snat {
                        addr: *addr,
                        port: *port,
                    });
                    return Act::Final(Final::Accept);
                }
                Expr::Masquerade { .. } => {
                    self.out.nat = Some(NatAction::Masquerade);
                    return Act::Final(Final::Accept);
                }
                Expr::DnatMap { key, map } => {
                    // Every choice `numgen` may make (one when the key has none): the
                    // destination each finds; none found, the rule does not match.
                    let found = self.dnat_map(key, map);
                    if found.is_empty() {
                        return Act::NoMatch;
                    }
                    let i = self.choice.min(found.len() - 1);
                    if found.len() > 1 {
                        let names = found
                            .iter()
                            .map(|(a, p)| match p {
                                Some(p) => format!("{a}:{p}"),
                                None => a.to_string(),
                            })
                            .collect();
                        self.note_choice(f.chain, i, names);
                    }
                    let (addr, port) = found[i];
                    self.out.nat = Some(NatAction::Dnat { addr, port });
                    return Act::Final(Final::Accept);
                }
            }
        }
        Act::Next
    }

    fn note_choice(&mut self, chain: &Chain, chosen: usize, targets: Vec<String>) {
        if self.out.choice.is_none() {
            self.out.choice = Some(Choice {
                chain: chain.name.clone(),
                chosen,
                targets,
            });
        }
    }

    /// Runs one base chain; None when it ends by its policy accept (the next base chain runs).
    fn base(&mut self, c: &'t Chain, policy: Policy) -> Option<Final> {
        let mut stack = vec![Frame {
            chain: c,
            next: 0,
            numgen_seen: 0,
        }];
        self.out.chains.push(c.name.clone());
        let mut steps = 0usize;
        while let Some(f) = stack.last_mut() {
            steps += 1;
            if steps > 100_000 {
                return Some(Final::Drop); // a loop in the ruleset; the kernel refuses those
            }
            let Some(r) = f.chain.rules.get(f.next) else {
                stack.pop();
                continue;
            };
            let idx = f.next;
            f.next += 1;
            let chain = f.chain;
            let mut frame = Frame {
                chain,
                next: f.next,
                numgen_seen: f.numgen_seen,
            };
            let act = self.rule(&mut frame, &r.exprs);
            if let Some(f) = stack.last_mut() {
                f.numgen_seen = frame.numgen_seen;
            }
            if matches!(act, Act::NoMatch) {
                continue;
            }
            let hit = Hit {
                chain: chain.name.clone(),
                rule: idx,
                comment: r.comment.clone(),
                text: r.to_string(),
            };
            self.out.hits.push(hit.clone());
            let goto = matches!(act, Act::Verdict(Verdict::Goto(_)));
            match act {
                Act::NoMatch | Act::Next | Act::Verdict(Verdict::Continue) => {}
                Act::Final(x) => {
                    self.out.decided_by = Some(hit);
                    return Some(x);
                }
                Act::Verdict(Verdict::Accept) => {
                    self.out.decided_by = Some(hit);
                    return None;
                }
                Act::Verdict(Verdict::Drop) => {
                    self.out.decided_by = Some(hit);
                    return Some(Final::Drop);
                }
                Act::Verdict(Verdict::Return) => {
                    stack.pop();
                }
                Act::Verdict(Verdict::Jump(n)) | Act::Verdict(Verdict::Goto(n)) => {
                    let Some(target) = self.t.chain(&n) else {
                        return Some(Final::Drop);
                    };
                    self.out.chains.push(n.clone());
                    if goto {
                        stack.pop();
                    }
                    stack.push(Frame {
                        chain: target,
                        next: 0,
                        numgen_seen: 0,
                    });
                }
            }
        }
        match policy {
            Policy::Accept => None,
            Policy::Drop => Some(Final::Drop),
        }
    }
}

/// What a verdict leads to: its chain's name.
fn verdict_target(v: &Verdict) -> String {
    v.chain().unwrap_or("?").to_string()
}

/// The targets of a `numgen` cascade, from the first `numgen` rule on, in order (rules before
/// it, such as session affinity, are not part of it): each rule's chain when it jumps, or the
/// address (`ip:port`) it DNATs to.
fn cascade_targets(c: &Chain) -> Vec<String> {
    let first = c
        .rules
        .iter()
        .position(|r| r.exprs.iter().any(|e| matches!(e, Expr::NumgenIs { .. })))
        .unwrap_or(0);
    c.rules[first..]
        .iter()
        .filter_map(|r| {
            r.exprs.iter().find_map(|e| match e {
                Expr::Verdict(v) => Some(verdict_target(v)),
                Expr::Dnat { addr, port } => Some(match port {
                    Some(p) => format!("{addr}:{p}"),
                    None => addr.to_string(),
                }),
                _ => None,
            })
        })
        .collect()
}

/// Runs the base chains of `hook` and `kind` in priority order. None when the table has none.
pub fn run_hook(
    t: &Indexed,
    hook: Hook,
    kind: ChainKind,
    p: &Pkt,
    mark: u32,
    choice: usize,
) -> Option<Outcome> {
    let mut bases: Vec<&Chain> = t
        .chains
        .iter()
        .filter(|c| c.base.is_some_and(|b| b.hook == hook && b.kind == kind))
        .collect();
    if bases.is_empty() {
        return None;
    }
    bases.sort_by_key(|c| c.base.map(|b| b.priority).unwrap_or(0));
    let mut w = Walk {
        t,
        p,
        choice,
        out: Outcome {
            verdict: Final::Accept,
            decided_by: None,
            chains: vec![],
            hits: vec![],
            nat: None,
            mark,
            choice: None,
        },
    };
    for c in bases {
        let policy = c.base.map(|b| b.policy).unwrap_or_default();
        if let Some(f) = w.base(c, policy) {
            w.out.verdict = f;
            return Some(w.out);
        }
        if w.out.nat.is_some() {
            // A NAT statement ends the nat hook for this packet.
            break;
        }
    }
    Some(w.out)
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
