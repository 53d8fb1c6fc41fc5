//! Unit tests of pure message construction and decoding (no socket, no root).

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo,
};
use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourState};
use netlink_packet_route::route::{RouteAttribute, RouteFlags, RouteProtocol, RouteScope as Nl};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::addr::address_message;
use crate::link_spec::vxlan_message;
use crate::neigh::{fdb_message, neighbour_message};
use crate::{Address, LinkChange, Route, RouteKind, RouteScope, VethSpec};

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("test prefix")
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

/// Serialises a message and parses it back, as the kernel would see it.
fn round_trip(m: RouteNetlinkMessage) -> RouteNetlinkMessage {
    let mut nl = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::InnerMessage(m));
    nl.finalize();
    let mut buf = vec![0; nl.buffer_len()];
    nl.serialize(&mut buf);
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf)
        .expect("parse back")
        .payload
    {
        NetlinkPayload::InnerMessage(m) => m,
        other => panic!("unexpected payload {other:?}"),
    }
}

#[test]
fn veth_spec_is_one_message() {
    let spec = VethSpec::new("cali0123456789a", "eth0")
        .mac([0xee; 6])
        .mtu(1450)
        .up()
        .peer_mac([2, 0, 0, 0, 0, 1])
        .peer_up();
    assert_eq!(spec.to_string(), "cali0123456789a (peer eth0)");
    let m = spec.message();
    assert_eq!(m.header.flags, LinkFlags::Up);
    assert_eq!(m.header.change_mask, LinkFlags::Up);
    assert!(m
        .attributes
        .contains(&LinkAttribute::IfName("cali0123456789a".into())));
    assert!(m
        .attributes
        .contains(&LinkAttribute::Address(vec![0xee; 6])));
    assert!(m.attributes.contains(&LinkAttribute::Mtu(1450)));
    let info = m
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i.clone()),
            _ => None,
        })
        .expect("link info");
    assert_eq!(info[0], LinkInfo::Kind(InfoKind::Veth));
    let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &info[1] else {
        panic!("no peer in {info:?}");
    };
    assert!(
        peer.header.change_mask.is_empty(),
        "peer up is a second request"
    );
    assert!(peer
        .attributes
        .contains(&LinkAttribute::IfName("eth0".into())));
    assert!(peer.attributes.contains(&LinkAttribute::Mtu(1450)));
    assert!(peer
        .attributes
        .contains(&LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1])));
    // It serialises and parses back unchanged.
    let back = round_trip(RouteNetlinkMessage::NewLink(m.clone()));
    assert_eq!(back, RouteNetlinkMessage::NewLink(m));
}

#[test]
fn link_change_sets_only_what_is_asked() {
    let m = LinkChange::new().up(false).message(7);
    assert_eq!(m.header.index, 7);
    assert_eq!(m.header.change_mask, LinkFlags::Up);
    assert!(!m.header.flags.contains(LinkFlags::Up));
    assert!(m.attributes.is_empty());

    let c = LinkChange::new().master(None).mtu(1400).name("x");
    let m = c.message(3);
    assert!(m.header.change_mask.is_empty());
    assert!(m.attributes.contains(&LinkAttribute::Controller(0)));
    assert!(m.attributes.contains(&LinkAttribute::Mtu(1400)));
    assert!(m.attributes.contains(&LinkAttribute::IfName("x".into())));
    assert_eq!(c.to_string(), "mtu 1400 nomaster name x");
}

#[test]
fn vxlan_message_carries_its_settings() {
    let m = vxlan_message(
        "vxlan.calico",
        4096,
        4789,
        Some(ip("198.51.100.11")),
        Some(2),
        false,
    );
    let info = m
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::LinkInfo(i) => Some(i.clone()),
            _ => None,
        })
        .expect("link info");
    assert_eq!(info[0], LinkInfo::Kind(InfoKind::Vxlan));
    let LinkInfo::Data(InfoData::Vxlan(data)) = &info[1] else {
        panic!("no vxlan data");
    };
    for want in [
        InfoVxlan::Id(4096),
        InfoVxlan::Port(4789),
        InfoVxlan::Local(ip("198.51.100.11")),
        InfoVxlan::Link(2),
        InfoVxlan::Learning(false),
    ] {
        assert!(data.contains(&want), "{want:?} missing");
    }
    let back = round_trip(RouteNetlinkMessage::NewLink(m.clone()));
    assert_eq!(back, RouteNetlinkMessage::NewLink(m));
}

