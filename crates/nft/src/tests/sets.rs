//! Sets and maps in kernel form: types, flags, elements and intervals as nft
//! sends them.

use super::*;
use crate::compile::set::{of_map, of_set, ElemData};

fn be(a: &str) -> Vec<u8> {
    ip(a).octets().to_vec()
}

#[test]
fn interval_sets_become_start_and_end_elements() {
    // nft sends: 0.0.0.0 (end), 10.0.0.0, 11.0.0.0 (end), 192.168.1.1, 192.168.1.2 (end).
    let s = Set::new(
        "allowed",
        KeyType::Ipv4Addr,
        vec![Value::Ipv4(ip("192.168.1.1")), net("10.0.0.0/8")],
    );
    let spec = of_set(&s).expect("set");
    assert_eq!((spec.flags, spec.key.type_id, spec.key.len), (0x4, 7, 4));
    let got: Vec<(Vec<u8>, bool)> = spec
        .elements
        .iter()
        .map(|e| (e.key.clone(), e.end))
        .collect();
    assert_eq!(
        got,
        vec![
            (be("0.0.0.0"), true),
            (be("10.0.0.0"), false),
            (be("11.0.0.0"), true),
            (be("192.168.1.1"), false),
            (be("192.168.1.2"), true),
        ]
    );
    assert_eq!(spec.count(), 2);
}

#[test]
fn intervals_merge_and_the_top_stays_open() {
    // nft: 0.0.0.0/1, 250.0.0.0/8, 255.255.255.0/24: no zero element, open end.
    let s = Set::new(
        "s1",
        KeyType::Ipv4Addr,
        vec![
            net("255.255.255.0/24"),
            net("0.0.0.0/1"),
            net("250.0.0.0/8"),
            net("250.1.0.0/16"),
        ],
    );
    let spec = of_set(&s).expect("set");
    let got: Vec<(Vec<u8>, bool, bool)> = spec
        .elements
        .iter()
        .map(|e| (e.key.clone(), e.end, e.open))
        .collect();
    assert_eq!(
        got,
        vec![
            (be("0.0.0.0"), false, false),
            (be("128.0.0.0"), true, false),
            (be("250.0.0.0"), false, false),
            (be("251.0.0.0"), true, false),
            (be("255.255.255.0"), false, true),
        ]
    );
    // Adjacent ranges of a set merge into one.
    let s = Set::new(
        "p",
        KeyType::InetService,
        vec![
            Value::PortRange(80, 89),
            Value::PortRange(90, 99),
            Value::Port(100),
        ],
    );
    assert_eq!(of_set(&s).expect("set").count(), 1);
}

#[test]
fn concatenations_have_padded_parts() {
    let key = KeyType::Concat(vec![
        KeyType::Ipv4Addr,
        KeyType::InetProto,
        KeyType::InetService,
    ]);
    let m = Map::verdicts(
        "svc",
        key,
        vec![(
            Value::Concat(vec![
                Value::Ipv4(ip("10.96.0.1")),
                Value::Proto(PROTO_TCP),
                Value::Port(80),
            ]),
            Verdict::Goto("ep1".into()),
        )],
    );
    let spec = of_map(&m).expect("map");
    // nft: flags 8, key type 0x730d, key len 12, data verdict.
    assert_eq!(
        (spec.flags, spec.key.type_id, spec.key.len),
        (0x8, 0x730d, 12)
    );
    assert_eq!(spec.key.parts, vec![4, 1, 2]);
    assert_eq!(
        spec.elements[0].key,
        vec![10, 96, 0, 1, 6, 0, 0, 0, 0, 80, 0, 0]
    );
    assert_eq!(
        spec.elements[0].data,
        Some(ElemData::Verdict(Verdict::Goto("ep1".into())))
    );

    // Concatenated intervals: one element with an inclusive end (pipapo).
    let s = Set::new(
        "s2",
        KeyType::Concat(vec![KeyType::Ipv4Addr, KeyType::InetService]),
        vec![Value::Concat(vec![
            net("10.0.0.0/8"),
            Value::PortRange(80, 90),
        ])],
    );
    let spec = of_set(&s).expect("set");
    assert_eq!(
        (spec.flags, spec.key.type_id, spec.key.len),
        (0x84, 0x1cd, 8)
    );
    assert_eq!(spec.elements[0].key, vec![10, 0, 0, 0, 0, 80, 0, 0]);
    assert_eq!(
        spec.elements[0].key_end,
        Some(vec![10, 255, 255, 255, 0, 90, 0, 0])
    );
}

#[test]
fn marks_are_host_order_and_duplicates_collapse() {
    let s = Set::new(
        "marks",
        KeyType::Mark,
        vec![Value::Mark(1), Value::Mark(0x4000), Value::Mark(1)],
    );
    let spec = of_set(&s).expect("set");
    assert_eq!(
        (spec.key.type_id, spec.key.len, spec.key.byteorder),
        (19, 4, 1)
    );
    assert_eq!(spec.elements.len(), 2);
    assert_eq!(spec.elements[1].key, 0x4000u32.to_ne_bytes().to_vec());
}

#[test]
fn bad_sets_are_refused() {
    let wrong_type = Set::new("s", KeyType::Ipv4Addr, vec![Value::Port(80)]);
    assert!(of_set(&wrong_type)
        .expect_err("type")
        .contains("expected ipv4_addr"));
    let mut no_flag = Set::new("s", KeyType::Ipv4Addr, vec![net("10.0.0.0/8")]);
    no_flag.flags.interval = false;
    assert!(of_set(&no_flag)
        .expect_err("flag")
        .contains("flags interval"));
    let m = Map::verdicts(
        "m",
        KeyType::Ipv4Addr,
        vec![
            (net("10.0.0.0/8"), Verdict::Accept),
            (net("10.1.0.0/16"), Verdict::Drop),
        ],
    );
    assert!(of_map(&m).expect_err("overlap").contains("overlap"));
    let m = Map::verdicts(
        "m",
        KeyType::Ifname,
        vec![
            (Value::Ifname("a".into()), Verdict::Accept),
            (Value::Ifname("a".into()), Verdict::Drop),
        ],
    );
    assert!(of_map(&m).expect_err("dup").contains("twice"));
    let t = {
        let mut t = Table::new("weft");
        t.sets.push(Set::new("x", KeyType::Ipv4Addr, vec![]));
        t.maps.push(Map::verdicts("x", KeyType::Ipv4Addr, vec![]));
        t
    };
    let e = crate::netlink::encode::encode_table(&t, 1).expect_err("duplicate name");
    assert!(e.to_string().contains("defined twice"), "{e}");
}
