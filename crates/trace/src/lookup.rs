//! Route lookup as the kernel does it with the default rules (local table, then main):
//! longest prefix, then lowest metric; blackhole / unreachable / prohibit entries stop the
//! packet; the source address follows `ip route get` (prefsrc, else an address of the egress
//! interface, else any global address of the namespace).

use std::net::Ipv4Addr;

use weft_netlink::{Route, RouteKind, RouteScope, RTPROT_BOOT, RTPROT_KERNEL, RTPROT_STATIC};

use crate::snapshot::NsSnapshot;

/// The result of a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The destination is an address of this namespace (local table entry, if any).
    Local(Option<Route>),
    /// A main-table entry matched.
    Matched(Route),
    /// Nothing matched.
    NoRoute,
}

/// Looks `dst` up in `s`.
pub fn lookup(s: &NsSnapshot, dst: Ipv4Addr) -> Lookup {
    if let Some(r) = s.local_route(dst) {
        return Lookup::Local(Some(r.clone()));
    }
    if s.local.is_empty() && s.is_local(dst) {
        return Lookup::Local(None);
    }
    let best = s
        .main
        .iter()
        .filter(|r| r.dst.contains(&dst))
        .filter(|r| usable(s, r))
        .max_by(|a, b| {
            a.dst
                .prefix_len()
                .cmp(&b.dst.prefix_len())
                // Lower metric wins: compare reversed.
                .then(b.metric.unwrap_or(0).cmp(&a.metric.unwrap_or(0)))
        });
    match best {
        Some(r) => Lookup::Matched(r.clone()),
        None => Lookup::NoRoute,
    }
}

/// A unicast route whose device is administratively down is not used (the kernel flushes
/// those; a snapshot might still hold one).
fn usable(s: &NsSnapshot, r: &Route) -> bool {
    match (r.kind, r.oif) {
        (RouteKind::Unicast, Some(oif)) => s.link(oif).is_none_or(|l| l.up),
        _ => true,
    }
}

/// The next hop of a unicast route: its gateway, or the destination itself.
pub fn next_hop(r: &Route, dst: Ipv4Addr) -> Ipv4Addr {
    r.gateway.unwrap_or(dst)
}

/// The source address the kernel picks for a packet it makes to `dst` along `r`.
pub fn select_source(s: &NsSnapshot, r: &Route, dst: Ipv4Addr) -> Option<Ipv4Addr> {
    if let Some(src) = r.prefsrc {
        return Some(src);
    }
    let global = |ip: &Ipv4Addr| !ip.is_loopback();
    if let Some(oif) = r.oif {
        let on_dev: Vec<_> = s
            .addrs
            .iter()
            .filter(|a| a.index == oif && global(&a.addr.addr()))
            .collect();
        let nh = next_hop(r, dst);
        if let Some(a) = on_dev.iter().find(|a| a.addr.contains(&nh)) {
            return Some(a.addr.addr());
        }
        if let Some(a) = on_dev.first() {
            return Some(a.addr.addr());
        }
    }
    let mut all: Vec<_> = s.addrs.iter().filter(|a| global(&a.addr.addr())).collect();
    all.sort_by_key(|a| a.index);
    all.first().map(|a| a.addr.addr())
}

/// `ip route`-style text of a route with device names: `10.244.0.64/26 via 198.51.100.12
/// dev eth0 proto 80 onlink`.
pub fn show_route(s: &NsSnapshot, r: &Route) -> String {
    let mut out = String::new();
    match r.kind {
        RouteKind::Unicast => {}
        RouteKind::Blackhole => out.push_str("blackhole "),
        RouteKind::Unreachable => out.push_str("unreachable "),
        RouteKind::Prohibit => out.push_str("prohibit "),
        RouteKind::Local => out.push_str("local "),
        RouteKind::Other(o) => out.push_str(&format!("type {o} ")),
    }
    if r.dst.prefix_len() == 0 {
        out.push_str("default");
    } else if r.dst.prefix_len() == 32 {
        out.push_str(&r.dst.addr().to_string());
    } else {
        out.push_str(&r.dst.to_string());
    }
    out.push_str(&route_tail(s, r));
    out
}

