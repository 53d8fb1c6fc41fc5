//! Whole-path simulations on the hand-made two-node lab of `testkit`.

use weft_model::Encap;

use super::*;
use crate::model::Proto;
use crate::testkit::{ip, two_node_lab};

fn icmp(src: &str, dst: &str, len: u16) -> Flow {
    Flow {
        src: ip(src),
        dst: ip(dst),
        proto: Proto::Icmp,
        sport: None,
        dport: None,
        icmp_id: Some(7),
        len,
        ttl: 64,
        reply: false,
        vni: None,
    }
}

/// `member:ingress>egress` per hop of a leg.
fn path(hops: &[Hop], leg: Leg) -> Vec<String> {
    hops.iter()
        .filter(|h| h.leg == leg)
        .map(|h| {
            format!(
                "{}:{}>{}",
                h.member,
                h.ingress.as_ref().map(|i| i.name.as_str()).unwrap_or("-"),
                h.egress.as_ref().map(|i| i.name.as_str()).unwrap_or("-")
            )
        })
        .collect()
}

#[test]
fn same_node_goes_through_the_peer_cali_route_and_back() {
    let mut w = two_node_lab();
    let mut hops = Vec::new();
    let (fwd, reply) = both_legs(
        &mut w,
        "container/web1",
        icmp("10.244.0.1", "10.244.0.2", 84),
        &mut hops,
    );
    assert!(fwd.verdict.delivered(), "{}", fwd.verdict.reason);
    assert_eq!(
        path(&hops, Leg::Forward),
        [
            "container/web1:->eth0",
            "node/master:cali1>cali2",
            "container/web2:eth0>-"
        ]
    );
    let master = &hops[1];
    assert!(master
        .steps
        .iter()
        .any(|s| s.text.contains("10.244.0.2 dev cali2 proto 80 scope link")));
    // MACs are rewritten at the routed hop, TTL decremented.
    let tx = master.tx.as_ref().unwrap();
    assert_eq!(tx.src_mac, "ee:ee:ee:ee:ee:ee");
    assert_eq!(tx.dst_mac, "02:00:00:00:00:02");
    assert_eq!(tx.ttl, 63);
    assert!(tx.rewritten.contains(&"dst_mac".to_string()));
    let reply = reply.expect("a reply leg");
    assert!(reply.verdict.delivered(), "{}", reply.verdict.reason);
    assert_eq!(
        path(&hops, Leg::Reply),
        [
            "container/web2:->eth0",
            "node/master:cali2>cali1",
            "container/web1:eth0>-"
        ]
    );
}

#[test]
fn cross_node_goes_over_the_fabric() {
    let mut w = two_node_lab();
    let mut hops = Vec::new();
    let (fwd, reply) = both_legs(
        &mut w,
        "container/web1",
        icmp("10.244.0.1", "10.244.0.64", 84),
        &mut hops,
    );
    assert!(fwd.verdict.delivered(), "{}", fwd.verdict.reason);
    assert_eq!(
        path(&hops, Leg::Forward),
        [
            "container/web1:->eth0",
            "node/master:cali1>eth0",
            "fabric:node0>node1",
            "node/slave1:eth0>cali3",
            "container/bweb1:eth0>-"
        ]
    );
    // On the underlay the inner addresses are the containers' (no NAT).
    let fabric = &hops[2];
    let rx = fabric.rx.as_ref().unwrap();
    assert_eq!((rx.src, rx.dst), (ip("10.244.0.1"), ip("10.244.0.64")));
    assert_eq!(rx.dst_mac, "02:00:00:00:00:0c");
    assert!(reply.unwrap().verdict.delivered());
}

#[test]
fn node_to_local_container_never_touches_eth0() {
    let mut w = two_node_lab();
    let mut hops = Vec::new();
    let (fwd, _) = both_legs(
        &mut w,
        "node/master",
        icmp("198.51.100.11", "10.244.0.1", 84),
        &mut hops,
    );
    assert!(fwd.verdict.delivered());
    assert_eq!(
        path(&hops, Leg::Forward),
        ["node/master:->cali1", "container/web1:eth0>-"]
    );
    assert!(hops.iter().all(|h| h.member != "fabric"));
    assert_eq!(
        fwd.flow.src,
        ip("198.51.100.11"),
        "source picked by the node"
    );
}

