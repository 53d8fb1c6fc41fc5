//! Calico's VXLAN mode: one `weft.vxlan` device per node (VNI 4096, UDP 4789) holding the node's
//! tunnel address, routes to remote blocks via the remote tunnel address onlink, and, per remote
//! node, a static neighbour (tunnel address → its device MAC) and an FDB entry (that MAC → the
//! node's underlay address). Nothing is learned: everything comes from the store.
//!
//! Whether a remote block is reached through the device is decided per block by its pool's
//! VXLAN mode (Calico's IPPool `vxlanMode`; the cluster's `encap` when the pool sets none) and
//! by whether the remote node is on this node's subnet ([`encapsulates`]): the route plan and
//! `weft trace` both ask this one function.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;
use weft_ipam::IpPool;
use weft_model::{
    Encap, Node, Tunnel, VxlanMode, DEFAULT_POOL, VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT,
    VXLAN_VNI,
};
use weft_netlink::{parse_mac, Handle, Link};

/// The VXLAN mode of pool `pool`: its own, or the one the cluster's default `encap` gives (also
/// for a pool not in `pools`).
pub fn pool_mode(pools: &[IpPool], pool: &str, encap: Encap) -> VxlanMode {
    pools
        .iter()
        .find(|p| p.name == pool)
        .map_or(encap.vxlan_mode(), |p| p.vxlan_mode_or(encap))
}

/// Whether `me` sends traffic for a block of a pool in `mode` on node `peer` through its VXLAN
/// device: always for `Always`, never for `Never`, and for `CrossSubnet` when `peer`'s address
/// is outside `me`'s subnet (the node record's address prefix).
pub fn encapsulates(mode: VxlanMode, me: &Node, peer: &Node) -> bool {
    mode.encapsulates(me.same_subnet(peer))
}

/// The tunnel pool `pool`'s encapsulated traffic takes, and when it is encapsulated: VXLAN when
/// its VXLAN mode (its own, or the default's) may encapsulate, else IPIP in the default's IPIP
/// mode when the cluster's default is IPIP (a pool has no IPIP mode of its own yet), else
/// VXLAN Never. The route plan asks this, then [`encapsulates`], for every remote block.
pub fn pool_tunnel(pools: &[IpPool], pool: &str, encap: Encap) -> (Tunnel, VxlanMode) {
    tunnel_of(pools.iter().find(|p| p.name == pool), encap)
}

fn tunnel_of(pool: Option<&IpPool>, encap: Encap) -> (Tunnel, VxlanMode) {
    let vxlan = pool.map_or(encap.vxlan_mode(), |p| p.vxlan_mode_or(encap));
    let ipip = encap.ipip_mode();
    if !vxlan.may_encapsulate() && ipip.may_encapsulate() {
        (Tunnel::Ipip, ipip)
    } else {
        (Tunnel::Vxlan, vxlan)
    }
}

/// Whether some pool's traffic may leave through `tunnel` (before any pool exists, the
/// cluster's default decides): the node then needs that tunnel's device.
pub fn tunnel_needed(pools: &[IpPool], encap: Encap, tunnel: Tunnel) -> bool {
    let uses = |way: (Tunnel, VxlanMode)| way.0 == tunnel && way.1.may_encapsulate();
    if pools.is_empty() {
        return uses(tunnel_of(None, encap));
    }
    pools.iter().any(|p| uses(tunnel_of(Some(p), encap)))
}

/// Whether a node needs its VXLAN device: some pool may encapsulate with VXLAN.
pub fn device_needed(pools: &[IpPool], encap: Encap) -> bool {
    tunnel_needed(pools, encap, Tunnel::Vxlan)
}

/// Whether workloads of pool `pool` may have their traffic encapsulated, by either tunnel
/// (they then get the smaller MTU, [`pool_overhead`]).
pub fn pool_may_encapsulate(pools: &[IpPool], pool: &str, encap: Encap) -> bool {
    pool_overhead(pools, pool, encap).is_some()
}

/// The bytes the tunnel of pool `pool` adds, when its traffic may be encapsulated: the
/// workloads' MTU is the underlay's less this.
pub fn pool_overhead(pools: &[IpPool], pool: &str, encap: Encap) -> Option<u32> {
    let (tunnel, mode) = pool_tunnel(pools, pool, encap);
    mode.may_encapsulate().then(|| tunnel.overhead())
}

/// The pool a node's VXLAN tunnel address comes from (see [`tunnel_pool_for`]).
pub fn tunnel_pool(pools: &[IpPool], encap: Encap) -> String {
    tunnel_pool_for(pools, encap, Tunnel::Vxlan)
}

