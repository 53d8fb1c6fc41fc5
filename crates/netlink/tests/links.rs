//! Root-only: veth pairs across namespaces, bridges, vxlan, link changes, big dumps.

mod common;

use common::{ip, root_or_skip, RootState, TestNs};
use weft_netlink::{LinkChange, VethSpec};

#[test]
fn veth_with_peer_in_other_netns() {
    if !root_or_skip("veth_with_peer_in_other_netns") {
        return;
    }
    let root = RootState::capture();
    let host = TestNs::new("vhost");
    let ctr = TestNs::new("vctr");
    let mut h = host.handle();
    let mut c = ctr.handle();

    let spec = VethSpec::new("cali0123456789a", "eth0")
        .mac([0xee; 6])
        .mtu(1450)
        .up()
        .peer_ns(&ctr.ns)
        .peer_mac([0x02, 0, 0x0a, 0xf4, 0, 5])
        .peer_up();
    let created = h.create_veth_with(&spec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.name, "cali0123456789a");
    assert_eq!(created.kind.as_deref(), Some("veth"));
    assert_eq!(created.mac, Some([0xee; 6]));
    assert_eq!(created.mtu, 1450);
    assert!(created.up);

    // The peer lives in the container namespace only.
    assert_eq!(
        h.link_by_name("eth0").unwrap_or_else(|e| panic!("{e}")),
        None
    );
    let peer = c
        .link_by_name("eth0")
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("peer in container netns");
    assert_eq!(peer.mac, Some([0x02, 0, 0x0a, 0xf4, 0, 5]));
    assert_eq!(peer.mtu, 1450);
    assert!(peer.up);
    // iflink points across: each end names the other's index.
    assert_eq!(created.link, Some(peer.index));
    let host_end = h
        .link_by_name("cali0123456789a")
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("host end");
    assert_eq!(host_end.link, Some(peer.index));
    assert!(host_end.link_netnsid.is_some(), "{host_end:?}");
    assert_eq!(peer.link, Some(host_end.index));
    assert!(peer.oper_up, "both ends up: carrier on {peer:?}");
    let by_index = c
        .link_by_index(peer.index)
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("by index");
    assert_eq!(by_index.name, "eth0");
    assert_eq!(
        c.link_by_index(9999).unwrap_or_else(|e| panic!("{e}")),
        None
    );

    // Creating it again fails with a message naming the veth.
    let dup = h
        .create_veth("cali0123456789a", "eth1", Some(&ctr.ns))
        .expect_err("duplicate veth");
    assert!(dup.is_exists(), "{dup}");
    assert_eq!(
        dup.to_string(),
        format!(
            "create veth cali0123456789a (peer eth1 in netns /run/netns/{}): File exists (os error 17)",
            ctr.name
        )
    );

    // Deleting one end removes both.
    h.delete_link(host_end.index)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.link_by_name("eth0").unwrap_or_else(|e| panic!("{e}")),
        None
    );
    let gone = h.delete_link(host_end.index).expect_err("already deleted");
    assert!(gone.is_not_found(), "{gone}");
    root.assert_unchanged();
}

