//! Root tests, each in a private network namespace: a dynamic set with a
//! timeout filled from the packet path (`update @set { ip saddr }`), listed by
//! `nft` as we print it and not reported as drift; and conntrack entries
//! listed and deleted over ctnetlink.

mod common;

use std::net::{Ipv4Addr, UdpSocket};

use common::*;
use weft_netlink::run_in_netns;
use weft_nft::conntrack::{Conntrack, Filter};
use weft_nft::*;

fn backend(ns: &TestNs) -> NetlinkBackend {
    NetlinkBackend::in_netns(&ns.ns).unwrap_or_else(|e| panic!("{e}"))
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `lo` up, and a UDP socket bound in the namespace (it stays there).
fn udp_socket(ns: &TestNs) -> UdpSocket {
    let ns_name = ns.name.clone();
    let ok = std::process::Command::new("ip")
        .args(["netns", "exec", &ns_name, "ip", "link", "set", "lo", "up"])
        .status()
        .expect("run ip");
    assert!(ok.success(), "lo up in {ns_name}");
    run_in_netns(&ns.ns, || UdpSocket::bind("127.0.0.1:0"))
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("bind udp")
}

fn table() -> Table {
    let mut t = Table::new("weft");
    t.sets.push(Set::dynamic("aff", KeyType::Ipv4Addr, 10800));
    t.chains.push(Chain::base(
        "out",
        BaseChain::filter(Hook::Output, 0, Policy::Accept),
        vec![Rule::new(vec![
            Expr::l4proto(PROTO_UDP),
            Expr::set_update(&[Field::IpSaddr], "aff"),
        ])],
    ));
    t
}

#[test]
fn dynamic_set_is_filled_by_packets_and_lists_as_printed() {
    if !root_with_nft_or_skip("dynamic_set_is_filled_by_packets_and_lists_as_printed") {
        return;
    }
    let ns = TestNs::new();
    let mut b = backend(&ns);
    let t = table();
    b.apply(&t).unwrap_or_else(|e| panic!("{e}"));
    let listing = ns.list("weft");
    assert_eq!(squash(&listing), squash(&t.to_string()), "{listing}");
    let sock = udp_socket(&ns);
    let port = sock.local_addr().expect("addr").port();
    sock.send_to(b"x", ("127.0.0.1", port)).expect("send");
    let set = ns.nft(&["list", "set", "inet", "weft", "aff"]);
    assert!(
        set.contains("127.0.0.1 expires"),
        "the packet's source is in the set with a timeout: {set}"
    );
    assert_eq!(
        b.drift(&t).unwrap_or_else(|e| panic!("{e}")),
        Vec::<String>::new(),
        "elements added by packets are not drift"
    );
    // An update that changes nothing else keeps what the packets added.
    let mut t2 = t.clone();
    t2.chains[0].rules.push(Rule::new(vec![Expr::counter()]));
    b.update(&t, &t2).unwrap_or_else(|e| panic!("{e}"));
    let set = ns.nft(&["list", "set", "inet", "weft", "aff"]);
    assert!(set.contains("127.0.0.1"), "{set}");
    // A full replace (a periodic resync) keeps them too, with the time they had left.
    b.apply(&t2).unwrap_or_else(|e| panic!("{e}"));
    let set = ns.nft(&["list", "set", "inet", "weft", "aff"]);
    assert!(
        set.contains("127.0.0.1 expires 2h59m"),
        "kept over a full replace: {set}"
    );
}

#[test]
fn a_rule_cannot_update_a_set_that_is_not_dynamic() {
    let mut t = table();
    t.sets[0] = Set::new("aff", KeyType::Ipv4Addr, vec![]);
    let err = Summary::of(&t).expect_err("refused");
    assert!(err.to_string().contains("dynamic"), "{err}");
}

#[test]
fn conntrack_entries_are_listed_and_deleted_by_filter() {
    if !root_with_nft_or_skip("conntrack_entries_are_listed_and_deleted_by_filter") {
        return;
    }
    let ns = TestNs::new();
    // A rule that needs conntrack, so that entries exist in this namespace.
    let mut t = Table::new("weft");
    t.chains.push(Chain::base(
        "out",
        BaseChain::filter(Hook::Output, 0, Policy::Accept),
        vec![Rule::new(vec![
            Expr::ct_state(CtStates::NEW),
            Expr::counter(),
        ])],
    ));
    backend(&ns).apply(&t).unwrap_or_else(|e| panic!("{e}"));
    let a = udp_socket(&ns);
    let b = udp_socket(&ns);
    let (pa, pb) = (
        a.local_addr().expect("addr").port(),
        b.local_addr().expect("addr").port(),
    );
    a.send_to(b"x", ("127.0.0.1", pb)).expect("send");
    b.send_to(b"y", ("127.0.0.1", pa)).expect("send");
    let mut ct = Conntrack::in_netns(&ns.ns).unwrap_or_else(|e| panic!("{e}"));
    let lo = Ipv4Addr::LOCALHOST;
    let ours = |ct: &mut Conntrack| -> Vec<_> {
        ct.list()
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .filter(|e| e.orig.proto == PROTO_UDP && e.orig.dst == lo)
            .collect()
    };
    let before = ours(&mut ct);
    assert_eq!(before.len(), 1, "one flow both ways: {before:?}");
    assert_eq!(before[0].reply.src, lo);
    let other_port = Filter {
        orig_dport: Some(pb.wrapping_add(1)),
        ..Filter::udp()
    };
    assert_eq!(
        ct.delete_matching(&[other_port])
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
    assert_eq!(
        ours(&mut ct).len(),
        1,
        "a filter that does not match keeps it"
    );
    let this = Filter {
        orig_dst: Some(lo),
        orig_dport: Some(pb),
        reply_src: Some(lo),
        ..Filter::udp()
    };
    assert_eq!(
        ct.delete_matching(&[this])
            .unwrap_or_else(|e| panic!("{e}")),
        1
    );
    assert!(ours(&mut ct).is_empty(), "deleted");
    assert!(
        !ct.delete(&before[0]).unwrap_or_else(|e| panic!("{e}")),
        "deleting it again says it was gone"
    );
}