/// The pool a node's `tunnel` address comes from: the default pool when it may encapsulate
/// through `tunnel`, otherwise the first enabled pool that may (so that replies to the tunnel
/// address travel through the tunnel too), otherwise the default pool.
pub fn tunnel_pool_for(pools: &[IpPool], encap: Encap, tunnel: Tunnel) -> String {
    let uses = |way: (Tunnel, VxlanMode)| way.0 == tunnel && way.1.may_encapsulate();
    if uses(pool_tunnel(pools, DEFAULT_POOL, encap)) {
        return DEFAULT_POOL.to_string();
    }
    let mut candidates: Vec<&IpPool> = pools
        .iter()
        .filter(|p| !p.disabled && uses(tunnel_of(Some(p), encap)))
        .collect();
    candidates.sort_by(|a, b| a.name.cmp(&b.name));
    candidates
        .first()
        .map_or_else(|| DEFAULT_POOL.to_string(), |p| p.name.clone())
}

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
    settle_device(h, link, mtu, tunnel)
}

/// Gives a tunnel device (VXLAN's or IPIP's) its MTU and exactly the /32 `tunnel` as address,
/// and brings it up.
pub(crate) fn settle_device(
    h: &mut Handle,
    link: Link,
    mtu: u32,
    tunnel: Ipv4Addr,
) -> Result<Link> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str, mode: Option<VxlanMode>) -> IpPool {
        IpPool {
            vxlan_mode: mode,
            ..IpPool::new(name, "10.1.0.0/16".parse().unwrap())
        }
    }

    #[test]
    fn the_device_exists_when_any_pool_may_encapsulate() {
        let never = [pool(DEFAULT_POOL, None)];
        assert!(!device_needed(&never, Encap::None));
        assert!(device_needed(&never, Encap::CrossSubnet));
        let one_always = [
            pool(DEFAULT_POOL, None),
            pool("net-x", Some(VxlanMode::Always)),
        ];
        assert!(device_needed(&one_always, Encap::None));
        let all_never = [pool(DEFAULT_POOL, Some(VxlanMode::Never))];
        assert!(!device_needed(&all_never, Encap::Vxlan));
        assert!(device_needed(&[], Encap::Vxlan));
    }

    #[test]
    fn the_tunnel_address_comes_from_a_pool_that_encapsulates() {
        let pools = [
            pool(DEFAULT_POOL, None),
            pool("net-b", Some(VxlanMode::CrossSubnet)),
            pool("net-a", Some(VxlanMode::Always)),
        ];
        assert_eq!(tunnel_pool(&pools, Encap::Vxlan), DEFAULT_POOL);
        assert_eq!(tunnel_pool(&pools, Encap::None), "net-a");
        assert_eq!(tunnel_pool(&pools[..1], Encap::None), DEFAULT_POOL);
        assert!(pool_may_encapsulate(&pools, "net-b", Encap::None));
        assert!(!pool_may_encapsulate(&pools, DEFAULT_POOL, Encap::None));
        assert_eq!(
            pool_mode(&pools, "unknown", Encap::Vxlan),
            VxlanMode::Always
        );
    }

    #[test]
    fn an_ipip_default_uses_tunl0_unless_a_pool_chose_vxlan() {
        let pools = [
            pool(DEFAULT_POOL, None),
            pool("net-v", Some(VxlanMode::Always)),
        ];
        assert_eq!(
            pool_tunnel(&pools, DEFAULT_POOL, Encap::Ipip),
            (Tunnel::Ipip, VxlanMode::Always)
        );
        assert_eq!(
            pool_tunnel(&pools, "net-v", Encap::Ipip),
            (Tunnel::Vxlan, VxlanMode::Always)
        );
        assert!(tunnel_needed(&pools, Encap::Ipip, Tunnel::Ipip));
        assert!(tunnel_needed(&pools, Encap::Ipip, Tunnel::Vxlan));
        assert!(!tunnel_needed(&pools[..1], Encap::Ipip, Tunnel::Vxlan));
        assert!(!tunnel_needed(&pools, Encap::Vxlan, Tunnel::Ipip));
        assert!(tunnel_needed(&[], Encap::IpipCrossSubnet, Tunnel::Ipip));
        // Workloads lose IPIP's 20 bytes, VXLAN's 50, or nothing.
        assert_eq!(pool_overhead(&pools, DEFAULT_POOL, Encap::Ipip), Some(20));
        assert_eq!(pool_overhead(&pools, "net-v", Encap::Ipip), Some(50));
        assert_eq!(pool_overhead(&pools, DEFAULT_POOL, Encap::None), None);
        assert_eq!(
            tunnel_pool_for(&pools, Encap::Ipip, Tunnel::Ipip),
            DEFAULT_POOL
        );
        assert_eq!(tunnel_pool_for(&pools, Encap::Ipip, Tunnel::Vxlan), "net-v");
    }
}