#[test]
fn route_builders() {
    let r = Route::new(net("10.244.1.7/26"));
    assert_eq!(r.dst, net("10.244.1.0/26"), "host bits are cleared");
    assert_eq!(r.table, 254);
    assert_eq!(r.kind, RouteKind::Unicast);
    assert_eq!(r.scope, RouteScope::Universe);
    assert_eq!(r.protocol, crate::RTPROT_BOOT);

    let d = Route::default_via(ip("169.254.1.1")).dev(2).onlink();
    assert_eq!(
        d.to_string(),
        "default via 169.254.1.1 dev 2 proto boot onlink"
    );
    let b = Route::new(net("10.244.0.0/26")).blackhole().proto(80);
    assert_eq!(b.to_string(), "blackhole 10.244.0.0/26 proto 80");
    let h = Route::new(net("10.244.0.5/32"))
        .dev(9)
        .scope_link()
        .metric(5)
        .table(1000);
    assert_eq!(
        h.to_string(),
        "10.244.0.5/32 dev 9 proto boot scope link metric 5 table 1000"
    );
}

#[test]
fn route_message_round_trips() {
    let routes = [
        Route::default_via(ip("169.254.1.1")).dev(2).onlink(),
        Route::new(net("10.244.0.0/26")).blackhole(),
        Route::new(net("10.244.0.5/32"))
            .dev(9)
            .scope_link()
            .proto(80),
        Route::new(net("10.244.64.0/26"))
            .via(ip("198.51.100.12"))
            .dev(3)
            .onlink()
            .metric(20),
        Route::new(net("203.0.113.0/24"))
            .via(ip("198.51.100.1"))
            .src(ip("198.51.100.11")),
        Route::new(net("10.1.0.0/16")).unreachable().table(1000),
    ];
    for r in routes {
        let m = r.to_message(false);
        let back = round_trip(RouteNetlinkMessage::NewRoute(m.clone()));
        let RouteNetlinkMessage::NewRoute(back) = back else {
            panic!("not a route");
        };
        assert_eq!(Route::from_message(&back).as_ref(), Some(&r), "{r}");
    }
}

#[test]
fn route_message_header() {
    let r = Route::new(net("10.0.0.0/8"))
        .via(ip("10.0.0.1"))
        .onlink()
        .table(1000);
    let m = r.to_message(false);
    assert_eq!(m.header.address_family, AddressFamily::Inet);
    assert_eq!(m.header.destination_prefix_length, 8);
    assert_eq!(m.header.table, 0, "tables above 255 go in RTA_TABLE only");
    assert!(m.attributes.contains(&RouteAttribute::Table(1000)));
    assert!(m.header.flags.contains(RouteFlags::Onlink));
    assert_eq!(m.header.protocol, RouteProtocol::Boot);

    let del = r.to_message(true);
    assert_eq!(del.header.scope, Nl::NoWhere, "delete matches any scope");
    assert_eq!(
        del.header.protocol,
        RouteProtocol::Unspec,
        "and any protocol"
    );

    let default = Route::default_via(ip("10.0.0.1")).to_message(false);
    assert!(
        !default
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Destination(_))),
        "no RTA_DST for the default route"
    );
}

#[test]
fn address_message_round_trips() {
    let m = address_message(4, net("10.244.0.7/32"));
    assert_eq!(m.header.prefix_len, 32);
    let back = round_trip(RouteNetlinkMessage::NewAddress(m));
    let RouteNetlinkMessage::NewAddress(back) = back else {
        panic!("not an address");
    };
    assert_eq!(
        Address::from_message(&back),
        Some(Address {
            index: 4,
            addr: net("10.244.0.7/32")
        })
    );
    // A subnet address carries its broadcast.
    let m = address_message(4, net("198.51.100.11/24"));
    assert!(m.attributes.iter().any(|a| matches!(
        a,
        netlink_packet_route::address::AddressAttribute::Broadcast(b) if *b == ip("198.51.100.255")
    )));
}

