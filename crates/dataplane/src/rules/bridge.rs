//! Bridge networks in the node's table: what Docker writes into FORWARD, DOCKER-ISOLATION, nat
//! POSTROUTING and the DOCKER chain, as seed 002 and 004 write them by hand.
//!
//! ```text
//! forward:     oifname vmap @br-to   { wbrX : goto br_in_X }    (appended, after the cali* rules)
//!              iifname vmap @br-from { wbrX : goto br_out_X }   (internal networks)
//! br_in_X:     published port (DNAT mark) → accept; from X → accept;
//!              internal → deny; from another cluster network → deny (isolation); → accept
//! br_out_X:    to X → accept; else deny (internal: nothing leaves)
//! postrouting: iifname wbrX oifname wbrX masquerade          (hairpin: DNAT back into the bridge)
//!              ip saddr X ip daddr X return                  (no NAT inside the network)
//!              ip saddr X ip daddr != @cluster-nets masquerade  (egress, unless internal)
//! published:   ip daddr @published-addrs meta l4proto . th dport vmap @published
//!              (nat prerouting and output; each port's chain marks and DNATs)
//! ```
//!
//! Traffic between two containers of one bridge on one node is switched by the bridge and never
//! reaches these hooks (no br_netfilter), like Docker's inter-container communication.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_model::policy::{NormalizedPolicy, PolicyType};
use weft_model::{DenyAction, Driver, Network, Workload};
use weft_nft::{
    BaseChain, Chain, CmpOp, Expr, Field, Hook, KeyType, Map, MarkSet, Rule, Set, Value, Verdict,
};

use super::{chain_safe, rule, RulesInput};

/// Mark bit: the packet was DNATed to a published port (Docker's `ct status dnat` accept).
pub const MARK_PUBLISHED: u32 = 0x8000;

/// A bridge network as this node holds it.
struct Local<'a> {
    net: &'a Network,
    cidr: Ipv4Net,
    bridge: String,
    /// This node's subnet of it, when the node has claimed one.
    subnet: Option<Ipv4Net>,
}

fn deny(action: DenyAction) -> Expr {
    match action {
        DenyAction::Drop => Expr::drop(),
        DenyAction::Reject => Expr::Reject(weft_nft::Reject::IcmpAdminProhibited),
    }
}

fn key2() -> KeyType {
    KeyType::Concat(vec![KeyType::InetProto, KeyType::InetService])
}

/// Maps from a bridge endpoint's address to the chain of the policies that govern it, one per
/// direction (Calico's per-endpoint chains, keyed by address since the node sees the bridge,
/// not the endpoint's veth). Traffic between two endpoints of one bridge on one node is switched
/// and not judged, like Docker's inter-container communication.
#[derive(Default)]
pub struct EndpointMaps {
    from: Vec<(Value, Verdict)>,
    to: Vec<(Value, Verdict)>,
}

/// `ip saddr vmap @br-wl-from`: a bridge endpoint's egress policies.
pub fn egress_dispatch() -> Rule {
    Rule::new(vec![Expr::vmap(&[Field::IpSaddr], "br-wl-from")])
}

/// `ip daddr vmap @br-wl-to`: a bridge endpoint's ingress policies.
pub fn ingress_dispatch() -> Rule {
    Rule::new(vec![Expr::vmap(&[Field::IpDaddr], "br-wl-to")])
}

impl EndpointMaps {
    /// The chain of `w`'s policies in `dir` (`applying` is not empty): each policy in order;
    /// allowed → accept (ingress) or back to the forward chain (egress); passed → back, where
    /// Docker's rules decide; no policy allowed it → denied (end of tier).
    pub fn add(
        &mut self,
        w: &Workload,
        dir: PolicyType,
        applying: &[&NormalizedPolicy],
        deny: Expr,
    ) -> Chain {
        let ip = w.ip.expect("local workloads have an address");
        let (name, map) = match dir {
            PolicyType::Ingress => (format!("btw_{ip}"), &mut self.to),
            PolicyType::Egress => (format!("bfw_{ip}"), &mut self.from),
        };
        let name = chain_safe(&name);
        let mut rules = vec![];
        super::policy_tier(
            &mut rules,
            applying,
            dir,
            Expr::ret(),
            ": the bridge's rules decide",
        );
        rules.push(rule(
            vec![Expr::counter(), deny],
            &format!("{}: no policy allowed it (end of tier)", w.name),
        ));
        map.push((Value::from(ip), Verdict::Jump(name.clone())));
        Chain::regular(&name, rules)
    }

