//! Routes a node needs, and their reconciliation with the kernel.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use weft_model::{Encap, Tunnel, VxlanMode, ROUTE_PROTO};
use weft_netlink::{Handle, Route, RouteKind};

use crate::ClusterState;

/// What the planner needs besides the store: the node's own kernel facts.
pub struct PlanInput<'a> {
    pub node: &'a str,
    pub state: &'a ClusterState,
    /// The cluster's default way between nodes; a pool's own VXLAN mode wins (see
    /// [`crate::vxlan::encapsulates`]).
    pub encap: Encap,
    /// ifindex of a link by name in the node's netns (underlay, workload interfaces).
    pub ifindex: &'a dyn Fn(&str) -> Option<u32>,
}

/// The routes of one node, all tagged with weft's route protocol in the main table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePlan {
    pub routes: Vec<Route>,
    /// Things the planner could not place (e.g. a remote node without an address), for `doctor`.
    pub warnings: Vec<String>,
}

const MAIN_TABLE: u32 = 254;

/// Computes the node's routes: blackhole per local block, via-node per remote block, /32 per
/// local workload whose host interface exists.
pub fn plan(input: &PlanInput) -> NodePlan {
    let mut out = NodePlan::default();
    let st = input.state;
    let me = st.node(input.node);
    let underlay = me.and_then(|n| (input.ifindex)(&n.interface));
    let bridged = crate::bridge_routes::bridge_pools(st);
    for block in &st.blocks {
        let Some(owner) = block.affinity.as_deref() else {
            continue;
        };
        if bridged.contains(block.pool.as_str()) {
            crate::bridge_routes::block_route(input, block, owner, underlay, &mut out);
            continue;
        }
        if owner == input.node {
            out.routes.push(proto(Route::new(block.cidr).blackhole()));
            continue;
        }
        via_node(input, block.cidr, &block.pool, owner, underlay, &mut out);
    }
    // Borrowed addresses (IPAM gave a full node an address of another node's block): a /32
    // towards the node the workload runs on, on every other node, the block's node included.
    for w in &st.workloads {
        let (Some(ip), false) = (w.ip, w.host_iface.is_empty() || w.node == input.node) else {
            continue;
        };
        let Some(block) = st.blocks.iter().find(|b| b.cidr.contains(&ip)) else {
            continue;
        };
        if block.affinity.as_deref() != Some(w.node.as_str())
            && !bridged.contains(block.pool.as_str())
        {
            let host = Ipv4Net::new(ip, 32).expect("/32 is valid");
            via_node(input, host, &block.pool, &w.node, underlay, &mut out);
        }
    }
    let bridge_nets = crate::bridge_routes::bridge_networks(st);
    for w in st
        .workloads
        .iter()
        .filter(|w| w.node == input.node && !bridge_nets.contains(w.network.as_str()))
    {
        let (Some(ip), false) = (w.ip, w.host_iface.is_empty()) else {
            continue;
        };
        if let Some(dev) = (input.ifindex)(&w.host_iface) {
            out.routes.push(proto(
                Route::new(Ipv4Net::new(ip, 32).expect("/32 is valid"))
                    .dev(dev)
                    .scope_link(),
            ));
        }
    }
    out.routes
        .sort_by_key(|r| (r.dst, r.kind != RouteKind::Blackhole));
    out
}

