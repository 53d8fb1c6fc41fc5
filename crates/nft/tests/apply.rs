//! Root tests: apply tables in a private network namespace and check them with
//! `nft` (the independent oracle), run only inside that namespace.

mod common;

use common::*;
use weft_nft::*;

/// Whitespace-insensitive form of a listing (nft wraps long element lists).
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn backend(ns: &TestNs) -> NetlinkBackend {
    NetlinkBackend::in_netns(&ns.ns).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn applied_table_lists_as_the_model_prints() {
    if !root_with_nft_or_skip("applied_table_lists_as_the_model_prints") {
        return;
    }
    let ns = TestNs::new();
    let mut nl = backend(&ns);
    let t = full_table("weft");
    nl.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    let listing = ns.list("weft");
    assert_eq!(chains_of(&listing), model_chains(&t), "{listing}");
    // The whole table too: sets, maps, chain headers.
    assert_eq!(squash(&listing), squash(&t.to_string()), "{listing}");
    // Applying the same table again is a no-op in effect.
    nl.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ns.list("weft"), listing);
    assert!(nl.last_stats().messages > 20);
}

#[test]
fn replacing_removes_the_old_content_in_one_step() {
    if !root_with_nft_or_skip("replacing_removes_the_old_content_in_one_step") {
        return;
    }
    let ns = TestNs::new();
    let mut nl = backend(&ns);
    nl.apply(&full_table("weft"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut small = Table::new("weft");
    small.sets.push(Set::new(
        "only",
        KeyType::InetService,
        vec![Value::Port(443)],
    ));
    small.chains.push(Chain::base(
        "only-in",
        BaseChain::filter(Hook::Input, 0, Policy::Drop),
        vec![Rule::new(vec![
            Expr::in_set(&[Field::TcpDport], "only"),
            Expr::accept(),
        ])],
    ));
    nl.apply(&small).unwrap_or_else(|e| panic!("{e}"));
    let listing = ns.list("weft");
    assert_eq!(squash(&listing), squash(&small.to_string()), "{listing}");
    for gone in ["filter-fwd", "svc-web", "trusted", "services"] {
        assert!(!listing.contains(gone), "{gone} still there:\n{listing}");
    }
}

#[test]
fn a_refused_table_leaves_the_previous_one_and_names_the_culprit() {
    if !root_with_nft_or_skip("a_refused_table_leaves_the_previous_one_and_names_the_culprit") {
        return;
    }
    let ns = TestNs::new();
    let mut nl = backend(&ns);
    let good = full_table("weft");
    nl.apply(&good).unwrap_or_else(|e| panic!("{e}"));
    let before = ns.list("weft");

    // A jump to a chain that does not exist: only the kernel can tell.
    let mut bad = full_table("weft");
    bad.chains[6].rules.insert(
        1,
        Rule::new(vec![Expr::tcp_dport(22), Expr::jump("no-such-chain")]),
    );
    let err = nl
        .apply(&bad)
        .expect_err("the kernel must refuse a jump to a missing chain");
    let text = err.to_string();
    println!("{text}");
    assert_eq!(err.errno(), Some(libc::ENOENT), "{text}");
    assert!(text.contains("rule #2 of chain \"to-wl-cali1\""), "{text}");
    assert!(text.contains("jump no-such-chain"), "{text}");
    assert!(matches!(err, Error::Kernel { .. }));
    assert_eq!(ns.list("weft"), before, "the previous table must be intact");

    // NAT reached from a filter chain: refused as well, the table still intact.
    let mut bad = full_table("weft");
    bad.chains[0].rules.push(Rule::new(vec![Expr::dnat(
        "10.0.0.1".parse().expect("ip"),
        None,
    )]));
    let err = nl.apply(&bad).expect_err("dnat in a filter chain");
    println!("{err}");
    assert_eq!(err.errno(), Some(libc::EOPNOTSUPP), "{err}");
    assert!(err.to_string().contains("chain \"filter-fwd\""), "{err}");
    assert_eq!(ns.list("weft"), before);

    // A loop between chains.
    let mut bad = full_table("weft");
    bad.chains[7]
        .rules
        .push(Rule::new(vec![Expr::jump("from-wl-cali1")]));
    let err = nl.apply(&bad).expect_err("a loop");
    println!("{err}");
    assert_eq!(ns.list("weft"), before);
}

#[test]
fn other_tables_are_left_alone() {
    if !root_with_nft_or_skip("other_tables_are_left_alone") {
        return;
    }
    let ns = TestNs::new();
    ns.nft(&["add", "table", "ip", "other"]);
    ns.nft(&[
        "add",
        "chain",
        "ip",
        "other",
        "c",
        "{ type filter hook input priority 0; }",
    ]);
    ns.nft(&[
        "add", "rule", "ip", "other", "c", "tcp", "dport", "22", "accept",
    ]);
    ns.nft(&["add", "table", "inet", "weft2"]);
    let other = ns.nft(&["list", "table", "ip", "other"]);
    let mut nl = backend(&ns);
    nl.apply(&full_table("weft"))
        .unwrap_or_else(|e| panic!("{e}"));
    nl.apply(&Table::new("weft"))
        .unwrap_or_else(|e| panic!("{e}"));
    nl.delete(Family::Inet, "weft")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ns.nft(&["list", "table", "ip", "other"]), other);
    assert!(nl.exists(Family::Inet, "weft2").expect("exists"));
    assert!(nl.exists(Family::Ip, "other").expect("exists"));
    assert!(!nl.exists(Family::Inet, "weft").expect("exists"));
}

#[test]
fn exists_delete_and_read() {
    if !root_with_nft_or_skip("exists_delete_and_read") {
        return;
    }
    let ns = TestNs::new();
    let mut nl = backend(&ns);
    assert!(!nl.exists(Family::Inet, "weft").expect("exists"));
    let err = nl.read(Family::Inet, "weft").expect_err("no table");
    assert!(err.is_not_found(), "{err}");
    nl.delete(Family::Inet, "weft")
        .expect("deleting a missing table is fine");
    let t = full_table("weft");
    nl.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    assert!(nl.exists(Family::Inet, "weft").expect("exists"));
    let read = nl
        .read(Family::Inet, "weft")
        .unwrap_or_else(|e| panic!("{e}"));
    let model = Summary::of(&t).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read, model);
    assert_eq!(read.rule_count(), 27);
    assert_eq!(read.sets["trusted"].elements, 3);
    assert_eq!(
        read.chains["filter-fwd"].base.as_deref(),
        Some("type filter hook forward priority filter; policy accept;")
    );
    assert_eq!(
        read.chains["filter-fwd"].rules[5].comment.as_deref(),
        Some("unknown workload interface")
    );
    nl.delete(Family::Inet, "weft")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!nl.exists(Family::Inet, "weft").expect("exists"));
    assert!(ns
        .nft_try(&["list", "table", "inet", "weft"], None)
        .is_err());
}