#[test]
fn neighbour_and_fdb_messages() {
    let n = neighbour_message(5, ip("169.254.1.1"), Some([0xee; 6]), crate::NUD_PERMANENT);
    assert_eq!(n.header.family, AddressFamily::Inet);
    assert_eq!(n.header.state, NeighbourState::Permanent);
    assert!(n
        .attributes
        .contains(&NeighbourAttribute::LinkLayerAddress(vec![0xee; 6])));

    let f = fdb_message(6, [0x66, 0, 0, 0, 0, 1], Some(ip("198.51.100.12")));
    assert_eq!(f.header.family, AddressFamily::Bridge);
    assert_eq!(f.header.flags, NeighbourFlags::Own);
    assert_eq!(f.header.state, NeighbourState::Permanent);
    let back = round_trip(RouteNetlinkMessage::NewNeighbour(f));
    assert!(matches!(back, RouteNetlinkMessage::NewNeighbour(_)));
}

#[test]
fn link_change_af_spec_devconf_and_addr_gen_mode() {
    use netlink_packet_core::Emitable;
    let c = LinkChange::new()
        .inet_conf(&[
            (crate::IPV4_DEVCONF_PROXY_ARP, 1),
            (crate::IPV4_DEVCONF_FORWARDING, 1),
        ])
        .no_ipv6_addr_gen();
    assert_eq!(c.check(), Ok(()));
    assert!(c.to_string().contains("addrgenmode none"), "{c}");
    let m = c.message(7);
    let af = m
        .attributes
        .iter()
        .find(|a| matches!(a, LinkAttribute::AfSpecUnspec(_)))
        .expect("IFLA_AF_SPEC");
    let mut buf = vec![0; af.buffer_len()];
    af.emit(&mut buf);
    // IFLA_AF_SPEC (26) { AF_INET (2) { IFLA_INET_CONF (1) { 3: u32 1, 1: u32 1 } },
    //                     AF_INET6 (10) { IFLA_INET6_ADDR_GEN_MODE (8): u8 1 } }
    let u16_at = |i: usize| u16::from_ne_bytes([buf[i], buf[i + 1]]);
    let u32_at = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    assert_eq!(u16_at(2) & 0x3fff, 26);
    assert_eq!(u16_at(6) & 0x3fff, 2);
    assert_eq!(u16_at(8), 4 + 16, "IFLA_INET_CONF holds two u32 attributes");
    assert_eq!(u16_at(10) & 0x3fff, 1);
    assert_eq!((u16_at(12), u16_at(14), u32_at(16)), (8, 3, 1));
    assert_eq!((u16_at(20), u16_at(22), u32_at(24)), (8, 1, 1));
    assert_eq!(u16_at(30) & 0x3fff, 10);
    assert_eq!((u16_at(32), u16_at(34), buf[36]), (5, 8, 1));
    // Out-of-range devconf indices are refused before sending.
    assert!(LinkChange::new().inet_conf(&[(0, 1)]).check().is_err());
    assert!(LinkChange::new().inet_conf(&[(34, 1)]).check().is_err());
    // Without settings no IFLA_AF_SPEC is sent.
    assert!(!LinkChange::new()
        .up(true)
        .message(7)
        .attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::AfSpecUnspec(_))));
}

#[test]
fn proxy_delay_message_names_arp_cache_and_link() {
    use netlink_packet_route::neighbour_table::{NeighbourTableAttribute, NeighbourTableParameter};
    let m = crate::neigh::proxy_delay_message(12, 0);
    let RouteNetlinkMessage::SetNeighbourTable(back) =
        round_trip(RouteNetlinkMessage::SetNeighbourTable(m.clone()))
    else {
        panic!("not a neighbour table message");
    };
    assert_eq!(back.header.family, AddressFamily::Inet);
    assert!(back
        .attributes
        .contains(&NeighbourTableAttribute::Name("arp_cache".to_string())));
    assert!(back
        .attributes
        .contains(&NeighbourTableAttribute::Parms(vec![
            NeighbourTableParameter::Ifindex(12),
            NeighbourTableParameter::ProxyDelay(0),
        ])));
}
