//! `Display` compared with what `nft list` printed for the same rules.

use super::*;
use crate::display::priority_text;

fn shows(exprs: Vec<Expr>, nft: &str) {
    assert_eq!(Rule::new(exprs).to_string(), nft);
}

#[test]
fn rules_print_like_nft_lists_them() {
    shows(
        vec![Expr::iifname("eth0"), Expr::accept()],
        "iifname \"eth0\" accept",
    );
    shows(
        vec![Expr::iifname("cali*"), Expr::accept()],
        "iifname \"cali*\" accept",
    );
    shows(
        vec![
            Expr::ne(Field::Oifname, Value::Ifname("eth0".into())),
            Expr::drop(),
        ],
        "oifname != \"eth0\" drop",
    );
    shows(
        vec![Expr::vmap(&[Field::Iifname], "eps")],
        "iifname vmap @eps",
    );
    shows(
        vec![Expr::ip_saddr(net("10.0.0.0/8")), Expr::drop()],
        "ip saddr 10.0.0.0/8 drop",
    );
    shows(
        vec![Expr::ip_saddr(net("10.0.0.1/32")), Expr::drop()],
        "ip saddr 10.0.0.1 drop",
    );
    shows(
        vec![
            Expr::ne(
                Field::IpSaddr,
                Value::Ipv4Range(ip("1.2.3.1"), ip("1.2.3.5")),
            ),
            Expr::accept(),
        ],
        "ip saddr != 1.2.3.1-1.2.3.5 accept",
    );
    shows(
        vec![
            Expr::not_in_set(&[Field::IpDaddr], "allowed"),
            Expr::accept(),
        ],
        "ip daddr != @allowed accept",
    );
    shows(
        vec![Expr::vmap(
            &[Field::IpDaddr, Field::L4Proto, Field::ThDport],
            "svc",
        )],
        "ip daddr . meta l4proto . th dport vmap @svc",
    );
    shows(
        vec![Expr::NumgenVmap {
            targets: vec![Verdict::Jump("a".into()), Verdict::Goto("b".into())],
        }],
        "numgen random mod 2 vmap { 0 : jump a, 1 : goto b }",
    );
    shows(
        vec![
            Expr::NumgenIs {
                modulus: 3,
                value: 0,
            },
            Expr::goto("a"),
        ],
        "numgen random mod 3 0 goto a",
    );
    shows(
        vec![
            Expr::l4proto(PROTO_TCP),
            Expr::dnat(ip("10.244.0.5"), Some(8080)),
        ],
        "meta l4proto tcp dnat ip to 10.244.0.5:8080",
    );
    shows(
        vec![Expr::dnat(ip("10.244.0.5"), None)],
        "dnat ip to 10.244.0.5",
    );
    shows(
        vec![Expr::DnatMap {
            key: vec![Field::IpDaddr, Field::TcpDport],
            map: "da".into(),
        }],
        "dnat ip to ip daddr . tcp dport map @da",
    );
    shows(
        vec![Expr::Snat {
            addr: ip("1.2.3.4"),
            port: None,
        }],
        "snat ip to 1.2.3.4",
    );
    shows(
        vec![
            Expr::eq(Field::UdpSport, Value::PortRange(1000, 2000)),
            Expr::accept(),
        ],
        "udp sport 1000-2000 accept",
    );
    shows(
        vec![
            Expr::icmp_type(8),
            Expr::eq(Field::IcmpCode, Value::IcmpCode(0)),
            Expr::drop(),
        ],
        "icmp type echo-request icmp code net-unreachable drop",
    );
    shows(
        vec![
            Expr::ct_state(CtStates::ESTABLISHED | CtStates::RELATED),
            Expr::accept(),
        ],
        "ct state established,related accept",
    );
    shows(
        vec![
            Expr::ct_state(CtStates::NEW),
            Expr::counter(),
            Expr::accept(),
        ],
        "ct state new counter accept",
    );
    shows(
        vec![Expr::eq(Field::Mark, Value::Mark(0x4000)), Expr::accept()],
        "meta mark 0x00004000 accept",
    );
    shows(
        vec![
            Expr::MarkMasked {
                mask: 0x4000,
                op: CmpOp::Neq,
                value: 0,
            },
            Expr::accept(),
        ],
        "meta mark & 0x00004000 != 0x00000000 accept",
    );
    shows(
        vec![Expr::SetMark(MarkSet::Value(0x4000))],
        "meta mark set 0x00004000",
    );
    shows(
        vec![Expr::SetMark(MarkSet::Or(0x4000))],
        "meta mark set meta mark | 0x00004000",
    );
    shows(vec![Expr::Reject(Reject::PortUnreachable)], "reject");
    shows(
        vec![Expr::Reject(Reject::AdminProhibited)],
        "reject with icmpx admin-prohibited",
    );
    shows(
        vec![Expr::Reject(Reject::TcpReset)],
        "meta l4proto tcp reject with tcp reset",
    );
    shows(
        vec![Expr::tcp_dport(80), Expr::Reject(Reject::TcpReset)],
        "tcp dport 80 reject with tcp reset",
    );
    shows(
        vec![Expr::Reject(Reject::IcmpPortUnreachable)],
        "reject with icmp port-unreachable",
    );
    shows(
        vec![Expr::log("weft-drop: "), Expr::drop()],
        "log prefix \"weft-drop: \" drop",
    );
    shows(
        vec![Expr::Masquerade { fully_random: true }],
        "masquerade fully-random",
    );
    assert_eq!(
        Rule::new(vec![Expr::accept()])
            .with_comment("hello world")
            .to_string(),
        "accept comment \"hello world\""
    );
}

