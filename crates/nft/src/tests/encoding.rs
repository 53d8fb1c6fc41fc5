//! Rules compiled to kernel expressions, printed like `nft --debug=netlink`,
//! compared with nft's own output for the same rules.

use super::*;
use crate::compile::compile_rule;

fn lowered(exprs: Vec<Expr>) -> String {
    let t = table_with_sets();
    let c = compile_rule(&t, &Rule::new(exprs)).unwrap_or_else(|e| panic!("{e}"));
    c.exprs
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(exprs: Vec<Expr>, nft: &str) {
    let want: Vec<&str> = nft
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lowered(exprs), want.join("\n"));
}

const NFPROTO_IPV4: &str = "
  [ meta load nfproto => reg 1 ]
  [ cmp eq reg 1 0x00000002 ]";

#[test]
fn interface_names() {
    check(
        vec![Expr::iifname("eth0"), Expr::accept()],
        "[ meta load iifname => reg 1 ]
         [ cmp eq reg 1 0x30687465 0x00000000 0x00000000 0x00000000 ]
         [ immediate reg 0 accept ]",
    );
    check(
        vec![Expr::iifname("cali*"), Expr::accept()],
        "[ meta load iifname => reg 1 ]
         [ cmp eq reg 1 0x696c6163 ]
         [ immediate reg 0 accept ]",
    );
    check(
        vec![
            Expr::ne(Field::Oifname, Value::Ifname("eth0".into())),
            Expr::drop(),
        ],
        "[ meta load oifname => reg 1 ]
         [ cmp neq reg 1 0x30687465 0x00000000 0x00000000 0x00000000 ]
         [ immediate reg 0 drop ]",
    );
    check(
        vec![Expr::vmap(&[Field::Iifname], "eps")],
        "[ meta load iifname => reg 1 ]
         [ lookup reg 1 set eps dreg 0 ]",
    );
}

#[test]
fn addresses_prefixes_and_sets() {
    check(
        vec![Expr::ip_saddr(ip("10.0.0.1")), Expr::drop()],
        &format!(
            "{NFPROTO_IPV4}
             [ payload load 4b @ network header + 12 => reg 1 ]
             [ cmp eq reg 1 0x0100000a ]
             [ immediate reg 0 drop ]"
        ),
    );
    check(
        vec![Expr::ip_saddr(net("10.0.0.0/8")), Expr::drop()],
        &format!(
            "{NFPROTO_IPV4}
             [ payload load 1b @ network header + 12 => reg 1 ]
             [ cmp eq reg 1 0x0000000a ]
             [ immediate reg 0 drop ]"
        ),
    );
    check(
        vec![Expr::ip_saddr(net("10.0.0.0/26")), Expr::counter()],
        &format!(
            "{NFPROTO_IPV4}
             [ payload load 4b @ network header + 12 => reg 1 ]
             [ bitwise reg 1 = ( reg 1 & 0xc0ffffff ) ^ 0x00000000 ]
             [ cmp eq reg 1 0x0000000a ]
             [ counter pkts 0 bytes 0 ]"
        ),
    );
    check(
        vec![
            Expr::not_in_set(&[Field::IpDaddr], "allowed"),
            Expr::accept(),
        ],
        &format!(
            "{NFPROTO_IPV4}
             [ payload load 4b @ network header + 16 => reg 1 ]
             [ lookup reg 1 set allowed 0x1 ]
             [ immediate reg 0 accept ]"
        ),
    );
    check(
        vec![
            Expr::eq(
                Field::IpSaddr,
                Value::Ipv4Range(ip("1.2.3.1"), ip("1.2.3.5")),
            ),
            Expr::accept(),
        ],
        &format!(
            "{NFPROTO_IPV4}
             [ payload load 4b @ network header + 12 => reg 1 ]
             [ cmp gte reg 1 0x01030201 ]
             [ cmp lte reg 1 0x05030201 ]
             [ immediate reg 0 accept ]"
        ),
    );
}

