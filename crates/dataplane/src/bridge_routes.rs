//! Routes of bridge networks (flannel's host-gw): every other node's subnet via that node's
//! underlay address, whatever the cluster's encapsulation; the node's own subnet is the
//! bridge's connected route (no blackhole, which would shadow it).

use std::collections::BTreeSet;

use weft_ipam::Block;
use weft_model::Driver;
use weft_netlink::Route;

use crate::plan::{NodePlan, PlanInput};
use crate::ClusterState;

/// Names of the bridge networks.
pub(crate) fn bridge_networks(st: &ClusterState) -> BTreeSet<&str> {
    st.networks
        .iter()
        .filter(|n| n.driver == Driver::Bridge)
        .map(|n| n.name.as_str())
        .collect()
}

/// Pools of the bridge networks.
pub(crate) fn bridge_pools(st: &ClusterState) -> BTreeSet<&str> {
    st.networks
        .iter()
        .filter(|n| n.driver == Driver::Bridge)
        .map(|n| n.pool.as_str())
        .collect()
}

/// The route for `block` (a node's subnet of a bridge network), if this node needs one.
pub(crate) fn block_route(
    input: &PlanInput,
    block: &Block,
    owner: &str,
    underlay: Option<u32>,
    out: &mut NodePlan,
) {
    if owner == input.node {
        return;
    }
    let Some(peer) = input.state.node(owner) else {
        out.warnings.push(format!(
            "subnet {} is affine to unknown node {owner}",
            block.cidr
        ));
        return;
    };
    match underlay {
        Some(dev) => out.routes.push(
            Route::new(block.cidr)
                .via(peer.address)
                .dev(dev)
                .onlink()
                .proto(weft_model::ROUTE_PROTO),
        ),
        None => out.warnings.push(format!(
            "no underlay interface on {}: cannot route subnet {} to {owner}",
            input.node, block.cidr
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use weft_model::{Encap, Network, Node};
    use weft_netlink::RouteKind;

    use super::*;
    use crate::plan;

    fn node(name: &str, last: u8) -> Node {
        Node::new(name, Ipv4Addr::new(198, 51, 100, last))
    }

    fn block(cidr: &str, node: &str) -> Block {
        Block::claimed(cidr.parse().unwrap(), "net-b", node)
    }

    /// host-gw even in VXLAN mode; the own subnet is left to the bridge's connected route.
    #[test]
    fn other_subnets_via_their_node_and_no_blackhole_for_our_own() {
        let st = ClusterState {
            nodes: vec![node("n1", 11), node("n2", 12)],
            networks: vec![Network {
                name: "b".into(),
                driver: Driver::Bridge,
                pool: "net-b".into(),
                subnet: Some("10.10.0.0/16".parse().unwrap()),
                isolation: Default::default(),
                nat_outgoing: true,
                created: 0,
                bridge: None,
                internal: false,
                deny_action: None,
            }],
            blocks: vec![block("10.10.0.0/24", "n1"), block("10.10.1.0/24", "n2")],
            ..Default::default()
        };
        let p = plan(&PlanInput {
            node: "n1",
            state: &st,
            encap: Encap::Vxlan,
            ifindex: &|n: &str| (n == "eth0").then_some(2),
        });
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.routes.len(), 1, "{:#?}", p.routes);
        let r = &p.routes[0];
        assert_eq!(r.dst.to_string(), "10.10.1.0/24");
        assert_eq!(r.kind, RouteKind::Unicast);
        assert_eq!(r.gateway, Some(Ipv4Addr::new(198, 51, 100, 12)));
        assert_eq!(r.oif, Some(2));
    }
}
