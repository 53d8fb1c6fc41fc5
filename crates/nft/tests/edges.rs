//! Root tests: rules whose printing depends on context list as printed, checked with `nft` run only inside a private network
//! namespace.

mod common;

use common::*;
use weft_nft::*;

fn backend(ns: &TestNs) -> NetlinkBackend {
    NetlinkBackend::in_netns(&ns.ns).unwrap_or_else(|e| panic!("{e}"))
}

/// Whitespace-insensitive form of a listing (nft wraps long element lists).
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Rules whose printing depends on context (protocol dependencies, `th`
/// upgraded to `tcp`, sorted anonymous sets): nft lists them as we print them.
#[test]
fn edge_cases_list_as_printed() {
    if !root_with_nft_or_skip("edge_cases_list_as_printed") {
        return;
    }
    let ns = TestNs::new();
    let tcp = || Expr::l4proto(PROTO_TCP);
    let mut t = Table::new("weft");
    t.sets.push(Set::new(
        "pairs",
        KeyType::Concat(vec![KeyType::Ipv4Addr, KeyType::InetService]),
        vec![Value::Concat(vec![
            Value::Ipv4Prefix("10.0.0.0/8".parse().expect("net")),
            Value::PortRange(80, 90),
        ])],
    ));
    t.sets.push(Set::new(
        "marks",
        KeyType::Mark,
        vec![Value::Mark(1), Value::Mark(0x4000)],
    ));
    t.sets.push(Set::new(
        "top",
        KeyType::Ipv4Addr,
        vec![
            Value::Ipv4Prefix("255.255.255.0/24".parse().expect("net")),
            Value::Ipv4Prefix("0.0.0.0/1".parse().expect("net")),
        ],
    ));
    t.maps.push(Map {
        name: "dn".into(),
        key: KeyType::Ipv4Addr,
        data: MapData::Value(KeyType::Concat(vec![
            KeyType::Ipv4Addr,
            KeyType::InetService,
        ])),
        flags: SetFlags::default(),
        elements: vec![(
            Value::Ipv4("10.96.0.1".parse().expect("ip")),
            Data::Value(Value::Concat(vec![
                Value::Ipv4("10.0.0.1".parse().expect("ip")),
                Value::Port(80),
            ])),
        )],
    });
    let anon = |field, values| Expr::Lookup {
        key: vec![field],
        negate: false,
        set: SetRef::Anonymous(values),
    };
    t.chains.push(Chain::regular(
        "c",
        vec![
            Rule::new(vec![tcp(), Expr::tcp_dport(80), Expr::accept()]),
            Rule::new(vec![
                tcp(),
                Expr::eq(Field::ThDport, Value::Port(80)),
                Expr::accept(),
            ]),
            Rule::new(vec![
                tcp(),
                Expr::ip_saddr("1.2.3.4".parse::<std::net::Ipv4Addr>().expect("ip")),
                Expr::tcp_dport(80),
                Expr::accept(),
            ]),
            Rule::new(vec![
                tcp(),
                Expr::in_set(&[Field::IpDaddr, Field::ThDport], "pairs"),
                Expr::accept(),
            ]),
            Rule::new(vec![
                tcp(),
                Expr::counter(),
                Expr::tcp_dport(80),
                Expr::accept(),
            ]),
            Rule::new(vec![
                Expr::udp_dport(53),
                Expr::l4proto(PROTO_UDP),
                Expr::accept(),
            ]),
            Rule::new(vec![
                Expr::l4proto(PROTO_ICMP),
                Expr::icmp_type(8),
                Expr::accept(),
            ]),
            Rule::new(vec![
                Expr::icmp_type(8),
                Expr::eq(Field::IcmpCode, Value::IcmpCode(3)),
                Expr::drop(),
            ]),
            Rule::new(vec![
                anon(
                    Field::IpSaddr,
                    vec![
                        Value::Ipv4Prefix("10.0.0.0/8".parse().expect("net")),
                        Value::Ipv4("1.2.3.4".parse().expect("ip")),
                    ],
                ),
                Expr::accept(),
            ]),
            Rule::new(vec![
                anon(
                    Field::IcmpType,
                    vec![Value::IcmpType(8), Value::IcmpType(0)],
                ),
                Expr::accept(),
            ]),
            Rule::new(vec![
                anon(
                    Field::L4Proto,
                    vec![Value::Proto(PROTO_UDP), Value::Proto(PROTO_TCP)],
                ),
                Expr::accept(),
            ]),
            Rule::new(vec![Expr::in_set(&[Field::Mark], "marks"), Expr::accept()]),
            Rule::new(vec![
                Expr::MarkMasked {
                    mask: 0x4000,
                    op: CmpOp::Neq,
                    value: 0,
                },
                Expr::SetMark(MarkSet::And(0xffff_bfff)),
            ]),
            Rule::new(vec![
                Expr::eq(Field::Mark, Value::Mark(7)),
                Expr::SetMark(MarkSet::Value(9)),
            ]),
            Rule::new(vec![
                Expr::ne(Field::Oifname, Value::Ifname("eth*".into())),
                Expr::ne(Field::TcpSport, Value::PortRange(1, 1023)),
                Expr::drop(),
            ]),
            Rule::new(vec![
                Expr::ne(
                    Field::IpSaddr,
                    Value::Ipv4Range(
                        "1.2.3.1".parse().expect("ip"),
                        "1.2.3.5".parse().expect("ip"),
                    ),
                ),
                Expr::ret(),
            ]),
            Rule::new(vec![Expr::Vmap {
                key: vec![Field::Iifname],
                map: MapRef::Anonymous(vec![
                    (Value::Ifname("b".into()), Verdict::Drop),
                    (Value::Ifname("a".into()), Verdict::Accept),
                ]),
            }]),
            Rule::new(vec![
                Expr::NumgenIs {
                    modulus: 3,
                    value: 0,
                },
                Expr::Verdict(Verdict::Continue),
            ]),
            Rule::new(vec![Expr::Reject(Reject::AdminProhibited)]),
            Rule::new(vec![Expr::Reject(Reject::HostUnreachable)]),
            Rule::new(vec![Expr::Reject(Reject::IcmpPortUnreachable)]),
            Rule::new(vec![Expr::Log { prefix: None }, Expr::accept()]),
            Rule::new(vec![]).with_comment("only a comment"),
        ],
    ));
    t.chains.push(Chain::base(
        "n",
        BaseChain::nat(Hook::Prerouting, -90),
        vec![Rule::new(vec![
            tcp(),
            Expr::DnatMap {
                key: vec![Field::IpDaddr],
                map: "dn".into(),
            },
        ])],
    ));
    t.chains.push(Chain::base(
        "p",
        BaseChain::nat(Hook::Postrouting, 110),
        vec![Rule::new(vec![
            Expr::l4proto(PROTO_UDP),
            Expr::Snat {
                addr: "1.2.3.4".parse().expect("ip"),
                port: Some(1000),
            },
        ])],
    ));
    let mut nl = backend(&ns);
    nl.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    let listing = ns.list("weft");
    assert_eq!(chains_of(&listing), model_chains(&t), "{listing}");
    assert_eq!(squash(&listing), squash(&t.to_string()), "{listing}");
    assert_eq!(nl.drift(&t).expect("drift"), Vec::<String>::new());
}