#[test]
fn deleted_workload_route_is_blackholed_with_the_planned_route_as_fix() {
    let mut w = two_node_lab().with_plan(crate::testkit::two_node_cluster(), Encap::None);
    let mut s = (*w.snapshot("node/master").unwrap()).clone();
    s.main.retain(|r| r.dst.to_string() != "10.244.0.2/32");
    w.replace_snapshot("node/master", s);
    let mut hops = Vec::new();
    let (fwd, reply) = both_legs(
        &mut w,
        "container/web1",
        icmp("10.244.0.1", "10.244.0.2", 84),
        &mut hops,
    );
    assert!(reply.is_none());
    let v = &fwd.verdict;
    assert_eq!(hops[v.hop].member, "node/master");
    match &v.disposition {
        Disposition::Blackholed {
            missing: Some(m),
            route,
            ..
        } => {
            assert_eq!(m, "10.244.0.2/32 dev cali2 proto 80 scope link");
            assert_eq!(route, "blackhole 10.244.0.0/26 proto 80");
        }
        other => panic!("{other:?}"),
    }
    assert!(v.fix.as_deref().unwrap_or("").contains("re-add the route"));
}

#[test]
fn forwarding_off_on_the_far_node_stops_at_its_eth0() {
    let mut w = two_node_lab();
    let mut s = (*w.snapshot("node/slave1").unwrap()).clone();
    for v in s
        .sysctls
        .iter_mut()
        .filter(|(k, _)| k.ends_with("forwarding") || *k == "ip_forward")
    {
        *v.1 = "0".into();
    }
    w.replace_snapshot("node/slave1", s);
    let mut hops = Vec::new();
    let (fwd, _) = both_legs(
        &mut w,
        "container/web1",
        icmp("10.244.0.1", "10.244.0.64", 84),
        &mut hops,
    );
    let v = &fwd.verdict;
    assert!(
        v.reason.contains("forwarding disabled on slave1"),
        "{}",
        v.reason
    );
    let last = &hops[v.hop];
    assert_eq!(last.member, "node/slave1");
    assert_eq!(last.ingress.as_ref().unwrap().name, "eth0");
    // The would-be egress is named, with nothing sent on it.
    assert_eq!(last.egress.as_ref().unwrap().name, "cali3");
    assert!(last.tx.is_none());
}

#[test]
fn lowered_mtu_on_a_cali_interface() {
    let mut w = two_node_lab();
    let mut s = (*w.snapshot("node/master").unwrap()).clone();
    for l in s.links.iter_mut().filter(|l| l.name == "cali2") {
        l.mtu = 1000;
    }
    w.replace_snapshot("node/master", s);
    // Towards web2: refused on transmit at master (DF set).
    let mut hops = Vec::new();
    let (fwd, _) = both_legs(
        &mut w,
        "container/web1",
        icmp("10.244.0.1", "10.244.0.2", 1400),
        &mut hops,
    );
    match &fwd.verdict.disposition {
        Disposition::MtuExceeded {
            member,
            iface,
            on_receive: false,
            mtu: 1000,
            peer_mtu,
            ..
        } => {
            assert_eq!((member.as_str(), iface.as_str()), ("master", "cali2"));
            assert_eq!(*peer_mtu, Some(1500), "the container's end keeps 1500");
        }
        other => panic!("{other:?}"),
    }
    // From web2: dropped on receive by cali2, a mismatch with web2's eth0.
    let mut hops = Vec::new();
    let (fwd, _) = both_legs(
        &mut w,
        "container/web2",
        icmp("10.244.0.2", "10.244.0.1", 1400),
        &mut hops,
    );
    match &fwd.verdict.disposition {
        Disposition::MtuExceeded {
            member,
            on_receive: true,
            peer_mtu: Some(1500),
            ..
        } => {
            assert_eq!(member, "master")
        }
        other => panic!("{other:?}"),
    }
    let last = &hops[fwd.verdict.hop];
    assert!(last.rx.is_none(), "a capture on cali2 sees nothing");
    assert!(fwd
        .verdict
        .fix
        .as_deref()
        .unwrap_or("")
        .contains("mtu 1500"));
    // Small packets still pass.
    let mut hops = Vec::new();
    let (fwd, _) = both_legs(
        &mut w,
        "container/web2",
        icmp("10.244.0.2", "10.244.0.1", 84),
        &mut hops,
    );
    assert!(fwd.verdict.delivered());
}

#[test]
fn unknown_destination_ends_where_nobody_answers() {
    let mut w = two_node_lab();
    let mut hops = Vec::new();
    let (fwd, _) = both_legs(
        &mut w,
        "node/master",
        icmp("198.51.100.11", "198.51.100.99", 84),
        &mut hops,
    );
    match &fwd.verdict.disposition {
        Disposition::NoNeighbour { member, ip: a, .. } => {
            assert_eq!(member, "master");
            assert_eq!(*a, ip("198.51.100.99"));
        }
        other => panic!("{other:?}"),
    }
}
