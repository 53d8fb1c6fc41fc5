//! The node's nftables table, `table inet weft`, from the store: profiles, policies, conntrack
//! and the wiring that reaches each endpoint's chains, in the spirit of Calico's Felix but with
//! sets and verdict maps instead of linear chains.
//!
//! ```text
//! forward (filter): ct invalid → drop; established,related → accept;
//!                   iif cali* → jump from-wl; oif cali* → jump to-wl
//! input   (filter): ct …; iif cali* → jump from-wl, then drop (workload → its host)
//! from-wl:  iifname vmap @wl-from  (goto fw_<if>), unknown cali* → drop (fail closed)
//! to-wl:    oifname vmap @wl-to    (goto tw_<if>), unknown cali* → drop
//! fw_<if>:  anti-spoofing; egress policies in order; profile → mark ALLOW and return
//! tw_<if>:  ingress policies in order; profile (same network, or open) → accept
//! pi_/pe_<policy>: the policy's rules; Allow / Pass set a mark and return, Deny drops
//! ```
//!
//! Endpoints are keyed by interface *name*, so the table can be programmed before the veth
//! exists and a new workload is covered from its first packet.

mod bridge;
mod incremental;
mod memo;
mod policy;
mod services;
mod stale_udp;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use weft_model::policy::{endpoint_labels, sort_policies, NormalizedPolicy, PolicyType};
use weft_model::{Isolation, Network, Workload};
use weft_nft::{
    BaseChain, Chain, CtStates, Expr, Hook, KeyType, Map, MarkSet, Policy, Rule, Set, Table, Value,
    Verdict,
};

pub use bridge::MARK_PUBLISHED;
pub use incremental::{Programmed, Step};
pub use policy::SelectorSets;
pub use services::{affinity_set, endpoints_of as services_endpoints};
pub use stale_udp::UdpBackends;

/// Name of weft's table (family inet).
pub const TABLE: &str = "weft";
/// Mark bit: a policy or profile allowed the packet in this direction.
pub const MARK_ALLOW: u32 = 0x10000;
/// Mark bit: a policy said Pass (skip to the profile).
pub const MARK_PASS: u32 = 0x20000;
/// Prefix of workload interfaces.
pub const WORKLOAD_IFACE_GLOB: &str = "cali*";

/// The namespace every workload lives in (weft has one, like Docker).
pub const NAMESPACE: &str = "default";

/// What the ruleset of one node is made from.
pub struct RulesInput<'a> {
    pub node: &'a str,
    pub networks: &'a [Network],
    pub workloads: &'a [Workload],
    pub policies: &'a [NormalizedPolicy],
    /// The cluster's own address ranges (IP pools and the service range): never NATed between.
    pub cluster_nets: Vec<ipnet::Ipv4Net>,
    pub services: &'a [weft_model::policy::Service],
    /// This node's own addresses (NodePorts answer on them).
    pub node_addrs: Vec<Ipv4Addr>,
    /// What denying a packet means (policy Deny, profile and end-of-tier defaults).
    pub deny_action: weft_model::DenyAction,
    /// IPAM blocks (a bridge network's subnet on each node is one).
    pub blocks: &'a [weft_ipam::Block],
    /// Published ports of every node.
    pub ports: &'a [weft_model::PublishedPort],
}

impl RulesInput<'_> {
    /// The expression that denies a packet: drop, or reject with ICMP admin-prohibited.
    pub fn deny(&self) -> Expr {
        match self.deny_action {
            weft_model::DenyAction::Drop => Expr::drop(),
            weft_model::DenyAction::Reject => Expr::Reject(weft_nft::Reject::IcmpAdminProhibited),
        }
    }
}

impl<'a> RulesInput<'a> {
    /// The input for `node` from one read of the store.
    pub fn from_state(node: &'a str, st: &'a crate::ClusterState) -> RulesInput<'a> {
        let mut cluster_nets: Vec<ipnet::Ipv4Net> = st.pools.iter().map(|p| p.cidr).collect();
        cluster_nets.push(st.config.service_cidr);
        RulesInput {
            node,
            networks: &st.networks,
            workloads: &st.workloads,
            policies: &st.policies,
            cluster_nets,
            services: &st.services,
            node_addrs: st.node(node).map(|n| n.address).into_iter().collect(),
            deny_action: st.config.deny_action,
            blocks: &st.blocks,
            ports: &st.ports,
        }
    }
}

/// Labels a workload is selected by (its own, plus its namespace's).
pub fn labels_of(w: &Workload) -> BTreeMap<String, String> {
    endpoint_labels(NAMESPACE, &w.labels)
}