#[test]
fn service_dispatch_and_endpoints() {
    check(
        vec![Expr::vmap(
            &[Field::IpDaddr, Field::L4Proto, Field::ThDport],
            "svc",
        )],
        &format!(
            "{NFPROTO_IPV4}
             [ payload load 4b @ network header + 16 => reg 1 ]
             [ meta load l4proto => reg 9 ]
             [ payload load 2b @ transport header + 2 => reg 10 ]
             [ lookup reg 1 set svc dreg 0 ]"
        ),
    );
    check(
        vec![Expr::NumgenVmap {
            targets: vec![Verdict::Jump("ep1".into()), Verdict::Jump("ep1".into())],
        }],
        "[ numgen reg 1 = random mod 2 ]
         [ lookup reg 1 set __map%d dreg 0 ]",
    );
    check(
        vec![
            Expr::NumgenIs {
                modulus: 3,
                value: 0,
            },
            Expr::goto("a"),
        ],
        "[ numgen reg 1 = random mod 3 ]
         [ cmp eq reg 1 0x00000000 ]
         [ immediate reg 0 goto -> a ]",
    );
    check(
        vec![
            Expr::l4proto(PROTO_TCP),
            Expr::dnat(ip("10.244.0.5"), Some(8080)),
        ],
        "[ meta load l4proto => reg 1 ]
         [ cmp eq reg 1 0x00000006 ]
         [ immediate reg 1 0x0500f40a ]
         [ immediate reg 2 0x0000901f ]
         [ nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2 ]",
    );
    check(
        vec![Expr::dnat(ip("10.244.0.5"), None)],
        "[ immediate reg 1 0x0500f40a ]
         [ nat dnat ip addr_min reg 1 ]",
    );
    check(
        vec![Expr::DnatMap {
            key: vec![Field::IpDaddr, Field::TcpDport],
            map: "da".into(),
        }],
        &format!(
            "{NFPROTO_IPV4}
             [ meta load l4proto => reg 1 ]
             [ cmp eq reg 1 0x00000006 ]
             [ payload load 4b @ network header + 16 => reg 1 ]
             [ payload load 2b @ transport header + 2 => reg 9 ]
             [ lookup reg 1 set da dreg 1 ]
             [ nat dnat ip addr_min reg 1 ]"
        ),
    );
    check(
        vec![
            Expr::l4proto(PROTO_TCP),
            Expr::DnatMap {
                key: vec![Field::IpDaddr],
                map: "dn".into(),
            },
        ],
        &format!(
            "[ meta load l4proto => reg 1 ]
             [ cmp eq reg 1 0x00000006 ]
             {NFPROTO_IPV4}
             [ payload load 4b @ network header + 16 => reg 1 ]
             [ lookup reg 1 set dn dreg 1 ]
             [ nat dnat ip addr_min reg 1 proto_min reg 9 ]"
        ),
    );
}