/// Arguments of `ip route replace` that recreate `r` (explicit prefix and protocol number).
pub fn route_command_args(s: &NsSnapshot, r: &Route) -> String {
    let kind = match r.kind {
        RouteKind::Blackhole => "blackhole ",
        RouteKind::Unreachable => "unreachable ",
        RouteKind::Prohibit => "prohibit ",
        _ => "",
    };
    format!("{kind}{}{}", r.dst, route_tail(s, r))
}

fn route_tail(s: &NsSnapshot, r: &Route) -> String {
    let mut out = String::new();
    if let Some(gw) = r.gateway {
        out.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = r.oif {
        out.push_str(&format!(" dev {}", s.link_name(oif)));
    }
    match r.protocol {
        RTPROT_BOOT => {}
        RTPROT_KERNEL => out.push_str(" proto kernel"),
        RTPROT_STATIC => out.push_str(" proto static"),
        p => out.push_str(&format!(" proto {p}")),
    }
    match r.scope {
        RouteScope::Universe => {}
        RouteScope::Link => out.push_str(" scope link"),
        RouteScope::Host => out.push_str(" scope host"),
        RouteScope::Other(x) => out.push_str(&format!(" scope {x}")),
    }
    if let Some(src) = r.prefsrc {
        out.push_str(&format!(" src {src}"));
    }
    if let Some(m) = r.metric.filter(|m| *m != 0) {
        out.push_str(&format!(" metric {m}"));
    }
    if r.onlink {
        out.push_str(" onlink");
    }
    out
}

/// Whether the reverse path filter of `iface` (index `ingress`) lets a packet from `src` in:
/// strict mode wants the route back to `src` to leave through the same interface, loose mode
/// any usable route back.
pub fn rp_filter_pass(s: &NsSnapshot, mode: u8, ingress: u32, src: Ipv4Addr) -> bool {
    if mode == 0 {
        return true;
    }
    match lookup(s, src) {
        Lookup::Matched(r) if r.kind == RouteKind::Unicast => mode == 2 || r.oif == Some(ingress),
        // A packet claiming a local source is a martian.
        Lookup::Local(_) => false,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{addr, link, local, route};

    fn node() -> NsSnapshot {
        let mut s = NsSnapshot {
            links: vec![
                link(1, "lo", None, [0; 6]),
                link(2, "eth0", Some("veth"), [2, 0, 0, 0, 0, 11]),
                link(3, "cali1", Some("veth"), [0xee; 6]),
            ],
            addrs: vec![addr(1, "127.0.0.1/8"), addr(2, "198.51.100.11/24")],
            ..Default::default()
        };
        let mut def = route("0.0.0.0/0")
            .via("198.51.100.1".parse().unwrap())
            .dev(2);
        def.protocol = RTPROT_BOOT;
        s.main = vec![
            def,
            route("10.244.0.0/26").blackhole().proto(80),
            route("10.244.0.1/32").dev(3).scope_link().proto(80),
            route("10.244.0.64/26")
                .via("198.51.100.12".parse().unwrap())
                .dev(2)
                .onlink()
                .proto(80),
            route("198.51.100.0/24")
                .dev(2)
                .scope_link()
                .proto(RTPROT_KERNEL),
        ];
        s.local = vec![local("127.0.0.0/8", 1), local("198.51.100.11/32", 2)];
        s
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_over_block_blackhole() {
        let s = node();
        let Lookup::Matched(r) = lookup(&s, ip("10.244.0.1")) else {
            panic!("no match")
        };
        assert_eq!(r.oif, Some(3));
        assert_eq!(
            show_route(&s, &r),
            "10.244.0.1 dev cali1 proto 80 scope link"
        );
        assert_eq!(
            select_source(&s, &r, ip("10.244.0.1")),
            Some(ip("198.51.100.11"))
        );
    }

    #[test]
    fn address_in_local_block_without_workload_is_blackholed() {
        let s = node();
        let Lookup::Matched(r) = lookup(&s, ip("10.244.0.2")) else {
            panic!("no match")
        };
        assert_eq!(r.kind, RouteKind::Blackhole);
        assert_eq!(show_route(&s, &r), "blackhole 10.244.0.0/26 proto 80");
    }

    #[test]
    fn remote_block_goes_via_the_other_node_onlink() {
        let s = node();
        let Lookup::Matched(r) = lookup(&s, ip("10.244.0.70")) else {
            panic!("no match")
        };
        assert_eq!(next_hop(&r, ip("10.244.0.70")), ip("198.51.100.12"));
        assert_eq!(
            show_route(&s, &r),
            "10.244.0.64/26 via 198.51.100.12 dev eth0 proto 80 onlink"
        );
        assert_eq!(
            route_command_args(&s, &r),
            "10.244.0.64/26 via 198.51.100.12 dev eth0 proto 80 onlink"
        );
    }

    #[test]
    fn local_addresses_and_default_route() {
        let s = node();
        assert!(matches!(
            lookup(&s, ip("198.51.100.11")),
            Lookup::Local(Some(_))
        ));
        assert!(matches!(
            lookup(&s, ip("127.0.0.5")),
            Lookup::Local(Some(_))
        ));
        let Lookup::Matched(r) = lookup(&s, ip("203.0.113.1")) else {
            panic!("no match")
        };
        assert_eq!(r.dst.prefix_len(), 0);
        assert_eq!(show_route(&s, &r), "default via 198.51.100.1 dev eth0");
        let mut empty = node();
        empty.main.clear();
        assert_eq!(lookup(&empty, ip("203.0.113.1")), Lookup::NoRoute);
    }

    #[test]
    fn metric_breaks_ties_and_down_devices_are_skipped() {
        let mut s = node();
        s.main.push(route("10.9.0.0/16").dev(2).metric(100));
        s.main.push(route("10.9.0.0/16").dev(3).metric(10));
        let Lookup::Matched(r) = lookup(&s, ip("10.9.1.1")) else {
            panic!()
        };
        assert_eq!(r.oif, Some(3));
        s.links[2].up = false;
        let Lookup::Matched(r) = lookup(&s, ip("10.9.1.1")) else {
            panic!()
        };
        assert_eq!(r.oif, Some(2));
    }

    #[test]
    fn container_source_is_its_slash_32() {
        let s = NsSnapshot {
            links: vec![
                link(1, "lo", None, [0; 6]),
                link(2, "eth0", Some("veth"), [2; 6]),
            ],
            addrs: vec![addr(1, "127.0.0.1/8"), addr(2, "10.244.0.1/32")],
            main: vec![route("0.0.0.0/0")
                .via(weft_model::WORKLOAD_GATEWAY)
                .dev(2)
                .onlink()],
            ..Default::default()
        };
        let Lookup::Matched(r) = lookup(&s, ip("10.244.0.2")) else {
            panic!()
        };
        assert_eq!(next_hop(&r, ip("10.244.0.2")), weft_model::WORKLOAD_GATEWAY);
        assert_eq!(
            select_source(&s, &r, ip("10.244.0.2")),
            Some(ip("10.244.0.1"))
        );
    }

    #[test]
    fn rp_filter_strict_and_loose() {
        let s = node();
        // From a workload on its own cali interface: passes strict.
        assert!(rp_filter_pass(&s, 1, 3, ip("10.244.0.1")));
        // The same source arriving on eth0 fails strict, passes loose.
        assert!(!rp_filter_pass(&s, 1, 2, ip("10.244.0.1")));
        assert!(rp_filter_pass(&s, 2, 2, ip("10.244.0.1")));
        // A blackholed source fails both.
        assert!(!rp_filter_pass(&s, 2, 2, ip("10.244.0.9")));
        assert!(rp_filter_pass(&s, 0, 2, ip("10.244.0.9")));
    }
}
