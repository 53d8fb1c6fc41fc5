//! Root tests: incremental updates, checked with `nft` run only inside a private network
//! namespace.

mod common;

use common::*;
use weft_nft::*;

fn backend(ns: &TestNs) -> NetlinkBackend {
    NetlinkBackend::in_netns(&ns.ns).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn updates_change_only_what_changed() {
    if !root_with_nft_or_skip("updates_change_only_what_changed") {
        return;
    }
    let ns = TestNs::new();
    let mut nl = backend(&ns);
    let old = full_table("weft");
    nl.update(&Table::new("other"), &old)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(nl.last_stats().full, "another table: a full replace");
    let listing = ns.list("weft");

    // No change: nothing sent.
    nl.update(&old, &old).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(nl.last_stats().messages, 0);
    assert_eq!(ns.list("weft"), listing);

    // A new endpoint, a changed chain, a removed chain, a new set element.
    let mut new = old.clone();
    new.chains.retain(|c| c.name != "svc-web-ep1");
    let svc = new
        .chains
        .iter_mut()
        .find(|c| c.name == "svc-web")
        .expect("svc-web");
    svc.rules = vec![Rule::new(vec![Expr::NumgenVmap {
        targets: vec![
            Verdict::Goto("svc-web-ep0".into()),
            Verdict::Goto("svc-web-ep2".into()),
        ],
    }])];
    new.chains.push(Chain::regular(
        "svc-web-ep2",
        vec![Rule::new(vec![
            Expr::l4proto(PROTO_TCP),
            Expr::dnat("10.244.0.7".parse().expect("ip"), Some(8080)),
        ])],
    ));
    new.sets[0]
        .elements
        .push(Value::Ipv4("8.8.8.8".parse().expect("ip")));
    new.maps[2].elements.push((
        Value::Concat(vec![
            Value::Ipv4("10.96.0.11".parse().expect("ip")),
            Value::Proto(PROTO_UDP),
            Value::Port(53),
        ]),
        Data::Verdict(Verdict::Goto("svc-web".into())),
    ));
    new.maps[0].elements.clear();
    nl.update(&old, &new).unwrap_or_else(|e| panic!("{e}"));
    let stats = nl.last_stats();
    assert!(!stats.full && stats.messages < 15, "{stats:?}");
    assert_eq!(nl.drift(&new).expect("drift"), Vec::<String>::new());
    let listing = ns.list("weft");
    assert_eq!(chains_of(&listing), model_chains(&new), "{listing}");
    assert!(!listing.contains("svc-web-ep1"), "{listing}");
    assert!(
        listing.contains("10.96.0.11 . udp . 53 : goto svc-web"),
        "{listing}"
    );

    // The kernel no longer holds what an update starts from: a full replace.
    ns.nft(&["delete", "table", "inet", "weft"]);
    nl.update(&old, &new).unwrap_or_else(|e| {
        panic!("an update that cannot apply falls back to a full replace: {e}")
    });
    assert!(nl.last_stats().full);
    assert_eq!(nl.drift(&new).expect("drift"), Vec::<String>::new());

    // A duplicate chain name in `new`: the kernel refuses the exclusive
    // create, the full replace reports the culprit, the table stays as it was.
    let before = ns.list("weft");
    let mut dup = new.clone();
    dup.chains.push(Chain::regular("pol-a", vec![]));
    let err = nl.update(&new, &dup).expect_err("duplicate chain");
    assert!(
        err.to_string().contains("chain pol-a: defined twice"),
        "{err}"
    );
    assert_eq!(ns.list("weft"), before);
}