#[test]
fn drift_notices_changes_made_by_hand() {
    if !root_with_nft_or_skip("drift_notices_changes_made_by_hand") {
        return;
    }
    let ns = TestNs::new();
    let mut nl = backend(&ns);
    let t = full_table("weft");
    assert_eq!(
        nl.drift(&t).expect("drift"),
        vec!["table inet weft is missing from the kernel"]
    );
    nl.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nl.drift(&t).expect("drift"), Vec::<String>::new());

    ns.nft(&[
        "add", "rule", "inet", "weft", "pol-a", "udp", "dport", "53", "accept",
    ]);
    let d = nl.drift(&t).expect("drift");
    assert!(
        d.iter()
            .any(|l| l.contains("chain pol-a: 1 rules expected, the kernel has 2")),
        "{d:?}"
    );

    nl.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    ns.nft(&["add", "element", "inet", "weft", "trusted", "{ 8.8.8.8 }"]);
    ns.nft(&["add", "chain", "inet", "weft", "extra"]);
    let d = nl.drift(&t).expect("drift");
    assert!(
        d.iter()
            .any(|l| l.contains("set trusted: 3 elements expected, the kernel has 4")),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|l| l.contains("chain extra in the kernel is not in the model")),
        "{d:?}"
    );

    // A rule replaced by another of the same length is noticed by its shape.
    nl.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    let handle_line = ns.nft(&["-a", "list", "chain", "inet", "weft", "to-wl-cali1"]);
    let handle = handle_line
        .lines()
        .find(|l| l.trim_start().starts_with("drop"))
        .and_then(|l| l.rsplit("handle ").next())
        .map(|h| h.trim().to_string())
        .expect("handle of the drop rule");
    ns.nft(&[
        "replace",
        "rule",
        "inet",
        "weft",
        "to-wl-cali1",
        "handle",
        &handle,
        "counter",
        "drop",
    ]);
    let d = nl.drift(&t).expect("drift");
    assert!(
        d.iter().any(|l| l.contains("chain to-wl-cali1 rule #2")),
        "{d:?}"
    );
}

