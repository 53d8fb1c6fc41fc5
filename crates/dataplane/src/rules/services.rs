//! Services as kube-proxy's nftables mode programs them: one verdict map keyed by
//! `ip daddr . meta l4proto . th dport` to a chain per service port, `numgen random mod N` to a
//! chain per endpoint that DNATs; NodePorts on the node's addresses through a second map;
//! masquerade by mark for traffic from outside and for hairpin; services without endpoints
//! reject with ICMP port unreachable. Lookups cost the same with 10 or 10,000 services.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use weft_model::policy::Service;
use weft_model::Workload;
use weft_nft::{
    BaseChain, Chain, CmpOp, Data, Expr, Field, Hook, KeyType, Map, MapData, MarkSet, Policy,
    Reject, Rule, Set, Value, Verdict,
};

use super::{chain_safe, rule, RulesInput};

/// Mark bit: masquerade this packet on its way out.
pub const MARK_MASQ: u32 = 0x4000;
/// The set of `address . address` of the node's workloads (hairpin traffic).
pub const HAIRPIN_SET: &str = "svc-hairpin";

fn key3() -> KeyType {
    KeyType::Concat(vec![
        KeyType::Ipv4Addr,
        KeyType::InetProto,
        KeyType::InetService,
    ])
}

fn key2() -> KeyType {
    KeyType::Concat(vec![KeyType::InetProto, KeyType::InetService])
}

fn proto_name(p: u8) -> &'static str {
    match p {
        6 => "tcp",
        17 => "udp",
        132 => "sctp",
        _ => "proto",
    }
}

/// The endpoints of each of `services`, in order: what [`Service::endpoints`] gives (the
/// sorted addresses of the workloads its selector picks), found through an index of the
/// workloads by label rather than by matching every workload against every service, which
/// is quadratic (seconds at 10,000 services and 20,000 workloads).
pub fn endpoints_of(services: &[Service], workloads: &[Workload]) -> Vec<Vec<Ipv4Addr>> {
    let mut by_label: HashMap<(&str, &str), Vec<&Workload>> = HashMap::new();
    for w in workloads {
        for (k, v) in &w.labels {
            by_label.entry((k, v)).or_default().push(w);
        }
    }
    let none: Vec<&Workload> = vec![];
    services
        .iter()
        .map(|s| {
            // Every selected workload carries every pair of the selector: the pair with the
            // fewest workloads gives all the candidates.
            let Some(candidates) = s
                .spec
                .selector
                .iter()
                .map(|(k, v)| by_label.get(&(k.as_str(), v.as_str())).unwrap_or(&none))
                .min_by_key(|c| c.len())
            else {
                return vec![];
            };
            let mut v: Vec<Ipv4Addr> = candidates
                .iter()
                .filter(|w| s.selects(&w.labels))
                .filter_map(|w| w.ip)
                .collect();
            v.sort();
            v.dedup();
            v
        })
        .collect()
}

/// What one service adds to the table: its chains and affinity sets, and its elements of the
/// shared maps and sets. A service's piece depends only on the service and its endpoints, so
/// a pass that keeps the pieces redoes only those of the services that changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Piece {
    pub chains: Vec<Chain>,
    /// Session affinity sets (dynamic).
    pub sets: Vec<Set>,
    /// Elements of the `services` map.
    pub services: Vec<(Value, Verdict)>,
    /// Elements of the `nodeports` map.
    pub nodeports: Vec<(Value, Verdict)>,
    /// Elements of the `no-endpoints` set.
    pub no_endpoints: Vec<Value>,
    /// Elements of the `no-endpoint-nodeports` set.
    pub no_endpoint_nodeports: Vec<Value>,
    /// Elements of the endpoint maps (`svc-eps-N`, `np-eps-N`): map, key, data.
    pub endpoints: Vec<(String, Value, Data)>,
}