/// The route to `dst` (a remote block, or a borrowed address, of `pool`) through node `owner`:
/// via its address on the underlay, or through the pool's tunnel (VXLAN: via the peer's tunnel
/// address; IPIP: via its underlay address, which becomes the outer destination), as the
/// pool's mode and the two nodes' subnets decide.
fn via_node(
    input: &PlanInput,
    dst: Ipv4Net,
    pool: &str,
    owner: &str,
    underlay: Option<u32>,
    out: &mut NodePlan,
) {
    let st = input.state;
    let Some(peer) = st.node(owner) else {
        out.warnings
            .push(format!("{dst}: its node {owner} is unknown"));
        return;
    };
    let (tunnel, mode) = crate::vxlan::pool_tunnel(&st.pools, pool, input.encap);
    let me = st.node(input.node);
    // Without our own record, nothing tells the subnets apart: only Always encapsulates.
    let encapsulate = match me {
        Some(me) => crate::vxlan::encapsulates(mode, me, peer),
        None => mode == VxlanMode::Always,
    };
    if !encapsulate {
        if let Some(me) = me.filter(|me| !me.same_subnet(peer)) {
            out.warnings.push(format!(
                "{dst} (pool {pool}, vxlanMode {mode}) is on node {owner} at {}, outside {}'s subnet {}: its route via {} is not on this link and the packets are lost; set the pool's mode to CrossSubnet or Always (weft ipam configure --pool {pool} --vxlan-mode CrossSubnet)",
                peer.address, input.node, me.subnet(), peer.address
            ));
        }
        match underlay {
            Some(dev) => out
                .routes
                .push(proto(Route::new(dst).via(peer.address).dev(dev).onlink())),
            None => out.warnings.push(format!(
                "no underlay interface on {}: cannot route {dst} to {owner}",
                input.node
            )),
        }
        return;
    }
    let Some(dev) = (input.ifindex)(tunnel.device()) else {
        out.warnings.push(format!(
            "{dst} on {owner}: no {} device on {}",
            tunnel.device(),
            input.node
        ));
        return;
    };
    let gateway = match tunnel {
        Tunnel::Ipip => peer.address,
        Tunnel::Vxlan => match peer.tunnel_address {
            Some(tunnel) => tunnel,
            None => {
                out.warnings.push(format!(
                    "{dst} on {owner}: {owner} has no tunnel address yet"
                ));
                return;
            }
        },
    };
    out.routes
        .push(proto(Route::new(dst).via(gateway).dev(dev).onlink()));
}

fn proto(r: Route) -> Route {
    r.proto(ROUTE_PROTO)
}

/// What [`apply`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<Route>,
    pub removed: Vec<Route>,
}

/// Key that decides whether a kernel route already matches a planned one.
fn route_key(r: &Route) -> (Ipv4Net, RouteKind, Option<Ipv4Addr>, Option<u32>) {
    (r.dst, r.kind, r.gateway, r.oif)
}

/// The routes weft owns in the kernel now (main table, weft's protocol). Read this BEFORE the
/// store and the links the plan is made from: a route seen here was then made after its
/// workload's record and interface, so a plan made later never removes it by mistake.
pub fn owned_routes(h: &mut Handle) -> Result<Vec<Route>> {
    Ok(h.routes(MAIN_TABLE)
        .context("list routes")?
        .into_iter()
        .filter(|r| r.protocol == ROUTE_PROTO)
        .collect())
}