#[test]
fn the_nft_program_builds_the_same_table() {
    if !root_with_nft_or_skip("the_nft_program_builds_the_same_table") {
        return;
    }
    let (a, b) = (TestNs::new(), TestNs::new());
    let t = full_table("weft");
    backend(&a).apply(&t).unwrap_or_else(|e| panic!("{e}"));
    let mut cli = NftCli::in_netns(&b.ns).expect("cli");
    cli.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.list("weft"), b.list("weft"));
    // And read back through netlink, both agree with the model.
    assert_eq!(cli.drift(&t).expect("drift"), Vec::<String>::new());
    assert!(cli.exists(Family::Inet, "weft").expect("exists"));
    cli.delete(Family::Inet, "weft").expect("delete");
    assert!(!cli.exists(Family::Inet, "weft").expect("exists"));
}

#[test]
fn thousands_of_services_in_one_transaction() {
    if !root_with_nft_or_skip("thousands_of_services_in_one_transaction") {
        return;
    }
    let ns = TestNs::new();
    let mut nl = backend(&ns);
    let n = 1500u32;
    let mut t = Table::new("weft");
    let key = KeyType::Concat(vec![
        KeyType::Ipv4Addr,
        KeyType::InetProto,
        KeyType::InetService,
    ]);
    let mut elements = Vec::new();
    let mut chains = vec![Chain::base(
        "nat-pre",
        BaseChain::nat(Hook::Prerouting, -100),
        vec![Rule::new(vec![Expr::vmap(
            &[Field::IpDaddr, Field::L4Proto, Field::ThDport],
            "services",
        )])],
    )];
    for i in 0..n {
        let vip = std::net::Ipv4Addr::from(0x0a60_0000 + i);
        let svc = format!("svc-{i}");
        elements.push((
            Value::Concat(vec![
                Value::Ipv4(vip),
                Value::Proto(PROTO_TCP),
                Value::Port(80),
            ]),
            Verdict::Goto(svc.clone()),
        ));
        let eps: Vec<String> = (0..2).map(|e| format!("svc-{i}-ep{e}")).collect();
        chains.push(Chain::regular(
            &svc,
            vec![Rule::new(vec![Expr::NumgenVmap {
                targets: eps.iter().map(|e| Verdict::Goto(e.clone())).collect(),
            }])],
        ));
        for (e, name) in eps.iter().enumerate() {
            let ep = std::net::Ipv4Addr::from(0x0af4_0000 + 2 * i + e as u32);
            chains.push(Chain::regular(
                name,
                vec![Rule::new(vec![
                    Expr::l4proto(PROTO_TCP),
                    Expr::dnat(ep, Some(8080)),
                ])],
            ));
        }
    }
    t.maps.push(Map::verdicts("services", key, elements));
    t.sets.push(Set::new(
        "blocks",
        KeyType::Ipv4Addr,
        (0..n)
            .map(|i| {
                Value::Ipv4Prefix(
                    format!("10.{}.{}.0/26", i / 200, (i % 200))
                        .parse()
                        .expect("net"),
                )
            })
            .collect(),
    ));
    t.chains = chains;
    let start = std::time::Instant::now();
    nl.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    let took = start.elapsed();
    let stats = nl.last_stats();
    println!(
        "{n} services: {} messages, {} bytes, applied in {took:?}",
        stats.messages, stats.bytes
    );
    let read = nl
        .read(Family::Inet, "weft")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.sets["services"].elements, n as usize);
    assert_eq!(read.sets["blocks"].elements, n as usize);
    assert_eq!(read.chains.len(), 1 + 3 * n as usize);
    assert_eq!(nl.drift(&t).expect("drift"), Vec::<String>::new());
}