#[test]
fn ports_and_protocol_dependencies() {
    check(
        vec![Expr::tcp_dport(80), Expr::accept()],
        "[ meta load l4proto => reg 1 ]
         [ cmp eq reg 1 0x00000006 ]
         [ payload load 2b @ transport header + 2 => reg 1 ]
         [ cmp eq reg 1 0x00005000 ]
         [ immediate reg 0 accept ]",
    );
    // An explicit protocol match is the dependency: not repeated.
    check(
        vec![
            Expr::l4proto(PROTO_TCP),
            Expr::ip_saddr(ip("1.2.3.4")),
            Expr::tcp_dport(80),
            Expr::accept(),
        ],
        &format!(
            "[ meta load l4proto => reg 1 ]
             [ cmp eq reg 1 0x00000006 ]
             {NFPROTO_IPV4}
             [ payload load 4b @ network header + 12 => reg 1 ]
             [ cmp eq reg 1 0x04030201 ]
             [ payload load 2b @ transport header + 2 => reg 1 ]
             [ cmp eq reg 1 0x00005000 ]
             [ immediate reg 0 accept ]"
        ),
    );
    check(
        vec![
            Expr::eq(Field::UdpSport, Value::PortRange(1000, 2000)),
            Expr::accept(),
        ],
        "[ meta load l4proto => reg 1 ]
         [ cmp eq reg 1 0x00000011 ]
         [ payload load 2b @ transport header + 0 => reg 1 ]
         [ cmp gte reg 1 0x0000e803 ]
         [ cmp lte reg 1 0x0000d007 ]
         [ immediate reg 0 accept ]",
    );
    check(
        vec![
            Expr::ne(Field::UdpSport, Value::PortRange(1000, 2000)),
            Expr::accept(),
        ],
        "[ meta load l4proto => reg 1 ]
         [ cmp eq reg 1 0x00000011 ]
         [ payload load 2b @ transport header + 0 => reg 1 ]
         [ range neq reg 1 0x0000e803 0x0000d007 ]
         [ immediate reg 0 accept ]",
    );
    check(
        vec![Expr::eq(Field::ThDport, Value::Port(53)), Expr::accept()],
        "[ payload load 2b @ transport header + 2 => reg 1 ]
         [ cmp eq reg 1 0x00003500 ]
         [ immediate reg 0 accept ]",
    );
    check(
        vec![Expr::icmp_type(8), Expr::drop()],
        &format!(
            "{NFPROTO_IPV4}
             [ meta load l4proto => reg 1 ]
             [ cmp eq reg 1 0x00000001 ]
             [ payload load 1b @ transport header + 0 => reg 1 ]
             [ cmp eq reg 1 0x00000008 ]
             [ immediate reg 0 drop ]"
        ),
    );
    check(
        vec![
            Expr::l4proto(PROTO_ICMP),
            Expr::icmp_type(8),
            Expr::accept(),
        ],
        "[ meta load l4proto => reg 1 ]
         [ cmp eq reg 1 0x00000001 ]
         [ payload load 1b @ transport header + 0 => reg 1 ]
         [ cmp eq reg 1 0x00000008 ]
         [ immediate reg 0 accept ]",
    );
}

#[test]
fn conntrack_marks_and_statements() {
    check(
        vec![
            Expr::ct_state(CtStates::ESTABLISHED | CtStates::RELATED),
            Expr::accept(),
        ],
        "[ ct load state => reg 1 ]
         [ bitwise reg 1 = ( reg 1 & 0x00000006 ) ^ 0x00000000 ]
         [ cmp neq reg 1 0x00000000 ]
         [ immediate reg 0 accept ]",
    );
    check(
        vec![
            Expr::MarkMasked {
                mask: 0x4000,
                op: CmpOp::Eq,
                value: 0x4000,
            },
            Expr::masquerade(),
        ],
        "[ meta load mark => reg 1 ]
         [ bitwise reg 1 = ( reg 1 & 0x00004000 ) ^ 0x00000000 ]
         [ cmp eq reg 1 0x00004000 ]
         [ masq ]",
    );
    check(
        vec![Expr::SetMark(MarkSet::Or(0x4000))],
        "[ meta load mark => reg 1 ]
         [ bitwise reg 1 = ( reg 1 & 0xffffbfff ) ^ 0x00004000 ]
         [ meta set mark with reg 1 ]",
    );
    check(
        vec![Expr::SetMark(MarkSet::Value(0x4000))],
        "[ immediate reg 1 0x00004000 ]
         [ meta set mark with reg 1 ]",
    );
    check(
        vec![Expr::eq(Field::Mark, Value::Mark(0x4000)), Expr::accept()],
        "[ meta load mark => reg 1 ]
         [ cmp eq reg 1 0x00004000 ]
         [ immediate reg 0 accept ]",
    );
    check(
        vec![Expr::Masquerade { fully_random: true }],
        "[ masq flags 0x10 ]",
    );
    check(
        vec![Expr::log("weft-drop: "), Expr::drop()],
        "[ log prefix weft-drop:  ]
         [ immediate reg 0 drop ]",
    );
    check(vec![Expr::jump("ep1")], "[ immediate reg 0 jump -> ep1 ]");
    check(vec![Expr::ret()], "[ immediate reg 0 return ]");
    check(
        vec![Expr::Snat {
            addr: ip("1.2.3.4"),
            port: None,
        }],
        "[ immediate reg 1 0x04030201 ]
         [ nat snat ip addr_min reg 1 ]",
    );
}