pub(crate) fn chain_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Chain of a workload's egress (traffic from it).
pub fn from_chain(iface: &str) -> String {
    format!("fw_{iface}")
}
/// Chain of a workload's ingress (traffic to it).
pub fn to_chain(iface: &str) -> String {
    format!("tw_{iface}")
}
fn profile_chain(dir: PolicyType, network: &str) -> String {
    match dir {
        PolicyType::Ingress => format!("prof_in_{}", chain_safe(network)),
        PolicyType::Egress => format!("prof_out_{}", chain_safe(network)),
    }
}
pub(crate) fn network_set(network: &str) -> String {
    format!("net_{}", chain_safe(network))
}

fn mark_is(bit: u32) -> Expr {
    Expr::MarkMasked {
        mask: bit,
        op: weft_nft::CmpOp::Eq,
        value: bit,
    }
}

pub(crate) fn rule(exprs: Vec<Expr>, comment: &str) -> Rule {
    Rule::new(exprs).with_comment(comment)
}

/// Builds the node's whole table.
pub fn ruleset(input: &RulesInput) -> Table {
    let mut t = base(input);
    let endpoints = services::endpoints_of(input.services, input.workloads);
    for (s, eps) in input.services.iter().zip(endpoints) {
        services::add(&mut t, services::piece(s, &eps));
    }
    t
}

/// The table without the services' own pieces (their chains, affinity sets, and elements of
/// the shared service maps and sets): what depends on everything but the services.
pub(crate) fn base(input: &RulesInput) -> Table {
    base_parts(input).0
}

