//! The plan's per-block decision: a pool's VXLAN mode (or the cluster's default, VXLAN or IPIP)
//! and the two nodes' subnets choose between a plain route and a tunnel device.

use std::net::Ipv4Addr;

use weft_ipam::{Block, IpPool};
use weft_model::{Encap, Node, VxlanMode, DEFAULT_POOL};
use weft_netlink::Route;

use crate::{plan, ClusterState, PlanInput};

const ETH0: u32 = 2;
const VXLAN: u32 = 5;
const TUNL0: u32 = 6;

fn node(name: &str, addr: &str, tunnel: [u8; 4]) -> Node {
    Node {
        tunnel_address: Some(Ipv4Addr::from(tunnel)),
        vxlan_mac: Some("66:00:00:00:00:01".into()),
        ..Node::on_subnet(name, addr.parse().unwrap())
    }
}

fn block(cidr: &str, pool: &str, node: &str) -> Block {
    Block::claimed(cidr.parse().unwrap(), pool, node)
}

/// a1 and a2 on 198.51.100.0/24, b1 on 198.51.101.0/24; one block each in the default pool
/// (following the cluster's default) and in pool `net-x` with `x_mode`.
fn cluster(x_mode: Option<VxlanMode>) -> ClusterState {
    ClusterState {
        nodes: vec![
            node("a1", "198.51.100.11/24", [10, 244, 0, 0]),
            node("a2", "198.51.100.12/24", [10, 244, 0, 64]),
            node("b1", "198.51.101.11/24", [10, 244, 0, 128]),
        ],
        blocks: vec![
            block("10.244.0.0/26", DEFAULT_POOL, "a1"),
            block("10.244.0.64/26", DEFAULT_POOL, "a2"),
            block("10.244.0.128/26", DEFAULT_POOL, "b1"),
            block("10.50.0.64/26", "net-x", "a2"),
            block("10.50.0.128/26", "net-x", "b1"),
        ],
        pools: vec![
            IpPool::new(DEFAULT_POOL, "10.244.0.0/16".parse().unwrap()),
            IpPool {
                vxlan_mode: x_mode,
                ..IpPool::new("net-x", "10.50.0.0/16".parse().unwrap())
            },
        ],
        ..Default::default()
    }
}

fn routes_of(st: &ClusterState, me: &str, encap: Encap) -> (Vec<Route>, Vec<String>) {
    let p = plan(&PlanInput {
        node: me,
        state: st,
        encap,
        ifindex: &|n: &str| match n {
            "eth0" => Some(ETH0),
            "weft.vxlan" => Some(VXLAN),
            "tunl0" => Some(TUNL0),
            _ => None,
        },
    });
    (p.routes, p.warnings)
}

/// (gateway, device) of the route to `dst`.
fn way(routes: &[Route], dst: &str) -> (Option<Ipv4Addr>, Option<u32>) {
    let r = routes
        .iter()
        .find(|r| r.dst.to_string() == dst)
        .unwrap_or_else(|| panic!("no route to {dst} in {routes:#?}"));
    assert!(r.onlink, "{r:?}");
    (r.gateway, r.oif)
}

fn ip(s: &str) -> Option<Ipv4Addr> {
    Some(s.parse().unwrap())
}

#[test]
fn cross_subnet_routes_plainly_on_the_subnet_and_through_vxlan_across() {
    let st = cluster(None);
    let (r, warnings) = routes_of(&st, "a1", Encap::CrossSubnet);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(way(&r, "10.244.0.64/26"), (ip("198.51.100.12"), Some(ETH0)));
    assert_eq!(
        way(&r, "10.244.0.128/26"),
        (ip("10.244.0.128"), Some(VXLAN))
    );
    // And from the other side: b1 reaches both a-nodes through the tunnel.
    let (r, _) = routes_of(&st, "b1", Encap::CrossSubnet);
    assert_eq!(way(&r, "10.244.0.0/26"), (ip("10.244.0.0"), Some(VXLAN)));
    assert_eq!(way(&r, "10.244.0.64/26"), (ip("10.244.0.64"), Some(VXLAN)));
}