    /// Adds the two maps (empty when no bridge endpoint here is governed by a policy).
    pub fn into_maps(self, t: &mut weft_nft::Table) {
        t.maps
            .push(Map::verdicts("br-wl-from", KeyType::Ipv4Addr, self.from));
        t.maps
            .push(Map::verdicts("br-wl-to", KeyType::Ipv4Addr, self.to));
    }
}

/// Adds the bridge networks' sets, maps, chains and hooks to `t`.
pub fn compile(t: &mut weft_nft::Table, input: &RulesInput) {
    let locals: Vec<Local> = input
        .networks
        .iter()
        .filter(|n| n.driver == Driver::Bridge)
        .filter_map(|net| {
            let cidr = net.subnet?;
            let subnet = input
                .blocks
                .iter()
                .find(|b| b.pool == net.pool && b.affinity.as_deref() == Some(input.node))
                .map(|b| b.cidr);
            Some(Local {
                net,
                cidr,
                bridge: net.bridge_name(),
                subnet,
            })
        })
        .collect();

    let mut to = vec![];
    let mut from = vec![];
    for l in &locals {
        let name = chain_safe(&l.net.name);
        let action = l.net.deny_action.unwrap_or(input.deny_action);
        let mut rules = vec![];
        if !l.net.internal {
            rules.push(rule(
                vec![
                    Expr::MarkMasked {
                        mask: MARK_PUBLISHED,
                        op: CmpOp::Eq,
                        value: MARK_PUBLISHED,
                    },
                    Expr::accept(),
                ],
                &format!("bridge {}: a published port", l.net.name),
            ));
        }
        rules.push(rule(
            vec![Expr::eq(Field::IpSaddr, l.cidr), Expr::accept()],
            &format!("bridge {}: from the same network", l.net.name),
        ));
        if l.net.internal {
            rules.push(rule(
                vec![Expr::counter(), deny(action)],
                &format!("bridge {}: internal, nothing from outside it", l.net.name),
            ));
        } else {
            rules.push(rule(
                vec![
                    Expr::in_set(&[Field::IpSaddr], "cluster-nets"),
                    Expr::counter(),
                    deny(action),
                ],
                &format!("bridge {}: isolation from other networks", l.net.name),
            ));
            rules.push(rule(
                vec![Expr::accept()],
                &format!("bridge {}: from hosts", l.net.name),
            ));
        }
        let chain = format!("br_in_{name}");
        t.chains.push(Chain::regular(&chain, rules));
        to.push((Value::Ifname(l.bridge.clone()), Verdict::Goto(chain)));
        if l.net.internal {
            let chain = format!("br_out_{name}");
            t.chains.push(Chain::regular(
                &chain,
                vec![
                    rule(
                        vec![Expr::eq(Field::IpDaddr, l.cidr), Expr::accept()],
                        &format!("bridge {}: to the same network", l.net.name),
                    ),
                    rule(
                        vec![Expr::counter(), deny(action)],
                        &format!("bridge {}: internal, nothing leaves it", l.net.name),
                    ),
                ],
            ));
            from.push((Value::Ifname(l.bridge.clone()), Verdict::Goto(chain)));
        }
    }
    t.maps.push(Map::verdicts("br-to", KeyType::Ifname, to));
    t.maps.push(Map::verdicts("br-from", KeyType::Ifname, from));
    if let Some(fwd) = t.chains.iter_mut().find(|c| c.name == "forward") {
        fwd.rules
            .push(Rule::new(vec![Expr::vmap(&[Field::Oifname], "br-to")]));
        fwd.rules
            .push(Rule::new(vec![Expr::vmap(&[Field::Iifname], "br-from")]));
    }

    postrouting(t, &locals);
    published(t, input, &locals);
}

