//! Calico's VXLAN mode: one `weft.vxlan` device per node (VNI 4096, UDP 4789) holding the node's
//! tunnel address, routes to remote blocks via the remote tunnel address onlink, and, per remote
//! node, a static neighbour (tunnel address → its device MAC) and an FDB entry (that MAC → the
//! node's underlay address). Nothing is learned: everything comes from the store.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use weft_model::{Node, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI};
use weft_netlink::{parse_mac, Handle, Link};

/// A remote node as the local VXLAN device must know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanPeer {
    pub node: String,
    pub tunnel: Ipv4Addr,
    pub mac: [u8; 6],
    pub underlay: Ipv4Addr,
}

/// The peers of `me`: every other node that has a tunnel address and a VXLAN MAC.
pub fn peers(me: &str, nodes: &[Node]) -> (Vec<VxlanPeer>, Vec<String>) {
    let mut out = vec![];
    let mut warnings = vec![];
    for n in nodes.iter().filter(|n| n.name != me) {
        match (n.tunnel_address, n.vxlan_mac.as_deref().and_then(parse_mac)) {
            (Some(tunnel), Some(mac)) => out.push(VxlanPeer {
                node: n.name.clone(),
                tunnel,
                mac,
                underlay: n.address,
            }),
            _ => warnings.push(format!(
                "node {} has no VXLAN tunnel address yet (its agent sets it up)",
                n.name
            )),
        }
    }
    (out, warnings)
}

/// Makes the node's VXLAN device exist with the node's MAC, tunnel address and MTU, up.
pub fn ensure_device(h: &mut Handle, me: &Node, underlay: &Link) -> Result<Link> {
    let mac = me
        .vxlan_mac
        .as_deref()
        .and_then(parse_mac)
        .with_context(|| format!("node {} has no VXLAN MAC", me.name))?;
    let tunnel = me
        .tunnel_address
        .with_context(|| format!("node {} has no tunnel address", me.name))?;
    let mtu = underlay.mtu.saturating_sub(VXLAN_OVERHEAD);
    let link = match h.link_by_name(VXLAN_DEVICE)? {
        Some(l) => l,
        None => h
            .create_vxlan(
                VXLAN_DEVICE,
                VXLAN_VNI,
                VXLAN_PORT,
                Some(me.address),
                Some(underlay.index),
                false,
            )
            .context("create the VXLAN device")?,
    };
    if link.mac != Some(mac) {
        h.set_mac(link.index, mac)?;
    }
    if link.mtu != mtu {
        h.set_mtu(link.index, mtu)?;
    }
    let want = Ipv4Net::new(tunnel, 32).expect("/32 is valid");
    let addrs = h.addresses(Some(link.index))?;
    for a in &addrs {
        if a.addr != want {
            h.del_address(link.index, a.addr)?;
        }
    }
    if !addrs.iter().any(|a| a.addr == want) {
        h.add_address(link.index, want)?;
    }
    if !link.up {
        h.set_up(link.index)?;
    }
    Ok(h.link_by_index(link.index)?.unwrap_or(link))
}

/// Static neighbour and FDB entries on the device for exactly `peers`.
pub fn apply_peers(h: &mut Handle, dev: u32, peers: &[VxlanPeer]) -> Result<()> {
    for p in peers {
        h.add_neighbour(dev, p.tunnel, p.mac, true)
            .with_context(|| format!("neighbour {} of node {}", p.tunnel, p.node))?;
        h.add_fdb(dev, p.mac, p.underlay)
            .with_context(|| format!("fdb entry of node {}", p.node))?;
    }
    let tunnels: HashSet<Ipv4Addr> = peers.iter().map(|p| p.tunnel).collect();
    for n in h.neighbours(Some(dev))? {
        if !tunnels.contains(&n.ip) {
            h.del_neighbour(dev, n.ip)?;
        }
    }
    let macs: HashSet<[u8; 6]> = peers.iter().map(|p| p.mac).collect();
    for f in h.fdb(Some(dev))? {
        if f.dst.is_some() && !macs.contains(&f.mac) {
            h.del_fdb(dev, f.mac, f.dst)?;
        }
    }
    Ok(())
}

/// MTU for workload interfaces under VXLAN, given the underlay's.
pub fn workload_mtu(underlay_mtu: u32) -> u32 {
    underlay_mtu.saturating_sub(VXLAN_OVERHEAD)
}
