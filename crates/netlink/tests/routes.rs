//! Root-only: Calico-style wiring of one workload between a "host" and a
//! "container" namespace: addresses, routes (onlink via, blackhole, scope link),
//! route get, neighbours, sysctls, and large route dumps.

mod common;

use common::{ip, net, root_or_skip, RootState, TestNs};
use weft_netlink::{
    sysctl_get, sysctls_set, Address, Route, RouteKind, RouteScope, VethSpec, NUD_PERMANENT,
};

const HOST_MAC: [u8; 6] = [0xee; 6];

#[test]
fn calico_style_workload_wiring() {
    if !root_or_skip("calico_style_workload_wiring") {
        return;
    }
    let root = RootState::capture();
    let host = TestNs::new("rhost");
    let ctr = TestNs::new("rctr");
    let mut h = host.handle();
    let mut c = ctr.handle();

    let veth = h
        .create_veth_with(
            &VethSpec::new("cali1234", "eth0")
                .mac(HOST_MAC)
                .up()
                .peer_ns(&ctr.ns),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let eth0 = c.link_by_name("eth0").ok().flatten().expect("eth0");
    c.set_up(eth0.index).unwrap_or_else(|e| panic!("{e}"));

    // Container side: IP/32 and `default via 169.254.1.1 dev eth0 onlink`.
    c.add_address(eth0.index, net("10.244.0.5/32"))
        .unwrap_or_else(|e| panic!("{e}"));
    let dup = c
        .add_address(eth0.index, net("10.244.0.5/32"))
        .expect_err("duplicate address");
    assert!(dup.is_exists(), "{dup}");
    let default = Route::default_via(ip("169.254.1.1"))
        .dev(eth0.index)
        .onlink();
    c.add_route(&default).unwrap_or_else(|e| panic!("{e}"));
    let addrs = c
        .addresses(Some(eth0.index))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        addrs,
        vec![Address {
            index: eth0.index,
            addr: net("10.244.0.5/32")
        }]
    );
    let croutes = c.routes(254).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        croutes,
        vec![default.clone()],
        "read back equals what was built"
    );
    c.add_neighbour(eth0.index, ip("169.254.1.1"), HOST_MAC, true)
        .unwrap_or_else(|e| panic!("{e}"));
    let neigh = c
        .neighbours(Some(eth0.index))
        .unwrap_or_else(|e| panic!("{e}"));
    let n = neigh
        .iter()
        .find(|n| n.ip == ip("169.254.1.1"))
        .unwrap_or_else(|| panic!("neighbour missing: {neigh:?}"));
    assert_eq!(n.mac, Some(HOST_MAC));
    assert_eq!(n.state, NUD_PERMANENT);
    // Replace semantics: adding it again is fine.
    c.add_neighbour(eth0.index, ip("169.254.1.1"), HOST_MAC, false)
        .unwrap_or_else(|e| panic!("{e}"));
    c.del_neighbour(eth0.index, ip("169.254.1.1"))
        .unwrap_or_else(|e| panic!("{e}"));

    // Host side: proxy ARP, forwarding, `IP/32 dev caliX scope link`, block blackhole.
    sysctls_set(
        &host.ns,
        &[
            ("net/ipv4/ip_forward", "1"),
            ("net/ipv4/conf/cali1234/proxy_arp", "1"),
            ("net/ipv4/neigh/cali1234/proxy_delay", "0"),
            ("net/ipv4/conf/cali1234/forwarding", "1"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sysctl_get(&host.ns, "net/ipv4/conf/cali1234/proxy_arp")
            .ok()
            .as_deref(),
        Some("1")
    );
    let wl = Route::new(net("10.244.0.5/32"))
        .dev(veth.index)
        .scope_link()
        .proto(80);
    let block = Route::new(net("10.244.0.0/26")).blackhole().proto(80);
    h.add_route(&wl).unwrap_or_else(|e| panic!("{e}"));
    h.add_route(&block).unwrap_or_else(|e| panic!("{e}"));
    let again = h.add_route(&block).expect_err("duplicate route");
    assert!(again.is_exists(), "{again}");
    assert!(
        again
            .to_string()
            .starts_with("add route blackhole 10.244.0.0/26 proto 80: File exists"),
        "{again}"
    );
    h.replace_route(&block).unwrap_or_else(|e| panic!("{e}"));
    let mut hroutes = h.routes(254).unwrap_or_else(|e| panic!("{e}"));
    hroutes.sort_by_key(|r| r.dst);
    assert_eq!(hroutes, vec![block.clone(), wl.clone()]);

    // Route lookups resolve like `ip route get`.
    let g = h
        .route_get(ip("10.244.0.5"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.oif, Some(veth.index));
    assert_eq!(g.dst, net("10.244.0.5/32"));
    let g = h.route_get(ip("10.244.0.9")).expect_err("blackholed");
    assert_eq!(g.errno(), Some(libc::EINVAL), "{g}");
    let g = c
        .route_get(ip("203.0.113.1"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(g.gateway, Some(ip("169.254.1.1")));
    assert_eq!(g.oif, Some(eth0.index));
    assert_eq!(g.prefsrc, Some(ip("10.244.0.5")));
    assert_eq!(g.table, 254);
    let local = c
        .route_get(ip("10.244.0.5"))
        .unwrap_or_else(|e| panic!("{e}"));
    // (Without policy rules the kernel merges the local table into main, so the
    // reported table may be either.)
    assert_eq!(local.kind, RouteKind::Local);
    let unreachable = h
        .route_get(ip("203.0.113.1"))
        .expect_err("no default in host ns");
    assert_eq!(
        unreachable.errno(),
        Some(libc::ENETUNREACH),
        "{unreachable}"
    );

    // Delete matches without scope/protocol; a second delete reports not found.
    h.del_route(&Route::new(net("10.244.0.5/32")).dev(veth.index))
        .unwrap_or_else(|e| panic!("{e}"));
    h.del_route(&block).unwrap_or_else(|e| panic!("{e}"));
    let gone = h.del_route(&block).expect_err("already deleted");
    assert!(gone.is_not_found(), "{gone}");
    assert_eq!(h.routes(254).unwrap_or_else(|e| panic!("{e}")), vec![]);
    c.del_address(eth0.index, net("10.244.0.5/32"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.addresses(Some(eth0.index))
            .unwrap_or_else(|e| panic!("{e}")),
        vec![]
    );
    // The kernel flushes the routes of a device that loses its last address.
    assert_eq!(c.routes(254).unwrap_or_else(|e| panic!("{e}")), vec![]);
    root.assert_unchanged();
}

#[test]
fn routes_to_other_nodes_and_tables() {
    if !root_or_skip("routes_to_other_nodes_and_tables") {
        return;
    }
    let root = RootState::capture();
    let node = TestNs::new("node");
    let mut h = node.handle();
    let v = h
        .create_veth_with(&VethSpec::new("eth0", "peer0").up().peer_up())
        .unwrap_or_else(|e| panic!("{e}"));
    h.add_address(v.index, net("198.51.100.11/24"))
        .unwrap_or_else(|e| panic!("{e}"));
    // The connected route the kernel made is reported with proto kernel, scope link.
    let connected = h.routes(254).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        connected.iter().any(|r| r.dst == net("198.51.100.0/24")
            && r.protocol == weft_netlink::RTPROT_KERNEL
            && r.scope == RouteScope::Link
            && r.prefsrc == Some(ip("198.51.100.11"))),
        "{connected:?}"
    );
    // One route per remote block, `via NODE_IP onlink`.
    let remote = Route::new(net("10.244.64.0/26"))
        .via(ip("198.51.100.12"))
        .dev(v.index)
        .onlink()
        .proto(80);
    h.add_route(&remote).unwrap_or_else(|e| panic!("{e}"));
    assert!(h.routes(254).unwrap_or_default().contains(&remote));
    // Replace moves it to another next hop.
    let moved = remote.clone().via(ip("198.51.100.13"));
    h.replace_route(&moved).unwrap_or_else(|e| panic!("{e}"));
    let now = h.routes(254).unwrap_or_default();
    assert!(now.contains(&moved) && !now.contains(&remote), "{now:?}");
    // Other tables, including one above 255, are kept apart.
    let t = Route::new(net("10.9.0.0/16"))
        .unreachable()
        .table(1000)
        .metric(7);
    h.add_route(&t).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        h.routes(1000).unwrap_or_else(|e| panic!("{e}")),
        vec![t.clone()]
    );
    assert!(!h.routes(254).unwrap_or_default().contains(&t));
    assert_eq!(
        h.routes(77).unwrap_or_else(|e| panic!("{e}")),
        vec![],
        "unused table"
    );
    h.del_route(&t).unwrap_or_else(|e| panic!("{e}"));

    // Many routes: the dump spans several datagrams.
    let count = 2000u32;
    for i in 0..count {
        let dst = std::net::Ipv4Addr::from(u32::from(ip("10.128.0.0")) + i * 64);
        let r = Route::new(weft_netlink::Ipv4Net::new(dst, 26).unwrap_or_default()).blackhole();
        h.add_route(&r).unwrap_or_else(|e| panic!("{e}"));
    }
    let all = h.routes(254).unwrap_or_else(|e| panic!("{e}"));
    let blackholes = all
        .iter()
        .filter(|r| r.kind == RouteKind::Blackhole)
        .count();
    assert_eq!(blackholes, count as usize);
    root.assert_unchanged();
}