#[test]
fn a_pools_own_mode_overrides_the_cluster_default() {
    // Cluster default none, pool net-x Always: its blocks go through the tunnel even on the
    // same subnet; the default pool's stay plain.
    let st = cluster(Some(VxlanMode::Always));
    let (r, _) = routes_of(&st, "a1", Encap::None);
    assert_eq!(way(&r, "10.50.0.64/26"), (ip("10.244.0.64"), Some(VXLAN)));
    assert_eq!(way(&r, "10.244.0.64/26"), (ip("198.51.100.12"), Some(ETH0)));
    // Cluster default vxlan, pool net-x CrossSubnet: plain on the subnet, tunnel across.
    let st = cluster(Some(VxlanMode::CrossSubnet));
    let (r, _) = routes_of(&st, "a1", Encap::Vxlan);
    assert_eq!(way(&r, "10.50.0.64/26"), (ip("198.51.100.12"), Some(ETH0)));
    assert_eq!(way(&r, "10.50.0.128/26"), (ip("10.244.0.128"), Some(VXLAN)));
    assert_eq!(way(&r, "10.244.0.64/26"), (ip("10.244.0.64"), Some(VXLAN)));
}

#[test]
fn never_across_subnets_keeps_the_plain_route_and_says_why_it_fails() {
    let st = cluster(Some(VxlanMode::Never));
    let (r, warnings) = routes_of(&st, "a1", Encap::CrossSubnet);
    assert_eq!(way(&r, "10.50.0.128/26"), (ip("198.51.101.11"), Some(ETH0)));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let w = &warnings[0];
    assert!(
        w.contains("10.50.0.128/26") && w.contains("Never") && w.contains("198.51.100.0/24"),
        "{w}"
    );
    // On the same subnet, Never is fine and silent.
    let (_, warnings) = routes_of(&st, "a2", Encap::None);
    assert!(
        warnings.iter().all(|w| !w.contains("10.50.0.64")),
        "{warnings:?}"
    );
}

#[test]
fn old_records_without_a_prefix_share_the_24() {
    // Records written before the prefix existed read as /24: one subnet, all plain.
    let mut st = cluster(None);
    for n in &mut st.nodes {
        let old = format!(r#"{{"name":"{}","address":"{}"}}"#, n.name, n.address);
        *n = serde_json::from_str(&old).unwrap();
    }
    st.nodes[2] = serde_json::from_str(r#"{"name":"b1","address":"198.51.100.13"}"#).unwrap();
    let (r, warnings) = routes_of(&st, "a1", Encap::CrossSubnet);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        way(&r, "10.244.0.128/26"),
        (ip("198.51.100.13"), Some(ETH0))
    );
}

#[test]
fn ipip_routes_go_via_the_nodes_underlay_address_through_tunl0() {
    // Calico's IPIP mode (seed 001): `via <node address> dev tunl0 onlink`, on the subnet too.
    let st = cluster(None);
    let (r, warnings) = routes_of(&st, "a1", Encap::Ipip);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        way(&r, "10.244.0.64/26"),
        (ip("198.51.100.12"), Some(TUNL0))
    );
    assert_eq!(
        way(&r, "10.244.0.128/26"),
        (ip("198.51.101.11"), Some(TUNL0))
    );
    // IPIP CrossSubnet: plain on the subnet, tunl0 across it.
    let (r, _) = routes_of(&st, "a1", Encap::IpipCrossSubnet);
    assert_eq!(way(&r, "10.244.0.64/26"), (ip("198.51.100.12"), Some(ETH0)));
    assert_eq!(
        way(&r, "10.244.0.128/26"),
        (ip("198.51.101.11"), Some(TUNL0))
    );
}

#[test]
fn under_an_ipip_default_a_pool_that_chose_vxlan_keeps_vxlan() {
    let st = cluster(Some(VxlanMode::Always));
    let (r, _) = routes_of(&st, "a1", Encap::Ipip);
    assert_eq!(way(&r, "10.50.0.64/26"), (ip("10.244.0.64"), Some(VXLAN)));
    assert_eq!(
        way(&r, "10.244.0.64/26"),
        (ip("198.51.100.12"), Some(TUNL0))
    );
}

#[test]
fn ipip_without_tunl0_is_a_warning_not_a_plain_route() {
    let st = cluster(None);
    let p = plan(&PlanInput {
        node: "a1",
        state: &st,
        encap: Encap::Ipip,
        ifindex: &|n: &str| (n == "eth0").then_some(ETH0),
    });
    assert!(
        !p.routes
            .iter()
            .any(|r| r.dst.to_string() == "10.244.0.64/26"),
        "{:#?}",
        p.routes
    );
    assert!(
        p.warnings.iter().any(|w| w.contains("no tunl0 device")),
        "{:?}",
        p.warnings
    );
}
