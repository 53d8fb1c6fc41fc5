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

/// Adds the service maps, chains and hooks to `t`.
pub fn compile(t: &mut weft_nft::Table, input: &RulesInput) {
    let mut svc_map = vec![];
    let mut nodeport_map = vec![];
    let mut no_ep = vec![];
    let mut no_ep_nodeports = vec![];
    let endpoints = endpoints_of(input.services, input.workloads);
    for (s, eps) in input.services.iter().zip(endpoints) {
        let (Some(ip), Ok(ports)) = (s.cluster_ip(), s.ports()) else {
            continue;
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
            // Session affinity first: a client seen lately goes back to its endpoint.
            let mut rules = vec![];
            for (i, ep) in eps.iter().enumerate() {
                let ep_chain = format!("ep_{id}_{i}");
                let aff = affinity.map(|timeout| {
                    let set = affinity_set(&id, *ep);
                    t.sets.push(Set::dynamic(&set, KeyType::Ipv4Addr, timeout));
                    rules.push(rule(
                        vec![Expr::in_set(&[Field::IpSaddr], &set), Expr::goto(&ep_chain)],
                        &format!("session affinity to {ep} ({timeout}s)"),
                    ));
                    set
                });
                t.chains.push(endpoint_chain(
                    &ep_chain,
                    &base,
                    *ep,
                    (p.protocol, p.target_port),
                    aff.as_deref(),
                ));
                targets.push(Verdict::Goto(ep_chain));
            }
            // numgen cascade rather than an anonymous vmap: anonymous sets make the kernel
            // re-walk the transaction for each one, which does not scale to 10,000 services.
            let mut cascade = Rule::numgen_cascade(&targets);
            if let Some(first) = cascade.first_mut() {
                first.comment = Some(format!(
                    "service {base} port {}/{}: {} endpoint(s)",
                    p.port,
                    proto_name(p.protocol),
                    eps.len()
                ));
            }
            rules.extend(cascade);
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

/// The session affinity set of one endpoint of one service port: the clients it served
/// lately (named by the endpoint's address, so that it outlives changes of the others).
pub fn affinity_set(port_id: &str, ep: Ipv4Addr) -> String {
    format!("aff_{port_id}_{ep}")
}

/// `ep_…`: hairpin traffic (the endpoint reaching itself) is marked for masquerade; with
/// session affinity the client is remembered (`update @aff_… { ip saddr }`); then DNAT.
fn endpoint_chain(
    name: &str,
    service: &str,
    ep: Ipv4Addr,
    (proto, port): (u8, u16),
    affinity: Option<&str>,
) -> Chain {
    let mut rules = vec![rule(
        vec![
            Expr::eq(Field::IpSaddr, ep),
            Expr::SetMark(MarkSet::Or(MARK_MASQ)),
        ],
        "hairpin: an endpoint reaching itself through its service",
    )];
    if let Some(set) = affinity {
        rules.push(Rule::new(vec![Expr::set_update(&[Field::IpSaddr], set)]));
    }
    rules.push(rule(
        vec![Expr::l4proto(proto), Expr::dnat(ep, Some(port))],
        &format!("service {service} endpoint {ep}:{port}"),
    ));
    Chain::regular(name, rules)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rules::{ruleset, RulesInput};
    use weft_model::policy::Service;
    use weft_model::Workload;

    pub(crate) fn workload(name: &str, ip: [u8; 4]) -> Workload {
        Workload {
            name: name.into(),
            id: format!("{name:0>64}"),
            node: "n1".into(),
            network: "net1".into(),
            ip: Some(ip.into()),
            host_iface: format!("cali{name:0>11}"),
            labels: [("app".to_string(), "dns".to_string())].into(),
            image: "toolbox".into(),
            command: vec![],
            net_of: None,
            created: 0,
        }
    }

    pub(crate) fn service(extra: &str) -> Service {
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: dns\nspec:\n  type: NodePort\n  clusterIP: 10.96.0.10\n  selector:\n    app: dns\n  ports:\n  - port: 53\n    protocol: UDP\n    nodePort: 30053\n{extra}"
        );
        match weft_model::policy::decode_documents(&yaml)
            .expect("a service")
            .remove(0)
        {
            weft_model::policy::Resource::Service(s) => s,
            other => panic!("not a service: {other:?}"),
        }
    }

    pub(crate) fn with<T>(
        services: &[Service],
        workloads: &[Workload],
        f: impl FnOnce(&RulesInput) -> T,
    ) -> T {
        let input = RulesInput {
            node: "n1",
            networks: &[],
            workloads,
            policies: &[],
            cluster_nets: vec![],
            services,
            node_addrs: vec![Ipv4Addr::new(198, 51, 100, 11)],
            deny_action: weft_model::DenyAction::Drop,
            blocks: &[],
            ports: &[],
        };
        f(&input)
    }

    #[test]
    fn client_ip_affinity_is_consulted_before_the_random_choice() {
        let eps = [
            workload("a", [10, 244, 0, 5]),
            workload("b", [10, 244, 0, 6]),
        ];
        let svc = [service(
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 600\n",
        )];
        let t = with(&svc, &eps, ruleset);
        let set = affinity_set("default.dns_udp53", Ipv4Addr::new(10, 244, 0, 5));
        let s = t.set(&set).expect("a set per endpoint");
        assert!(s.flags.dynamic && s.flags.timeout == Some(600), "{s}");
        let chain = t.chain("svc_default.dns_udp53").expect("service chain");
        let lines: Vec<String> = chain.rules.iter().map(|r| r.to_string()).collect();
        assert!(
            lines[0].starts_with(&format!("ip saddr @{set} goto ep_default.dns_udp53_0")),
            "{lines:?}"
        );
        assert!(lines[2].contains("numgen random mod 2"), "{lines:?}");
        let ep = t.chain("ep_default.dns_udp53_0").expect("endpoint chain");
        assert!(
            ep.rules
                .iter()
                .any(|r| r.to_string() == format!("update @{set} {{ ip saddr }}")),
            "{ep}"
        );
        // The whole table compiles (the sets exist, are dynamic, have the right key).
        weft_nft::Summary::of(&t).expect("compiles");
        // Without affinity: no sets, the random choice comes first.
        let t = with(&[service("")], &eps, ruleset);
        assert!(!t.sets.iter().any(|s| s.name.starts_with("aff_")));
        let chain = t.chain("svc_default.dns_udp53").expect("service chain");
        assert!(chain.rules[0].to_string().contains("numgen"), "{chain}");
    }

    #[test]
    fn the_label_index_finds_what_matching_every_workload_finds() {
        let mut ws = vec![
            workload("a", [10, 244, 0, 5]),
            workload("b", [10, 244, 0, 6]),
            workload("c", [10, 244, 0, 7]),
            workload("d", [10, 244, 0, 5]),
        ];
        ws[1].labels.insert("tier".into(), "front".into());
        ws[2].labels = [("app".to_string(), "web".to_string())].into();
        ws[3].ip = None;
        let mut two_keys = service("");
        two_keys.spec.selector.insert("tier".into(), "front".into());
        let mut nobody = service("");
        nobody.spec.selector = [("app".to_string(), "none".to_string())].into();
        let mut empty = service("");
        empty.spec.selector.clear();
        let all = [service(""), two_keys, nobody, empty];
        let found = endpoints_of(&all, &ws);
        assert_eq!(
            found,
            vec![
                vec![Ipv4Addr::new(10, 244, 0, 5), Ipv4Addr::new(10, 244, 0, 6)],
                vec![Ipv4Addr::new(10, 244, 0, 6)],
                vec![],
                vec![],
            ]
        );
        for (s, eps) in all.iter().zip(&found) {
            assert_eq!(&s.endpoints(&ws), eps, "{}", s.metadata.name);
        }
    }
}