/// [`base`], and the selector of each selector set in it (by set name).
pub(crate) fn base_parts(
    input: &RulesInput,
) -> (Table, Vec<(String, weft_model::selector::Selector)>) {
    let mut t = Table::new(TABLE);
    let mut policies: Vec<&NormalizedPolicy> = input.policies.iter().collect();
    policies.sort_by(|a, b| a.cmp_order(b));
    let mut sets = SelectorSets::new(input.workloads);

    // The node's own endpoints, with their index among all workloads (for the memo).
    let local: Vec<(usize, &Workload)> = input
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.node == input.node && w.ip.is_some() && !w.host_iface.is_empty())
        .collect();

    // Profiles: one set of members per network (all nodes), and its two chains.
    for net in input.networks {
        let members: BTreeSet<Ipv4Addr> = input
            .workloads
            .iter()
            .filter(|w| w.network == net.name)
            .filter_map(|w| w.ip)
            .collect();
        t.sets.push(Set::new(
            &network_set(&net.name),
            KeyType::Ipv4Addr,
            members.into_iter().map(Value::from).collect(),
        ));
        let ingress = match net.isolation {
            Isolation::Network => vec![
                rule(
                    vec![
                        Expr::in_set(&[weft_nft::Field::IpSaddr], &network_set(&net.name)),
                        Expr::accept(),
                    ],
                    &format!("profile {}: from the same network", net.name),
                ),
                rule(
                    vec![Expr::counter(), input.deny()],
                    &format!("profile {}: not from the same network", net.name),
                ),
            ],
            Isolation::None => vec![rule(
                vec![Expr::accept()],
                &format!("profile {}: isolation none", net.name),
            )],
        };
        t.chains.push(Chain::regular(
            &profile_chain(PolicyType::Ingress, &net.name),
            ingress,
        ));
        t.chains.push(Chain::regular(
            &profile_chain(PolicyType::Egress, &net.name),
            vec![rule(
                vec![Expr::SetMark(MarkSet::Or(MARK_ALLOW)), Expr::ret()],
                &format!("profile {}: egress open", net.name),
            )],
        ));
    }

    // Policy chains, for the policies that select a local endpoint.
    let mut used: BTreeSet<(String, PolicyType)> = BTreeSet::new();
    let mut wl_from = vec![];
    let mut wl_to = vec![];
    let mut br_wl = bridge::EndpointMaps::default();
    // Which policies select each local endpoint: per policy, one answer per endpoint.
    let local_idx: Vec<usize> = local.iter().map(|(i, _)| *i).collect();
    let picks: Vec<Vec<bool>> = policies
        .iter()
        .map(|p| sets.selects(&p.selector, &local_idx))
        .collect();
    for (j, &(_, w)) in local.iter().enumerate() {
        let mine: Vec<&NormalizedPolicy> = policies
            .iter()
            .zip(&picks)
            .filter(|(_, pick)| pick[j])
            .map(|(p, _)| *p)
            .collect();
        let on_bridge = input
            .networks
            .iter()
            .any(|n| n.name == w.network && n.driver == weft_model::Driver::Bridge);
        for dir in [PolicyType::Egress, PolicyType::Ingress] {
            let applying: Vec<&NormalizedPolicy> =
                mine.iter().copied().filter(|p| p.governs(dir)).collect();
            for p in &applying {
                used.insert((p.key(), dir));
            }
            if on_bridge {
                // A bridge endpoint: keyed by its address (the node sees the bridge, not its
                // veth), and only when a policy governs it; otherwise Docker's rules decide.
                if !applying.is_empty() {
                    t.chains.push(br_wl.add(w, dir, &applying, input.deny()));
                }
                continue;
            }
            let chain = endpoint_chain(w, dir, &applying, input.deny());
            match dir {
                PolicyType::Egress => wl_from.push((
                    Value::Ifname(w.host_iface.clone()),
                    Verdict::Goto(chain.name.clone()),
                )),
                PolicyType::Ingress => wl_to.push((
                    Value::Ifname(w.host_iface.clone()),
                    Verdict::Goto(chain.name.clone()),
                )),
            }
            t.chains.push(chain);
        }
    }
    for p in &policies {
        for dir in [PolicyType::Ingress, PolicyType::Egress] {
            if used.contains(&(p.key(), dir)) {
                t.chains
                    .push(policy::policy_chain(p, dir, &mut sets, input.deny()));
            }
        }
    }
    let selectors = sets.selectors();
    t.sets.extend(sets.into_sets());
    t.maps
        .push(Map::verdicts("wl-from", KeyType::Ifname, wl_from));
    t.maps.push(Map::verdicts("wl-to", KeyType::Ifname, wl_to));
    br_wl.into_maps(&mut t);

    // Dispatch.
    let glob = || Value::Ifname(WORKLOAD_IFACE_GLOB.into());
    t.chains.push(Chain::regular(
        "from-wl",
        vec![
            Rule::new(vec![Expr::vmap(&[weft_nft::Field::Iifname], "wl-from")]),
            rule(
                vec![Expr::counter(), Expr::drop()],
                "unknown workload interface (fail closed)",
            ),
        ],
    ));
    t.chains.push(Chain::regular(
        "to-wl",
        vec![
            Rule::new(vec![Expr::vmap(&[weft_nft::Field::Oifname], "wl-to")]),
            rule(
                vec![Expr::counter(), Expr::drop()],
                "unknown workload interface (fail closed)",
            ),
        ],
    ));
    let conntrack = || {
        vec![
            rule(
                vec![
                    Expr::ct_state(CtStates::INVALID),
                    Expr::counter(),
                    Expr::drop(),
                ],
                "conntrack: invalid",
            ),
            rule(
                vec![
                    Expr::ct_state(CtStates(CtStates::ESTABLISHED.0 | CtStates::RELATED.0)),
                    Expr::accept(),
                ],
                "conntrack: established or related",
            ),
        ]
    };
    let mut forward = conntrack();
    // Bridge endpoints' egress policies first (their traffic may leave through a cali*
    // interface, whose chains end in a verdict), their ingress policies after the routed
    // endpoints' egress.
    forward.push(bridge::egress_dispatch());
    forward.push(Rule::new(vec![
        Expr::eq(weft_nft::Field::Iifname, glob()),
        Expr::jump("from-wl"),
    ]));
    forward.push(bridge::ingress_dispatch());
    forward.push(Rule::new(vec![
        Expr::eq(weft_nft::Field::Oifname, glob()),
        Expr::jump("to-wl"),
    ]));
    t.chains.push(Chain::base(
        "forward",
        BaseChain::filter(Hook::Forward, 0, Policy::Accept),
        forward,
    ));
    let mut inp = conntrack();
    inp.push(Rule::new(vec![
        Expr::eq(weft_nft::Field::Iifname, glob()),
        Expr::jump("from-wl"),
    ]));
    for (proto, field) in [
        (weft_nft::PROTO_UDP, weft_nft::Field::UdpDport),
        (weft_nft::PROTO_TCP, weft_nft::Field::TcpDport),
    ] {
        inp.push(rule(
            vec![
                Expr::eq(weft_nft::Field::Iifname, glob()),
                Expr::l4proto(proto),
                Expr::eq(field, Value::Port(53)),
                Expr::accept(),
            ],
            "workloads may ask their node's name server",
        ));
    }
    inp.push(rule(
        vec![
            Expr::eq(weft_nft::Field::Iifname, glob()),
            Expr::counter(),
            Expr::drop(),
        ],
        "workload to its own host",
    ));
    t.chains.push(Chain::base(
        "input",
        BaseChain::filter(Hook::Input, 0, Policy::Accept),
        inp,
    ));
    egress_nat(&mut t, input);
    bridge::compile(&mut t, input);
    services::global(&mut t, input);
    (t, selectors)
}

