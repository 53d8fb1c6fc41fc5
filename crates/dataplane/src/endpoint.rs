//! Wiring of one routed workload (Calico style), done synchronously when it starts, like a CNI ADD:
//!
//! - a veth pair: `caliXXXXXXXXXXX` on the node, `eth0` in the container;
//! - container: `IP/32` on `eth0`, `default via 169.254.1.1 dev eth0 onlink`, `lo` up;
//! - node: host end with MAC ee:ee:ee:ee:ee:ee, proxy ARP on, proxy delay 0, forwarding on,
//!   and `IP/32 dev caliX scope link`.
//!
//! Any failure undoes what was made, so a failed attach leaves no link behind.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use weft_model::{HOST_IFACE_MAC, ROUTE_PROTO, WORKLOAD_GATEWAY};
use weft_netlink::{Handle, Netns, Route};

/// What to wire.
#[derive(Clone, Debug)]
pub struct Endpoint<'a> {
    /// Host end name (`cali…`).
    pub host_iface: &'a str,
    pub ip: Ipv4Addr,
    /// MTU of both ends (None: kernel default).
    pub mtu: Option<u32>,
}

/// Name of the interface inside the container.
pub const CONTAINER_IFACE: &str = "eth0";

/// Wires `ep` between the node's netns and the container's. On error nothing is left behind.
pub fn attach(node: &mut Handle, node_ns: &Netns, container_ns: &Netns, ep: &Endpoint) -> Result<()> {
    node.create_veth(ep.host_iface, CONTAINER_IFACE, Some(container_ns))
        .with_context(|| format!("create veth {} <-> {CONTAINER_IFACE}", ep.host_iface))?;
    let res = wire(node, node_ns, container_ns, ep);
    if res.is_err() {
        if let Ok(Some(link)) = node.link_by_name(ep.host_iface) {
            let _ = node.delete_link(link.index);
        }
    }
    res
}

fn wire(node: &mut Handle, node_ns: &Netns, container_ns: &Netns, ep: &Endpoint) -> Result<()> {
    let host = node
        .link_by_name(ep.host_iface)?
        .with_context(|| format!("veth {} vanished after creation", ep.host_iface))?;
    node.set_mac(host.index, HOST_IFACE_MAC)?;
    if let Some(mtu) = ep.mtu {
        node.set_mtu(host.index, mtu)?;
    }
    let iface = ep.host_iface;
    weft_netlink::sysctls_set(
        node_ns,
        &[
            (&format!("net/ipv4/conf/{iface}/proxy_arp"), "1"),
            (&format!("net/ipv4/neigh/{iface}/proxy_delay"), "0"),
            (&format!("net/ipv4/conf/{iface}/forwarding"), "1"),
        ],
    )
    .with_context(|| format!("sysctls of {iface}"))?;
    node.set_up(host.index)?;

    let mut c = Handle::in_netns(container_ns).context("netlink socket in the container's netns")?;
    if let Some(lo) = c.link_by_name("lo")? {
        c.set_up(lo.index)?;
    }
    let eth0 = c
        .link_by_name(CONTAINER_IFACE)?
        .context("eth0 missing in the container after veth creation")?;
    if let Some(mtu) = ep.mtu {
        c.set_mtu(eth0.index, mtu)?;
    }
    c.add_address(eth0.index, Ipv4Net::new(ep.ip, 32).expect("/32 is valid"))?;
    c.set_up(eth0.index)?;
    c.add_route(
        &Route::new("0.0.0.0/0".parse().expect("constant"))
            .via(WORKLOAD_GATEWAY)
            .dev(eth0.index)
            .onlink(),
    )
    .context("default route via 169.254.1.1 in the container")?;

    node.replace_route(
        &Route::new(Ipv4Net::new(ep.ip, 32).expect("/32 is valid"))
            .dev(host.index)
            .scope_link()
            .proto(ROUTE_PROTO),
    )
    .with_context(|| format!("route {}/32 dev {iface}", ep.ip))?;
    Ok(())
}

/// Removes the workload's host end (its peer and the /32 route go with it). Absent is fine.
pub fn detach(node: &mut Handle, host_iface: &str) -> Result<()> {
    if let Some(link) = node.link_by_name(host_iface)? {
        match node.delete_link(link.index) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e).with_context(|| format!("delete {host_iface}")),
        }
    }
    Ok(())
}