#[test]
fn bridge_master_rename_move() {
    if !root_or_skip("bridge_master_rename_move") {
        return;
    }
    let root = RootState::capture();
    let a = TestNs::new("br");
    let b = TestNs::new("brmove");
    let mut h = a.handle();
    let br = h.create_bridge("switch").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(br.kind.as_deref(), Some("bridge"));
    assert!(!br.up);
    h.set_up(br.index).unwrap_or_else(|e| panic!("{e}"));
    let v = h
        .create_veth("p1", "p1-peer", None)
        .unwrap_or_else(|e| panic!("{e}"));
    h.set_master(v.index, Some(br.index))
        .unwrap_or_else(|e| panic!("{e}"));
    let v2 = h
        .link_by_index(v.index)
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("p1");
    assert_eq!(v2.master, Some(br.index));
    assert!(h
        .link_by_index(br.index)
        .ok()
        .flatten()
        .is_some_and(|l| l.up));
    h.set_master(v.index, None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h.link_by_index(v.index)
            .ok()
            .flatten()
            .and_then(|l| l.master),
        None
    );

    // Several settings in one request.
    h.set_link(
        v.index,
        &LinkChange::new()
            .name("p1-new")
            .mtu(1400)
            .mac([2, 1, 2, 3, 4, 5]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let v3 = h.link_by_index(v.index).ok().flatten().expect("renamed");
    assert_eq!(v3.name, "p1-new");
    assert_eq!(v3.mtu, 1400);
    assert_eq!(v3.mac, Some([2, 1, 2, 3, 4, 5]));
    h.set_name(v.index, "p1").unwrap_or_else(|e| panic!("{e}"));
    h.set_mtu(v.index, 1500).unwrap_or_else(|e| panic!("{e}"));
    h.set_mac(v.index, [2, 9, 9, 9, 9, 9])
        .unwrap_or_else(|e| panic!("{e}"));
    h.set_up(v.index).unwrap_or_else(|e| panic!("{e}"));
    h.set_down(v.index).unwrap_or_else(|e| panic!("{e}"));
    let v4 = h.link_by_name("p1").ok().flatten().expect("p1 again");
    assert_eq!(
        (v4.mtu, v4.mac, v4.up),
        (1500, Some([2, 9, 9, 9, 9, 9]), false)
    );

    // Move the peer to the other namespace.
    let peer = h.link_by_name("p1-peer").ok().flatten().expect("peer");
    h.move_to_netns(peer.index, &b.ns)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.link_by_name("p1-peer").ok().flatten(), None);
    let mut hb = b.handle();
    assert!(hb.link_by_name("p1-peer").ok().flatten().is_some());
    root.assert_unchanged();
}

#[test]
fn vxlan_and_fdb() {
    if !root_or_skip("vxlan_and_fdb") {
        return;
    }
    let root = RootState::capture();
    let t = TestNs::new("vxlan");
    let mut h = t.handle();
    let under = h
        .create_veth("under0", "under1", None)
        .unwrap_or_else(|e| panic!("{e}"));
    h.add_address(under.index, common::net("198.51.100.11/24"))
        .unwrap_or_else(|e| panic!("{e}"));
    let vx = h
        .create_vxlan(
            "vxlan.calico",
            4096,
            4789,
            Some(ip("198.51.100.11")),
            Some(under.index),
            false,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(vx.kind.as_deref(), Some("vxlan"));
    h.set_link(
        vx.index,
        &LinkChange::new()
            .mtu(1450)
            .mac([0x66, 0, 0, 0, 0, 0x0b])
            .up(true),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mac = [0x66, 0, 0, 0, 0, 0x0c];
    h.add_fdb(vx.index, mac, ip("198.51.100.12"))
        .unwrap_or_else(|e| panic!("{e}"));
    // Replace semantics: adding again with another remote updates it.
    h.add_fdb(vx.index, mac, ip("198.51.100.13"))
        .unwrap_or_else(|e| panic!("{e}"));
    let fdb = h.fdb(Some(vx.index)).unwrap_or_else(|e| panic!("{e}"));
    let e = fdb.iter().find(|e| e.mac == mac).expect("fdb entry");
    assert_eq!(e.dst, Some(ip("198.51.100.13")), "{fdb:?}");
    assert_eq!(e.state, weft_netlink::NUD_PERMANENT);
    // The neighbour for the remote VTEP, as Calico installs it.
    h.add_neighbour(vx.index, ip("10.244.64.0"), mac, true)
        .unwrap_or_else(|e| panic!("{e}"));
    h.del_fdb(vx.index, mac, Some(ip("198.51.100.13")))
        .unwrap_or_else(|e| panic!("{e}"));
    let fdb = h.fdb(Some(vx.index)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!fdb.iter().any(|e| e.mac == mac), "{fdb:?}");
    root.assert_unchanged();
}

#[test]
fn large_link_dump() {
    if !root_or_skip("large_link_dump") {
        return;
    }
    let t = TestNs::new("many");
    let mut h = t.handle();
    let pairs = 100;
    for i in 0..pairs {
        h.create_veth_with(
            &VethSpec::new(&format!("a{i}"), &format!("b{i}"))
                .up()
                .peer_up(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let links = h.links().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(links.len(), 2 * pairs + 1, "every link once, plus lo");
    for i in 0..pairs {
        assert!(links.iter().any(|l| l.name == format!("a{i}")));
        assert!(links.iter().any(|l| l.name == format!("b{i}")));
    }
}
