//! Netfilter on a node: the table the node's agent applies (`table inet weft`, built by
//! `weft_dataplane::rules::ruleset` from the same store read), evaluated for the traced packet
//! at each hook it crosses, and the connection tracking that undoes NAT for the answer.
//!
//! - [`eval`]: the interpreter (chains, jumps, sets, verdict maps, marks, NAT, `numgen`).
//! - [`explain`]: which policy, profile or service rule decided, by name, and what to change.

pub mod eval;
pub mod explain;
pub mod indexed;
mod matching;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::rc::Rc;

use weft_dataplane::rules::{ruleset, RulesInput};
use weft_dataplane::ClusterState;
use weft_nft::Table;

pub use indexed::Indexed;

/// A NAT rewrite conntrack remembers for the answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtNat {
    /// The destination was rewritten (a service's DNAT).
    Dnat {
        orig: (Ipv4Addr, Option<u16>),
        new: (Ipv4Addr, Option<u16>),
    },
    /// The source was rewritten (masquerade).
    Snat { orig: Ipv4Addr, new: Ipv4Addr },
}

/// One NAT entry, on the node that made it.
#[derive(Clone, Debug)]
pub struct CtEntry {
    pub member: String,
    pub nat: CtNat,
}

/// The first random choice the packet met (a service's endpoints).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alternatives {
    /// The member where the choice is made.
    pub member: String,
    /// What is chosen from, for people: `service default.web port 80/tcp`.
    pub what: String,
    /// The endpoints (`ip:port`), in the table's order.
    pub candidates: Vec<String>,
    pub chosen: usize,
}

/// Per-trace netfilter state: tables by node, the choice to follow, conntrack.
#[derive(Default)]
pub struct Netfilter {
    tables: HashMap<String, Option<Rc<Indexed>>>,
    /// Which alternative a random choice takes (see [`Alternatives`]).
    pub choice: usize,
    pub alternatives: Option<Alternatives>,
    pub conntrack: Vec<CtEntry>,
    /// The packet mark inside the current namespace (cleared when a frame leaves it).
    pub mark: u32,
    /// Destinations the trace may meet: services that cannot match them are left out of the
    /// evaluated table (the lookups are keyed by destination, so the result is the same).
    pub targets: Option<Vec<Ipv4Addr>>,
}

impl Netfilter {
    /// Starts another run of the same trace (another alternative): no conntrack, same tables.
    pub fn restart(&mut self, choice: usize) {
        self.choice = choice;
        self.alternatives = None;
        self.conntrack.clear();
        self.mark = 0;
    }

    /// The table of `node`, built on first use.
    pub fn table(&mut self, state: &ClusterState, node: &str) -> Option<Rc<Indexed>> {
        if let Some(t) = self.tables.get(node) {
            return t.clone();
        }
        let t = state.node(node).map(|_| {
            Rc::new(Indexed::new(node_table(
                state,
                node,
                self.targets.as_deref(),
            )))
        });
        self.tables.insert(node.to_string(), t.clone());
        t
    }

    /// The conntrack entry of `member` whose NAT the answer `(src, dst)` reverses.
    pub fn reverse(&self, member: &str, f: &crate::flow::Flow) -> Vec<CtNat> {
        self.conntrack
            .iter()
            .filter(|e| e.member == member)
            .filter(|e| match &e.nat {
                CtNat::Dnat { new, .. } => new.0 == f.src && (new.1.is_none() || new.1 == f.sport),
                CtNat::Snat { new, .. } => *new == f.dst,
            })
            .map(|e| e.nat.clone())
            .collect()
    }
}

/// The node's table as its agent builds it; with `targets`, only the services whose
/// address (ClusterIP, or NodePort on a node address) is one of them.
pub fn node_table(state: &ClusterState, node: &str, targets: Option<&[Ipv4Addr]>) -> Table {
    let mut input = RulesInput::from_state(node, state);
    let kept: Vec<weft_model::policy::Service>;
    if let Some(targets) = targets {
        let node_addr = |a: &Ipv4Addr| state.nodes.iter().any(|n| n.address == *a);
        let nodeport_target = targets.iter().any(node_addr);
        kept = state
            .services
            .iter()
            .filter(|s| {
                s.cluster_ip().is_some_and(|ip| targets.contains(&ip))
                    || (nodeport_target
                        && s.ports()
                            .is_ok_and(|p| p.iter().any(|p| p.node_port.is_some())))
            })
            .cloned()
            .collect();
        input.services = &kept;
        return ruleset(&input);
    }
    ruleset(&input)
}