#[test]
fn rejects() {
    check(
        vec![Expr::Reject(Reject::PortUnreachable)],
        "[ reject type 2 code 1 ]",
    );
    check(
        vec![Expr::Reject(Reject::AdminProhibited)],
        "[ reject type 2 code 3 ]",
    );
    check(
        vec![Expr::Reject(Reject::TcpReset)],
        "[ meta load l4proto => reg 1 ]
         [ cmp eq reg 1 0x00000006 ]
         [ reject type 1 code 0 ]",
    );
    check(
        vec![Expr::Reject(Reject::IcmpPortUnreachable)],
        &format!("{NFPROTO_IPV4}\n[ reject type 0 code 3 ]"),
    );
    check(
        vec![Expr::Reject(Reject::IcmpAdminProhibited)],
        &format!("{NFPROTO_IPV4}\n[ reject type 0 code 13 ]"),
    );
}

#[test]
fn anonymous_concatenations() {
    let t = table_with_sets();
    let rule = Rule::new(vec![
        Expr::Lookup {
            key: vec![Field::Iifname, Field::IpSaddr],
            negate: false,
            set: SetRef::Anonymous(vec![Value::Concat(vec![
                Value::Ifname("eth0".into()),
                Value::Ipv4(ip("1.2.3.4")),
            ])]),
        },
        Expr::accept(),
    ]);
    let c = compile_rule(&t, &rule).unwrap_or_else(|e| panic!("{e}"));
    let text: Vec<String> = c.exprs.iter().map(|x| x.to_string()).collect();
    assert_eq!(
        text,
        [
            "[ meta load nfproto => reg 1 ]",
            "[ cmp eq reg 1 0x00000002 ]",
            "[ meta load iifname => reg 1 ]",
            "[ payload load 4b @ network header + 12 => reg 2 ]",
            "[ lookup reg 1 set __set%d ]",
            "[ immediate reg 0 accept ]",
        ]
    );
    // nft: `__set%d t10 3 size 1`, element `30687465 00000000 00000000 00000000 04030201`.
    let s = &c.anon[0];
    assert_eq!(s.flags, 0x3);
    assert_eq!(s.key.len, 20);
    assert_eq!(s.elements.len(), 1);
    let mut want = b"eth0".to_vec();
    want.resize(16, 0);
    want.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(s.elements[0].key, want);
    // Each kernel expression knows the model expression it came from.
    assert_eq!(c.origin, vec![0, 0, 0, 0, 0, 1]);
}

#[test]
fn invalid_rules_are_refused_before_anything_is_sent() {
    let t = table_with_sets();
    let bad = [
        (
            vec![Expr::eq(Field::TcpDport, Value::Ipv4(ip("1.2.3.4")))],
            "expected inet_service",
        ),
        (vec![Expr::ip_saddr(net("0.0.0.0/0"))], "/0"),
        (
            vec![Expr::iifname("a-very-long-interface-name")],
            "1-15 bytes",
        ),
        (
            vec![Expr::Lookup {
                key: vec![Field::TcpDport],
                negate: false,
                set: SetRef::Anonymous(vec![]),
            }],
            "at least one element",
        ),
        (
            vec![Expr::NumgenVmap { targets: vec![] }],
            "at least one target",
        ),
        (
            vec![Expr::NumgenIs {
                modulus: 2,
                value: 2,
            }],
            "below the modulus",
        ),
        (
            vec![Expr::vmap(&[Field::IpSaddr], "svc")],
            "not a verdict map of ipv4_addr",
        ),
        (
            vec![Expr::DnatMap {
                key: vec![Field::IpDaddr],
                map: "nope".into(),
            }],
            "not in the table",
        ),
        (vec![Expr::ct_state(CtStates(0))], "no conntrack state"),
        (
            vec![Expr::eq(Field::TcpDport, Value::PortRange(90, 80))],
            "ends before it starts",
        ),
    ];
    for (exprs, why) in bad {
        let r = Rule::new(exprs);
        let e = compile_rule(&t, &r).expect_err(&r.to_string());
        assert!(e.contains(why), "{r}: {e}");
    }
    let long = Rule::new(vec![Expr::accept()]).with_comment(&"x".repeat(200));
    assert!(compile_rule(&t, &long).is_err());
}
