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
use weft_netlink::{Handle, Link, Netns, Route, VethSpec};

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
pub fn attach(
    node: &mut Handle,
    node_ns: &Netns,
    container_ns: &Netns,
    ep: &Endpoint,
) -> Result<()> {
    // One request makes both ends: host end with its MAC (and MTU), peer `eth0` in the container.
    let mut spec = VethSpec::new(ep.host_iface, CONTAINER_IFACE)
        .mac(HOST_IFACE_MAC)
        .up()
        .peer_ns(container_ns);
    if let Some(mtu) = ep.mtu {
        spec = spec.mtu(mtu);
    }
    let host = node
        .create_veth_with(&spec)
        .with_context(|| format!("create veth {} <-> {CONTAINER_IFACE}", ep.host_iface))?;
    let res = wire(node, node_ns, container_ns, ep, &host);
    if res.is_err() {
        let _ = node.delete_link(host.index);
    }
    res
}

fn wire(
    node: &mut Handle,
    node_ns: &Netns,
    container_ns: &Netns,
    ep: &Endpoint,
    host: &Link,
) -> Result<()> {
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

    // IPv4 only, like Docker on a network without IPv6.
    weft_netlink::sysctls_set(
        container_ns,
        &[
            ("net/ipv6/conf/all/disable_ipv6", "1"),
            ("net/ipv6/conf/default/disable_ipv6", "1"),
        ],
    )
    .context("disable IPv6 in the container")?;
    let mut c =
        Handle::in_netns(container_ns).context("netlink socket in the container's netns")?;
    c.set_up(weft_netlink::LOOPBACK_INDEX)?;
    let eth0 = host
        .link
        .context("the kernel did not report the container end's index")?;
    c.add_address(eth0, Ipv4Net::new(ep.ip, 32).expect("/32 is valid"))?;
    c.set_up(eth0)?;
    c.add_route(
        &Route::new("0.0.0.0/0".parse().expect("constant"))
            .via(WORKLOAD_GATEWAY)
            .dev(eth0)
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