/// Calico's natOutgoing: traffic from the workloads of networks that want it, to anything
/// outside the cluster's ranges, leaves with the node's address.
fn egress_nat(t: &mut Table, input: &RulesInput) {
    let nat_nets: BTreeSet<&str> = input
        .networks
        .iter()
        .filter(|n| n.nat_outgoing && n.driver == weft_model::Driver::Routed)
        .map(|n| n.name.as_str())
        .collect();
    let sources: BTreeSet<Ipv4Addr> = input
        .workloads
        .iter()
        .filter(|w| nat_nets.contains(w.network.as_str()))
        .filter_map(|w| w.ip)
        .collect();
    t.sets.push(Set::new(
        "nat-outgoing",
        KeyType::Ipv4Addr,
        sources.into_iter().map(Value::from).collect(),
    ));
    let mut nets = input.cluster_nets.clone();
    nets.sort();
    nets.dedup();
    let mut cluster = Set::new(
        "cluster-nets",
        KeyType::Ipv4Addr,
        nets.into_iter().map(Value::from).collect(),
    );
    cluster.flags.interval = true;
    t.sets.push(cluster);
    t.chains.push(Chain::base(
        "postrouting",
        BaseChain::nat(Hook::Postrouting, 100),
        vec![rule(
            vec![
                Expr::in_set(&[weft_nft::Field::IpSaddr], "nat-outgoing"),
                Expr::not_in_set(&[weft_nft::Field::IpDaddr], "cluster-nets"),
                Expr::counter(),
                Expr::masquerade(),
            ],
            "natOutgoing: workloads to outside the cluster",
        )],
    ));
}

/// An endpoint's policies in `dir`, in order: clear the marks, then for each policy jump to its
/// chain; allowed → accept (ingress) or back to the caller (egress); passed → `on_pass`
/// (`pass_note` ends that rule's comment).
pub(crate) fn policy_tier(
    rules: &mut Vec<Rule>,
    applying: &[&NormalizedPolicy],
    dir: PolicyType,
    on_pass: Expr,
    pass_note: &str,
) {
    rules.push(Rule::new(vec![Expr::SetMark(MarkSet::And(
        !(MARK_ALLOW | MARK_PASS),
    ))]));
    let on_allow = match dir {
        PolicyType::Ingress => Expr::accept(),
        PolicyType::Egress => Expr::ret(),
    };
    for p in applying {
        rules.push(Rule::new(vec![Expr::jump(&policy::policy_chain_name(
            p, dir,
        ))]));
        rules.push(rule(
            vec![mark_is(MARK_ALLOW), on_allow.clone()],
            &format!("allowed by policy {}", p.key()),
        ));
        rules.push(rule(
            vec![mark_is(MARK_PASS), on_pass.clone()],
            &format!("passed by policy {}{pass_note}", p.key()),
        ));
    }
}

/// `fw_<if>` or `tw_<if>`: anti-spoofing (egress), the endpoint's policies in order, then the
/// profile of its network.
fn endpoint_chain(
    w: &Workload,
    dir: PolicyType,
    applying: &[&NormalizedPolicy],
    deny: Expr,
) -> Chain {
    let mut rules = vec![];
    let ip = w.ip.expect("local workloads have an address");
    if dir == PolicyType::Egress {
        rules.push(rule(
            vec![
                Expr::ne(weft_nft::Field::IpSaddr, ip),
                Expr::counter(),
                Expr::drop(),
            ],
            &format!("anti-spoofing: {} sends only from {ip}", w.name),
        ));
    }
    let profile = profile_chain(dir, &w.network);
    policy_tier(&mut rules, applying, dir, Expr::goto(&profile), "");
    if applying.is_empty() {
        rules.push(Rule::new(vec![Expr::goto(&profile)]));
    } else {
        rules.push(rule(
            vec![Expr::counter(), deny],
            "no policy allowed it (end of tier)",
        ));
    }
    let name = match dir {
        PolicyType::Ingress => to_chain(&w.host_iface),
        PolicyType::Egress => from_chain(&w.host_iface),
    };
    Chain::regular(&name, rules)
}

/// Sorts policies in place into application order (re-exported for callers that list them).
pub fn order(policies: &mut [NormalizedPolicy]) {
    sort_policies(policies)
}