/// Services of at most this many endpoints (and no session affinity) need no chain of their
/// own: their endpoints are elements of the map `svc-eps-N` of their number N of endpoints,
/// keyed by `address . protocol . port . choice`, and one rule per N DNATs with
/// `numgen random mod N` as the choice.
pub const MAP_ENDPOINTS: usize = 8;

/// The map of the endpoints of services with `n` endpoints.
fn eps_map(n: usize) -> String {
    format!("svc-eps-{n}")
}

/// The same for NodePorts (keyed by `protocol . port . choice`).
fn np_eps_map(n: usize) -> String {
    format!("np-eps-{n}")
}

/// The names of the maps and sets every service adds elements to.
pub fn shared_names() -> Vec<String> {
    let mut v: Vec<String> = [
        "services",
        "nodeports",
        "no-endpoints",
        "no-endpoint-nodeports",
    ]
    .map(String::from)
    .to_vec();
    for n in 1..=MAP_ENDPOINTS {
        v.push(eps_map(n));
        v.push(np_eps_map(n));
    }
    v
}

fn key4() -> KeyType {
    KeyType::Concat(vec![
        KeyType::Ipv4Addr,
        KeyType::InetProto,
        KeyType::InetService,
        KeyType::Mark,
    ])
}

fn np_key3() -> KeyType {
    KeyType::Concat(vec![
        KeyType::InetProto,
        KeyType::InetService,
        KeyType::Mark,
    ])
}

fn ep_data() -> KeyType {
    KeyType::Concat(vec![KeyType::Ipv4Addr, KeyType::InetService])
}

/// Adds `p` to `t` (which [`global`] prepared).
pub fn add(t: &mut weft_nft::Table, p: Piece) {
    t.chains.extend(p.chains);
    t.sets.extend(p.sets);
    if !p.endpoints.is_empty() {
        let at: HashMap<String, usize> = t
            .maps
            .iter()
            .enumerate()
            .filter(|(_, m)| m.name.contains("-eps-"))
            .map(|(i, m)| (m.name.clone(), i))
            .collect();
        for (map, k, d) in p.endpoints {
            if let Some(&i) = at.get(&map) {
                t.maps[i].elements.push((k, d));
            }
        }
    }
    for m in t.maps.iter_mut() {
        match m.name.as_str() {
            "services" => m.elements.extend(
                p.services
                    .iter()
                    .map(|(k, v)| (k.clone(), Data::Verdict(v.clone()))),
            ),
            "nodeports" => m.elements.extend(
                p.nodeports
                    .iter()
                    .map(|(k, v)| (k.clone(), Data::Verdict(v.clone()))),
            ),
            _ => {}
        }
    }
    for s in t.sets.iter_mut() {
        match s.name.as_str() {
            "no-endpoints" => s.elements.extend(p.no_endpoints.iter().cloned()),
            "no-endpoint-nodeports" => s.elements.extend(p.no_endpoint_nodeports.iter().cloned()),
            _ => {}
        }
    }
}

