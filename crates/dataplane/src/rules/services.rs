//! Services as kube-proxy's nftables mode programs them: one verdict map keyed by
//! `ip daddr . meta l4proto . th dport` to a chain per service port, `numgen random mod N` to a
//! chain per endpoint that DNATs; NodePorts on the node's addresses through a second map;
//! masquerade by mark for traffic from outside and for hairpin; services without endpoints
//! reject with ICMP port unreachable. Lookups cost the same with 10 or 10,000 services.

use std::net::Ipv4Addr;

use weft_nft::{
    BaseChain, Chain, CmpOp, Expr, Field, Hook, KeyType, Map, MarkSet, Policy, Reject, Rule, Set,
    Value, Verdict,
};

use super::{chain_safe, rule, RulesInput};

/// Mark bit: masquerade this packet on its way out.
pub const MARK_MASQ: u32 = 0x4000;

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

/// Adds the service maps, chains and hooks to `t`.
pub fn compile(t: &mut weft_nft::Table, input: &RulesInput) {
    let mut svc_map = vec![];
    let mut nodeport_map = vec![];
    let mut no_ep = vec![];
    let mut no_ep_nodeports = vec![];
    for s in input.services {
        let (Some(ip), Ok(ports)) = (s.cluster_ip(), s.ports()) else {
            continue;
        };
        let eps = s.endpoints(input.workloads);
        let base = format!("{}.{}", s.metadata.namespace, s.metadata.name);
        for p in &ports {
            let id = chain_safe(&format!("{base}_{}{}", proto_name(p.protocol), p.port));
            let key = Value::Concat(vec![
                Value::Ipv4(ip),
                Value::Proto(p.protocol),
                Value::Port(p.port),
            ]);
            if eps.is_empty() {
                no_ep.push(key);
                if let Some(np) = p.node_port {
                    no_ep_nodeports.push(Value::Concat(vec![
                        Value::Proto(p.protocol),
                        Value::Port(np),
                    ]));
                }
                continue;
            }
            let svc_chain = format!("svc_{id}");
            let mut targets = vec![];
            for (i, ep) in eps.iter().enumerate() {
                let ep_chain = format!("ep_{id}_{i}");
                t.chains.push(endpoint_chain(
                    &ep_chain,
                    &base,
                    *ep,
                    p.protocol,
                    p.target_port,
                ));
                targets.push(Verdict::Goto(ep_chain));
            }
            // numgen cascade rather than an anonymous vmap: anonymous sets make the kernel
            // re-walk the transaction for each one, which does not scale to 10,000 services.
            let mut rules = Rule::numgen_cascade(&targets);
            if let Some(first) = rules.first_mut() {
                first.comment = Some(format!(
                    "service {base} port {}/{}: {} endpoint(s)",
                    p.port,
                    proto_name(p.protocol),
                    eps.len()
                ));
            }
            t.chains.push(Chain::regular(&svc_chain, rules));
            svc_map.push((key, Verdict::Goto(svc_chain.clone())));
            if let Some(np) = p.node_port {
                let ext = format!("ext_{id}");
                t.chains.push(Chain::regular(
                    &ext,
                    vec![rule(
                        vec![
                            Expr::SetMark(MarkSet::Or(MARK_MASQ)),
                            Expr::goto(&svc_chain),
                        ],
                        &format!("service {base}: NodePort {np} from anywhere is masqueraded"),
                    )],
                ));
                nodeport_map.push((
                    Value::Concat(vec![Value::Proto(p.protocol), Value::Port(np)]),
                    Verdict::Goto(ext),
                ));
            }
        }
    }
    t.maps.push(Map::verdicts("services", key3(), svc_map));
    t.maps
        .push(Map::verdicts("nodeports", key2(), nodeport_map));
    t.sets.push(Set::new("no-endpoints", key3(), no_ep));
    t.sets
        .push(Set::new("no-endpoint-nodeports", key2(), no_ep_nodeports));
    t.sets.push(Set::new(
        "node-addrs",
        KeyType::Ipv4Addr,
        input.node_addrs.iter().map(|a| Value::Ipv4(*a)).collect(),
    ));

    let dispatch = vec![
        Rule::new(vec![Expr::vmap(
            &[Field::IpDaddr, Field::L4Proto, Field::ThDport],
            "services",
        )]),
        Rule::new(vec![
            Expr::in_set(&[Field::IpDaddr], "node-addrs"),
            Expr::vmap(&[Field::L4Proto, Field::ThDport], "nodeports"),
        ]),
    ];
    t.chains.push(Chain::regular("services", dispatch));
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
                "services: masquerade marked traffic (NodePort from outside, hairpin)",
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

/// `ep_…`: hairpin traffic (the endpoint reaching itself) is marked for masquerade, then DNAT.
fn endpoint_chain(name: &str, service: &str, ep: Ipv4Addr, proto: u8, port: u16) -> Chain {
    Chain::regular(
        name,
        vec![
            rule(
                vec![
                    Expr::eq(Field::IpSaddr, ep),
                    Expr::SetMark(MarkSet::Or(MARK_MASQ)),
                ],
                "hairpin: an endpoint reaching itself through its service",
            ),
            rule(
                vec![Expr::l4proto(proto), Expr::dnat(ep, Some(port))],
                &format!("service {service} endpoint {ep}:{port}"),
            ),
        ],
    )
}
