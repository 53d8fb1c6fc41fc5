//! Root-only: per-device settings made by netlink requests instead of sysctl writes,
//! checked through /proc in test namespaces.

mod common;

use common::{root_or_skip, RootState, TestNs};
use weft_netlink::{
    run_in_netns, Batch, LinkChange, Netns, VethSpec, IPV4_DEVCONF_FORWARDING,
    IPV4_DEVCONF_PROXY_ARP,
};

/// Reads `/proc/sys/<key>` in `ns`.
fn proc_sys(ns: &Netns, key: &str) -> String {
    weft_netlink::sysctl_get(ns, key).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn veth_host_end_devconf_in_create_request() {
    if !root_or_skip("veth_host_end_devconf_in_create_request") {
        return;
    }
    let root = RootState::capture();
    let host = TestNs::new("dchost");
    let ctr = TestNs::new("dcctr");
    let mut h = host.handle();
    let spec = VethSpec::new("calidc0", "eth0")
        .up()
        .proxy_arp(true)
        .forwarding(true)
        .peer_ns(&ctr.ns);
    h.create_veth_with(&spec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(proc_sys(&host.ns, "net/ipv4/conf/calidc0/proxy_arp"), "1");
    assert_eq!(proc_sys(&host.ns, "net/ipv4/conf/calidc0/forwarding"), "1");
    // Others keep the namespace defaults.
    assert_eq!(
        proc_sys(&host.ns, "net/ipv4/conf/calidc0/rp_filter"),
        proc_sys(&host.ns, "net/ipv4/conf/default/rp_filter")
    );
    drop((ctr, host));
    root.assert_unchanged();
}

/// Lines of `/proc/net/if_inet6` in `ns` (one per IPv6 address, like `ip -6 addr`).
fn ipv6_addresses(ns: &Netns) -> Vec<String> {
    run_in_netns(ns, || {
        std::fs::read_to_string("/proc/thread-self/net/if_inet6")
    })
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or_default()
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn addr_gen_none_then_up_gives_no_ipv6_address() {
    if !root_or_skip("addr_gen_none_then_up_gives_no_ipv6_address") {
        return;
    }
    let root = RootState::capture();
    let host = TestNs::new("aghost");
    let ctr = TestNs::new("agctr");
    let mut h = host.handle();
    let mut c = ctr.handle();
    let spec = VethSpec::new("caliag0", "eth0").up().peer_ns(&ctr.ns);
    let link = h.create_veth_with(&spec).unwrap_or_else(|e| panic!("{e}"));
    let eth0 = link.link.expect("peer index");
    // addrgenmode none while down, then up (in one request the kernel would bring the
    // link up first and make the link-local address).
    c.set_link(eth0, &LinkChange::new().no_ipv6_addr_gen())
        .unwrap_or_else(|e| panic!("{e}"));
    c.set_up(eth0).unwrap_or_else(|e| panic!("{e}"));
    let peer = c
        .link_by_index(eth0)
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("eth0");
    assert!(peer.up && peer.oper_up, "{peer:?}");
    // Give addrconf a moment (it runs on NETDEV_UP / carrier change).
    std::thread::sleep(std::time::Duration::from_millis(100));
    let v6 = ipv6_addresses(&ctr.ns);
    assert!(!v6.iter().any(|l| l.ends_with(" eth0")), "{v6:?}");
    assert_eq!(proc_sys(&ctr.ns, "net/ipv6/conf/eth0/addr_gen_mode"), "1");
    drop((ctr, host));
    root.assert_unchanged();
}

#[test]
fn neigh_proxy_delay_by_netlink() {
    if !root_or_skip("neigh_proxy_delay_by_netlink") {
        return;
    }
    let root = RootState::capture();
    let host = TestNs::new("pdhost");
    let ctr = TestNs::new("pdctr");
    let mut h = host.handle();
    let spec = VethSpec::new("calipd0", "eth0").peer_ns(&ctr.ns);
    let link = h.create_veth_with(&spec).unwrap_or_else(|e| panic!("{e}"));
    let key = "net/ipv4/neigh/calipd0/proxy_delay";
    assert_ne!(proc_sys(&host.ns, key), "0", "the default is not 0");
    h.set_neigh_proxy_delay(link.index, 0)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(proc_sys(&host.ns, key), "0");
    // Other links keep the default.
    assert_ne!(proc_sys(&host.ns, "net/ipv4/neigh/lo/proxy_delay"), "0");
    // A missing link is an error naming it.
    let e = h.set_neigh_proxy_delay(9999, 0).expect_err("no such link");
    assert!(e.to_string().contains("9999"), "{e}");
    drop((ctr, host));
    root.assert_unchanged();
}

#[test]
fn batch_runs_in_order_and_reports_the_failing_request() {
    if !root_or_skip("batch_runs_in_order_and_reports_the_failing_request") {
        return;
    }
    let root = RootState::capture();
    let host = TestNs::new("bthost");
    let ctr = TestNs::new("btctr");
    let mut h = host.handle();
    let mut c = ctr.handle();
    let link = h
        .create_veth_with(&VethSpec::new("calibt0", "eth0").up().peer_ns(&ctr.ns))
        .unwrap_or_else(|e| panic!("{e}"));
    let eth0 = link.link.expect("peer index");
    let addr: weft_netlink::Ipv4Net = "10.9.0.2/32".parse().expect("net");
    let gw = std::net::Ipv4Addr::new(169, 254, 1, 1);
    let default = weft_netlink::Route::new("0.0.0.0/0".parse().expect("net"))
        .via(gw)
        .dev(eth0)
        .onlink();
    // The onlink route needs eth0 up: order matters and is kept.
    let b = Batch::new()
        .set_up(weft_netlink::LOOPBACK_INDEX)
        .set_link(eth0, &LinkChange::new().no_ipv6_addr_gen())
        .add_address(eth0, addr)
        .set_up(eth0)
        .add_route(&default);
    assert_eq!(b.len(), 5);
    c.run_batch(&b).unwrap_or_else(|e| panic!("{e}"));
    let got = c
        .route_get(std::net::Ipv4Addr::new(10, 1, 2, 3))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.gateway, Some(gw), "{got:?}");
    assert_eq!(proc_sys(&ctr.ns, "net/ipv6/conf/eth0/addr_gen_mode"), "1");

    // Node side, like attach: devconf, proxy delay, /32 route.
    let hb = Batch::new()
        .set_link(
            link.index,
            &LinkChange::new()
                .inet_conf(&[(IPV4_DEVCONF_PROXY_ARP, 1), (IPV4_DEVCONF_FORWARDING, 1)]),
        )
        .set_neigh_proxy_delay(link.index, 0)
        .replace_route(&weft_netlink::Route::new(addr).dev(link.index).scope_link());
    h.run_batch(&hb).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(proc_sys(&host.ns, "net/ipv4/conf/calibt0/proxy_arp"), "1");
    assert_eq!(proc_sys(&host.ns, "net/ipv4/conf/calibt0/forwarding"), "1");
    assert_eq!(
        proc_sys(&host.ns, "net/ipv4/neigh/calibt0/proxy_delay"),
        "0"
    );

    // A failing request in the middle: its error is returned (naming it), the others run.
    let b = Batch::new()
        .add_address(eth0, addr) // exists already
        .add_address(eth0, "10.9.0.3/32".parse().expect("net"));
    let e = c.run_batch(&b).expect_err("duplicate address");
    assert!(e.to_string().contains("10.9.0.2/32"), "{e}");
    let addrs = c.addresses(Some(eth0)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    // The handle still works afterwards (no stray ACK left behind).
    c.set_up(eth0).unwrap_or_else(|e| panic!("{e}"));

    // A bad devconf index refuses the whole batch before sending.
    let b = Batch::new().set_link(link.index, &LinkChange::new().inet_conf(&[(0, 1)]));
    assert!(h.run_batch(&b).is_err());
    assert!(Batch::new().is_empty());
    drop((ctr, host));
    root.assert_unchanged();
}