/// The piece of service `s` whose endpoints are `eps`.
///
/// Per port with endpoints, one chain `svc_…` choosing an endpoint with a `numgen` cascade
/// and DNATing in the same rule: one chain and about twelve expressions per service of two
/// endpoints (kube-proxy's shape, a chain per endpoint, costs the kernel three times as many
/// objects to load and to validate). With session affinity, a chain per endpoint remembers
/// the client (`ep_…`), and the service chain sends a client seen lately back to it.
pub fn piece(s: &Service, eps: &[Ipv4Addr]) -> Piece {
    let mut out = Piece::default();
    let (Some(ip), Ok(ports)) = (s.cluster_ip(), s.ports()) else {
        return out;
    };
    let affinity = s.session_affinity().ok().flatten();
    let base = format!("{}.{}", s.metadata.namespace, s.metadata.name);
    for p in &ports {
        let id = chain_safe(&format!("{base}_{}{}", proto_name(p.protocol), p.port));
        let key = Value::Concat(vec![
            Value::Ipv4(ip),
            Value::Proto(p.protocol),
            Value::Port(p.port),
        ]);
        if eps.is_empty() {
            out.no_endpoints.push(key);
            if let Some(np) = p.node_port {
                out.no_endpoint_nodeports.push(Value::Concat(vec![
                    Value::Proto(p.protocol),
                    Value::Port(np),
                ]));
            }
            continue;
        }
        let target = (p.protocol, p.target_port);
        if affinity.is_none() && eps.len() <= MAP_ENDPOINTS {
            // Endpoints as elements: no chain, only an extra one for a NodePort.
            let n = eps.len();
            let data = |ep: &Ipv4Addr| {
                Data::Value(Value::Concat(vec![
                    Value::Ipv4(*ep),
                    Value::Port(p.target_port),
                ]))
            };
            for (i, ep) in eps.iter().enumerate() {
                out.endpoints.push((
                    eps_map(n),
                    Value::Concat(vec![
                        Value::Ipv4(ip),
                        Value::Proto(p.protocol),
                        Value::Port(p.port),
                        Value::Mark(i as u32),
                    ]),
                    data(ep),
                ));
            }
            if let Some(np) = p.node_port {
                for (i, ep) in eps.iter().enumerate() {
                    out.endpoints.push((
                        np_eps_map(n),
                        Value::Concat(vec![
                            Value::Proto(p.protocol),
                            Value::Port(np),
                            Value::Mark(i as u32),
                        ]),
                        data(ep),
                    ));
                }
                let ext = format!("ext_{id}");
                out.chains.push(Chain::regular(
                    &ext,
                    vec![rule(
                        vec![
                            Expr::SetMark(MarkSet::Or(MARK_MASQ)),
                            Expr::DnatMap {
                                key: vec![Field::L4Proto, Field::ThDport, Field::Numgen(n as u32)],
                                map: np_eps_map(n),
                            },
                        ],
                        &format!(
                            "service {base}: NodePort {np} from anywhere is masqueraded, {n} endpoint(s)"
                        ),
                    )],
                ));
                out.nodeports.push((
                    Value::Concat(vec![Value::Proto(p.protocol), Value::Port(np)]),
                    Verdict::Goto(ext),
                ));
            }
            continue;
        }
        let svc_chain = format!("svc_{id}");
        let mut rules = vec![];
        match affinity {
            // Session affinity first: a client seen lately goes back to its endpoint.
            Some(timeout) => {
                let mut targets = vec![];
                for (i, ep) in eps.iter().enumerate() {
                    let ep_chain = format!("ep_{id}_{i}");
                    let set = affinity_set(&id, *ep);
                    out.sets
                        .push(Set::dynamic(&set, KeyType::Ipv4Addr, timeout));
                    rules.push(rule(
                        vec![Expr::in_set(&[Field::IpSaddr], &set), Expr::goto(&ep_chain)],
                        &format!("session affinity to {ep} ({timeout}s)"),
                    ));
                    out.chains
                        .push(endpoint_chain(&ep_chain, &base, *ep, target, &set));
                    targets.push(Verdict::Goto(ep_chain));
                }
                // numgen cascade rather than an anonymous vmap: anonymous sets make the
                // kernel re-walk the transaction for each one, which does not scale.
                let mut cascade = Rule::numgen_cascade(&targets);
                cascade[0].comment = Some(format!(
                    "service {base} port {}/{}: {} endpoint(s)",
                    p.port,
                    proto_name(p.protocol),
                    eps.len()
                ));
                rules.extend(cascade);
            }
            None => rules.extend(dnat_cascade(&base, p.port, eps, target)),
        }
        out.chains.push(Chain::regular(&svc_chain, rules));
        out.services.push((key, Verdict::Goto(svc_chain.clone())));
        if let Some(np) = p.node_port {
            let ext = format!("ext_{id}");
            out.chains.push(Chain::regular(
                &ext,
                vec![rule(
                    vec![
                        Expr::SetMark(MarkSet::Or(MARK_MASQ)),
                        Expr::goto(&svc_chain),
                    ],
                    &format!("service {base}: NodePort {np} from anywhere is masqueraded"),
                )],
            ));
            out.nodeports.push((
                Value::Concat(vec![Value::Proto(p.protocol), Value::Port(np)]),
                Verdict::Goto(ext),
            ));
        }
    }
    out
}