#[test]
fn anonymous_sets_print_sorted() {
    let lookup = |field: Field, values: Vec<Value>| Expr::Lookup {
        key: vec![field],
        negate: false,
        set: SetRef::Anonymous(values),
    };
    shows(
        vec![
            lookup(Field::TcpDport, vec![Value::Port(80), Value::Port(22)]),
            Expr::accept(),
        ],
        "tcp dport { 22, 80 } accept",
    );
    shows(
        vec![
            lookup(
                Field::IpSaddr,
                vec![net("10.0.0.0/8"), Value::Ipv4(ip("1.2.3.4"))],
            ),
            Expr::accept(),
        ],
        "ip saddr { 1.2.3.4, 10.0.0.0/8 } accept",
    );
    shows(
        vec![
            lookup(
                Field::IcmpType,
                vec![Value::IcmpType(8), Value::IcmpType(0)],
            ),
            Expr::accept(),
        ],
        "icmp type { echo-reply, echo-request } accept",
    );
    shows(
        vec![
            lookup(
                Field::L4Proto,
                vec![Value::Proto(PROTO_UDP), Value::Proto(PROTO_TCP)],
            ),
            Expr::accept(),
        ],
        "meta l4proto { tcp, udp } accept",
    );
}

#[test]
fn protocol_matches_hidden_as_nft_hides_them() {
    let tcp = || Expr::l4proto(PROTO_TCP);
    shows(
        vec![tcp(), Expr::tcp_dport(80), Expr::accept()],
        "tcp dport 80 accept",
    );
    shows(
        vec![
            tcp(),
            Expr::eq(Field::ThDport, Value::Port(80)),
            Expr::accept(),
        ],
        "tcp dport 80 accept",
    );
    shows(
        vec![
            tcp(),
            Expr::ip_saddr(ip("1.2.3.4")),
            Expr::tcp_dport(80),
            Expr::accept(),
        ],
        "ip saddr 1.2.3.4 tcp dport 80 accept",
    );
    shows(
        vec![
            tcp(),
            Expr::in_set(&[Field::IpDaddr, Field::ThDport], "s"),
            Expr::accept(),
        ],
        "ip daddr . tcp dport @s accept",
    );
    shows(
        vec![tcp(), Expr::counter(), Expr::tcp_dport(80), Expr::accept()],
        "meta l4proto tcp counter tcp dport 80 accept",
    );
    shows(
        vec![
            Expr::udp_dport(53),
            Expr::l4proto(PROTO_UDP),
            Expr::accept(),
        ],
        "udp dport 53 meta l4proto udp accept",
    );
    shows(
        vec![
            Expr::l4proto(PROTO_ICMP),
            Expr::icmp_type(8),
            Expr::accept(),
        ],
        "icmp type echo-request accept",
    );
    shows(
        vec![tcp(), tcp(), Expr::accept()],
        "meta l4proto tcp meta l4proto tcp accept",
    );
}

#[test]
fn priorities_print_like_nft() {
    let cases = [
        (Hook::Forward, -100, "-100"),
        (Hook::Forward, 100, "100"),
        (Hook::Forward, 0, "filter"),
        (Hook::Forward, 10, "filter + 10"),
        (Hook::Forward, 11, "11"),
        (Hook::Forward, -11, "-11"),
        (Hook::Prerouting, -150, "mangle"),
        (Hook::Prerouting, -300, "raw"),
        (Hook::Prerouting, 50, "security"),
        (Hook::Prerouting, -100, "dstnat"),
        (Hook::Prerouting, -90, "dstnat + 10"),
        (Hook::Output, -100, "-100"),
        (Hook::Input, 100, "100"),
        (Hook::Input, 60, "security + 10"),
        (Hook::Input, -140, "mangle + 10"),
        (Hook::Input, -5, "filter - 5"),
        (Hook::Postrouting, 100, "srcnat"),
    ];
    for (hook, prio, want) in cases {
        assert_eq!(priority_text(hook, prio), want, "{hook:?} {prio}");
    }
}

#[test]
fn tables_print_as_nft_scripts() {
    let mut t = Table::new("weft");
    t.sets.push(Set::new(
        "s",
        KeyType::Ipv4Addr,
        vec![net("10.0.0.0/8"), Value::Ipv4(ip("1.1.1.1"))],
    ));
    t.maps.push(Map::verdicts(
        "m",
        KeyType::Ifname,
        vec![(Value::Ifname("cali1".into()), Verdict::Jump("c".into()))],
    ));
    t.chains.push(Chain::base(
        "c",
        BaseChain::filter(Hook::Input, 0, Policy::Drop),
        vec![],
    ));
    t.chains
        .push(Chain::regular("d", vec![Rule::new(vec![Expr::accept()])]));
    assert_eq!(
        t.to_string(),
        "table inet weft {
\tset s {
\t\ttype ipv4_addr
\t\tflags interval
\t\telements = { 1.1.1.1, 10.0.0.0/8 }
\t}

\tmap m {
\t\ttype ifname : verdict
\t\telements = { \"cali1\" : jump c }
\t}

\tchain c {
\t\ttype filter hook input priority filter; policy drop;
\t}

\tchain d {
\t\taccept
\t}
}"
    );
    let script = crate::NftCli::script(&t);
    assert!(script.starts_with("table inet weft {}\ndelete table inet weft\ntable inet weft {\n"));
}

#[test]
fn numgen_cascade_spreads_evenly() {
    let targets: Vec<Verdict> = (0..3).map(|i| Verdict::Goto(format!("ep{i}"))).collect();
    let rules: Vec<String> = Rule::numgen_cascade(&targets)
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        rules,
        [
            "numgen random mod 3 0 goto ep0",
            "numgen random mod 2 0 goto ep1",
            "goto ep2"
        ]
    );
}