/// Makes the kernel's weft-owned routes equal to the plan, given `current` from [`owned_routes`].
/// Every difference is attempted; the first error is returned after the rest were tried.
pub fn apply(h: &mut Handle, current: &[Route], plan: &NodePlan) -> Result<Applied> {
    let want: HashMap<_, &Route> = plan.routes.iter().map(|r| (route_key(r), r)).collect();
    let have: HashMap<_, &Route> = current.iter().map(|r| (route_key(r), r)).collect();
    let mut applied = Applied::default();
    let mut first_err = None;
    for (k, r) in &have {
        if !want.contains_key(k) {
            match h.del_route(r) {
                Ok(()) => applied.removed.push((*r).clone()),
                // Gone already (its device went away): nothing to do.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    first_err.get_or_insert(
                        anyhow::Error::new(e).context(format!("remove stale route {}", r.dst)),
                    );
                }
            }
        }
    }
    for (k, r) in &want {
        if !have.contains_key(k) {
            match h.replace_route(r) {
                Ok(()) => applied.added.push((*r).clone()),
                Err(e) => {
                    first_err.get_or_insert(
                        anyhow::Error::new(e).context(format!("install route {}", r.dst)),
                    );
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(applied),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use weft_ipam::Block;
    use weft_model::{Node, Workload};

    fn node(name: &str, ip: [u8; 4]) -> Node {
        Node::new(name, Ipv4Addr::from(ip))
    }

    fn block(cidr: &str, node: &str) -> Block {
        Block::claimed(cidr.parse().unwrap(), "default-ipv4-ippool", node)
    }

    fn workload(name: &str, node: &str, ip: [u8; 4]) -> Workload {
        Workload {
            name: name.into(),
            id: format!("id-{name}"),
            node: node.into(),
            network: "net1".into(),
            ip: Some(Ipv4Addr::from(ip)),
            host_iface: weft_model::host_iface_name(&format!("id-{name}")),
            labels: BTreeMap::new(),
            image: "toolbox".into(),
            command: vec![],
            net_of: None,
            created: 0,
        }
    }

    fn state() -> ClusterState {
        ClusterState {
            revision: 7,
            nodes: vec![
                node("master", [198, 51, 100, 11]),
                node("slave1", [198, 51, 100, 12]),
            ],
            networks: vec![],
            workloads: vec![
                workload("web1", "master", [10, 244, 0, 1]),
                workload("b-web1", "slave1", [10, 244, 0, 65]),
            ],
            blocks: vec![
                block("10.244.0.0/26", "master"),
                block("10.244.0.64/26", "slave1"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn local_block_is_blackholed_remote_block_routed_via_its_node() {
        let st = state();
        let web1_if = st.workloads[0].host_iface.clone();
        let ifindex = move |n: &str| match n {
            "eth0" => Some(2),
            x if x == web1_if => Some(9),
            _ => None,
        };
        let p = plan(&PlanInput {
            node: "master",
            state: &st,
            encap: Encap::None,
            ifindex: &ifindex,
        });
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.routes.len(), 3, "{:#?}", p.routes);
        let bh = &p.routes[0];
        assert_eq!(bh.dst.to_string(), "10.244.0.0/26");
        assert_eq!(bh.kind, RouteKind::Blackhole);
        let w = &p.routes[1];
        assert_eq!(w.dst.to_string(), "10.244.0.1/32");
        assert_eq!(w.oif, Some(9));
        let remote = &p.routes[2];
        assert_eq!(remote.dst.to_string(), "10.244.0.64/26");
        assert_eq!(remote.gateway, Some(Ipv4Addr::new(198, 51, 100, 12)));
        assert_eq!(remote.oif, Some(2));
        assert!(remote.onlink);
        assert!(p.routes.iter().all(|r| r.protocol == ROUTE_PROTO));
    }

    #[test]
    fn remote_workloads_get_no_host_route_and_missing_ifaces_are_skipped() {
        let st = state();
        let p = plan(&PlanInput {
            node: "slave1",
            state: &st,
            encap: Encap::None,
            ifindex: &|n: &str| (n == "eth0").then_some(3),
        });
        // b-web1's cali interface is not in the kernel yet: no /32 for it.
        assert!(p.routes.iter().all(|r| r.dst.prefix_len() != 32));
        assert_eq!(p.routes.len(), 2);
    }

    #[test]
    fn unknown_owner_is_a_warning_not_a_route() {
        let mut st = state();
        st.blocks.push(block("10.244.1.0/26", "ghost"));
        let p = plan(&PlanInput {
            node: "master",
            state: &st,
            encap: Encap::None,
            ifindex: &|_: &str| Some(2),
        });
        assert!(p.warnings.iter().any(|w| w.contains("ghost")));
        assert!(!p
            .routes
            .iter()
            .any(|r| r.dst.to_string() == "10.244.1.0/26"));
    }

    #[test]
    fn borrowed_address_is_routed_to_its_workloads_node() {
        let mut st = state();
        // slave1 borrowed 10.244.0.2 from master's block.
        st.workloads
            .push(workload("borrower", "slave1", [10, 244, 0, 2]));
        st.nodes.push(node("slave2", [198, 51, 100, 13]));
        let via = |n: &str| {
            let p = plan(&PlanInput {
                node: n,
                state: &st,
                encap: Encap::None,
                ifindex: &|i: &str| (i == "eth0").then_some(2),
            });
            p.routes
                .iter()
                .find(|r| r.dst.to_string() == "10.244.0.2/32")
                .map(|r| r.gateway)
        };
        // On the block's node (which blackholes the block) and on a third node: via slave1.
        let slave1 = Some(Some(Ipv4Addr::new(198, 51, 100, 12)));
        assert_eq!(via("master"), slave1);
        assert_eq!(via("slave2"), slave1);
        // slave1 itself routes it to the workload's interface (none in the kernel here).
        assert_eq!(via("slave1"), None);
    }
}

#[cfg(test)]
#[path = "plan_xsubnet_tests.rs"]
mod xsubnet_tests;