/// `numgen random mod N 0 … dnat to EP0`, `numgen random mod N-1 0 … dnat to EP1`, …,
/// `dnat to EPn`: each endpoint evenly, the DNAT in the rule that picks it.
fn dnat_cascade(
    service: &str,
    service_port: u16,
    eps: &[Ipv4Addr],
    (proto, port): (u8, u16),
) -> Vec<Rule> {
    let n = eps.len();
    eps.iter()
        .enumerate()
        .map(|(i, ep)| {
            let left = (n - i) as u32;
            let mut exprs = vec![];
            if left > 1 {
                exprs.push(Expr::NumgenIs {
                    modulus: left,
                    value: 0,
                });
            }
            exprs.push(Expr::l4proto(proto));
            exprs.push(Expr::dnat(*ep, Some(port)));
            let comment = format!(
                "service {service} port {service_port}/{}: {ep}:{port}, {} of {n}",
                proto_name(proto),
                i + 1
            );
            rule(exprs, &comment)
        })
        .collect()
}

/// Whether the table hooks the service dispatch into prerouting and output: when there is
/// a service at all.
pub fn services_hooked(input: &RulesInput) -> bool {
    !input.services.is_empty()
}

/// The maps, sets and chains every service shares, without any service's elements: the
/// dispatch (`services`, `nodeports`), the refusal of services without endpoints, the hooks
/// (when there is a service: [`services_hooked`]), and masquerade by mark and for hairpin
/// traffic.
pub fn global(t: &mut weft_nft::Table, input: &RulesInput) {
    t.maps.push(Map::verdicts("services", key3(), vec![]));
    for n in 1..=MAP_ENDPOINTS {
        for (name, key) in [(eps_map(n), key4()), (np_eps_map(n), np_key3())] {
            t.maps.push(Map {
                name,
                key,
                data: MapData::Value(ep_data()),
                flags: Default::default(),
                elements: vec![],
            });
        }
    }
    t.maps.push(Map::verdicts("nodeports", key2(), vec![]));
    t.sets.push(Set::new("no-endpoints", key3(), vec![]));
    t.sets
        .push(Set::new("no-endpoint-nodeports", key2(), vec![]));
    t.sets.push(Set::new(
        "node-addrs",
        KeyType::Ipv4Addr,
        input.node_addrs.iter().map(|a| Value::Ipv4(*a)).collect(),
    ));
    // Hairpin: an endpoint reaching itself through its service leaves DNAT with its own
    // address as source and destination. Only the node's own workloads can do that here (the
    // DNAT happens on the client's node).
    let mut local: Vec<Ipv4Addr> = input
        .workloads
        .iter()
        .filter(|w| w.node == input.node)
        .filter_map(|w| w.ip)
        .collect();
    local.sort();
    local.dedup();
    t.sets.push(Set::new(
        HAIRPIN_SET,
        KeyType::Concat(vec![KeyType::Ipv4Addr, KeyType::Ipv4Addr]),
        local
            .into_iter()
            .map(|a| Value::Concat(vec![Value::Ipv4(a), Value::Ipv4(a)]))
            .collect(),
    ));

    let mut dispatch = vec![Rule::new(vec![Expr::vmap(
        &[Field::IpDaddr, Field::L4Proto, Field::ThDport],
        "services",
    )])];
    for n in 1..=MAP_ENDPOINTS {
        dispatch.push(rule(
            vec![Expr::DnatMap {
                key: vec![
                    Field::IpDaddr,
                    Field::L4Proto,
                    Field::ThDport,
                    Field::Numgen(n as u32),
                ],
                map: eps_map(n),
            }],
            &format!("services with {n} endpoint(s): one at random"),
        ));
    }
    dispatch.extend([Rule::new(vec![
        Expr::in_set(&[Field::IpDaddr], "node-addrs"),
        Expr::vmap(&[Field::L4Proto, Field::ThDport], "nodeports"),
    ])]);
    t.chains.push(Chain::regular("services", dispatch));
    // The hooks only while there is a service: a NAT hook costs every new connection of the
    // node its NAT work (about 5 % of a connection's cost on a quiet node, bench/README.md
    // "policy"). A first service or the last one going takes a full pass
    // (`Programmed::step`), which adds or removes them.
    if services_hooked(input) {
        for (name, hook) in [
            ("nat-prerouting", Hook::Prerouting),
            ("nat-output", Hook::Output),
        ] {
            t.chains.push(Chain::base(
                name,
                BaseChain::nat(hook, -100),
                vec![Rule::new(vec![Expr::jump("services")])],
            ));
        }
    }
    // Masquerade by mark comes first in postrouting.
    if let Some(post) = t.chains.iter_mut().find(|c| c.name == "postrouting") {
        post.rules.insert(
            0,
            rule(
                vec![
                    Expr::MarkMasked {
                        mask: MARK_MASQ,
                        op: CmpOp::Eq,
                        value: MARK_MASQ,
                    },
                    Expr::counter(),
                    Expr::masquerade(),
                ],
                "services: masquerade marked traffic (NodePort from outside)",
            ),
        );
        post.rules.insert(
            1,
            rule(
                vec![
                    Expr::in_set(&[Field::IpSaddr, Field::IpDaddr], HAIRPIN_SET),
                    Expr::counter(),
                    Expr::masquerade(),
                ],
                "services: hairpin (an endpoint reaching itself through its service) is masqueraded",
            ),
        );
    }
    // No endpoints: refuse at once rather than let the packet wander.
    let reject = || {
        vec![
            rule(
                vec![
                    Expr::in_set(
                        &[Field::IpDaddr, Field::L4Proto, Field::ThDport],
                        "no-endpoints",
                    ),
                    Expr::counter(),
                    Expr::Reject(Reject::IcmpPortUnreachable),
                ],
                "service without endpoints",
            ),
            rule(
                vec![
                    Expr::in_set(&[Field::IpDaddr], "node-addrs"),
                    Expr::in_set(&[Field::L4Proto, Field::ThDport], "no-endpoint-nodeports"),
                    Expr::counter(),
                    Expr::Reject(Reject::IcmpPortUnreachable),
                ],
                "NodePort of a service without endpoints",
            ),
        ]
    };
    for c in t
        .chains
        .iter_mut()
        .filter(|c| c.name == "forward" || c.name == "input")
    {
        // After the conntrack rules (the first two).
        let at = c.rules.len().min(2);
        for (i, r) in reject().into_iter().enumerate() {
            c.rules.insert(at + i, r);
        }
    }
    t.chains.push(Chain::base(
        "output",
        BaseChain::filter(Hook::Output, 0, Policy::Accept),
        reject(),
    ));
}

/// The session affinity set of one endpoint of one service port: the clients it served
/// lately (named by the endpoint's address, so that it outlives changes of the others).
pub fn affinity_set(port_id: &str, ep: Ipv4Addr) -> String {
    format!("aff_{port_id}_{ep}")
}

/// `ep_…` (session affinity): the client is remembered (`update @aff_… { ip saddr }`), then
/// DNAT.
fn endpoint_chain(
    name: &str,
    service: &str,
    ep: Ipv4Addr,
    (proto, port): (u8, u16),
    set: &str,
) -> Chain {
    let rules = vec![
        Rule::new(vec![Expr::set_update(&[Field::IpSaddr], set)]),
        rule(
            vec![Expr::l4proto(proto), Expr::dnat(ep, Some(port))],
            &format!("service {service} endpoint {ep}:{port}"),
        ),
    ];
    Chain::regular(name, rules)
}

#[cfg(test)]
#[path = "services_tests.rs"]
pub(crate) mod tests;