/// Hairpin masquerade, then seed 002's `-s X -d X RETURN` and masquerade per network.
fn postrouting(t: &mut weft_nft::Table, locals: &[Local]) {
    let mut rules = vec![];
    for l in locals.iter().filter(|l| l.subnet.is_some()) {
        rules.push(rule(
            vec![
                Expr::iifname(&l.bridge),
                Expr::oifname(&l.bridge),
                Expr::counter(),
                Expr::masquerade(),
            ],
            &format!(
                "bridge {}: hairpin, DNATed back into the bridge it came from",
                l.net.name
            ),
        ));
    }
    for l in locals
        .iter()
        .filter(|l| !l.net.internal && l.net.nat_outgoing)
    {
        rules.push(rule(
            vec![
                Expr::eq(Field::IpSaddr, l.cidr),
                Expr::eq(Field::IpDaddr, l.cidr),
                Expr::ret(),
            ],
            &format!("bridge {}: no NAT inside the network", l.net.name),
        ));
        rules.push(rule(
            vec![
                Expr::eq(Field::IpSaddr, l.cidr),
                Expr::not_in_set(&[Field::IpDaddr], "cluster-nets"),
                Expr::counter(),
                Expr::masquerade(),
            ],
            &format!(
                "bridge {}: egress leaves with the node's address",
                l.net.name
            ),
        ));
    }
    if let Some(post) = t.chains.iter_mut().find(|c| c.name == "postrouting") {
        post.rules.extend(rules);
    }
}

/// `-p HOSTPORT:PORT`: DNAT on the node's addresses (its underlay address and its bridges'
/// gateways), from outside (prerouting) and from the node itself (output).
fn published(t: &mut weft_nft::Table, input: &RulesInput, locals: &[Local]) {
    let mut addrs: BTreeSet<Ipv4Addr> = input.node_addrs.iter().copied().collect();
    addrs.extend(
        locals
            .iter()
            .filter_map(|l| l.subnet)
            .map(|s| crate::bridge::BridgeSubnet::of(s).gateway),
    );
    let mut map = vec![];
    for p in input.ports.iter().filter(|p| p.node == input.node) {
        let Some(ip) = p.ip else { continue };
        let chain = format!("pub_{}_{}", p.proto, p.host_port);
        t.chains.push(Chain::regular(
            &chain,
            vec![
                Rule::new(vec![Expr::SetMark(MarkSet::Or(MARK_PUBLISHED))]),
                rule(
                    vec![
                        Expr::l4proto(p.proto.number()),
                        Expr::dnat(ip, Some(p.container_port)),
                    ],
                    &format!("published {p} of {}", p.workload),
                ),
            ],
        ));
        map.push((
            Value::Concat(vec![
                Value::Proto(p.proto.number()),
                Value::Port(p.host_port),
            ]),
            Verdict::Goto(chain),
        ));
    }
    let any = !map.is_empty();
    t.maps.push(Map::verdicts("published", key2(), map));
    t.sets.push(Set::new(
        "published-addrs",
        KeyType::Ipv4Addr,
        addrs.into_iter().map(Value::Ipv4).collect(),
    ));
    t.chains.push(Chain::regular(
        "published",
        vec![Rule::new(vec![
            Expr::in_set(&[Field::IpDaddr], "published-addrs"),
            Expr::vmap(&[Field::L4Proto, Field::ThDport], "published"),
        ])],
    ));
    // The hooks only while a port is published here: a NAT hook costs every new connection
    // of the node its NAT work. Ports are in the table's base, which a change of them
    // computes again whole.
    if !any {
        return;
    }
    for (name, hook) in [
        ("pub-prerouting", Hook::Prerouting),
        ("pub-output", Hook::Output),
    ] {
        t.chains.push(Chain::base(
            name,
            BaseChain::nat(hook, -110),
            vec![Rule::new(vec![Expr::jump("published")])],
        ));
    }
}

#[cfg(test)]
mod tests;
