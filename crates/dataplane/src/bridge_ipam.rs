//! Addresses of bridge networks, on the IPAM of [`weft_ipam`]: a bridge network's pool is cut
//! into one subnet per node (an IPAM block affine to the node). A node claims its subnet by
//! allocating the subnet's gateway address to the handle `<network>.bridge-<node>` (one
//! compare-and-swap transaction that creates the block; a node that loses the race for a block
//! moves on to the next), then reserves the subnet's network and broadcast addresses under the
//! same handle. Workloads get addresses of their node's subnet only, so a node never spills
//! into a second block that would have no gateway.

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use weft_ipam::{Error as IpamError, Ipam};
use weft_model::{bridge_handle, Network};

use crate::bridge::BridgeSubnet;

/// Tries before giving up on a contended pool.
const TRIES: usize = 64;

/// The node's subnet of `net`, claiming one when the node has none yet.
pub fn node_subnet(ipam: &Ipam, net: &Network, node: &str) -> Result<BridgeSubnet> {
    let pool = ipam
        .pool(&net.pool)
        .with_context(|| format!("pool {} of network {}", net.pool, net.name))?;
    let handle = bridge_handle(&net.name, node);
    for _ in 0..TRIES {
        let blocks: Vec<_> = ipam
            .blocks()?
            .into_iter()
            .filter(|b| b.pool == pool.name)
            .collect();
        if let Some(mine) = blocks
            .iter()
            .filter(|b| b.affinity.as_deref() == Some(node))
            .min_by_key(|b| b.cidr.network())
        {
            let s = BridgeSubnet::of(mine.cidr);
            // A claim interrupted before its gateway was recorded is finished here.
            if mine
                .ordinal(s.gateway)
                .and_then(|o| mine.allocations.get(&o))
                != Some(&handle)
            {
                claim(ipam, &pool.name, &handle, node, &s)?;
            }
            return Ok(s);
        }
        let free = pool
            .cidr
            .subnets(pool.block_size)
            .with_context(|| format!("cut {} into /{}", pool.cidr, pool.block_size))?
            .find(|c| !blocks.iter().any(|b| b.cidr.contains(&c.network())));
        let Some(cidr) = free else {
            bail!(
                "network {}: no free /{} subnet left in {} for node {node}; every node with a \
                 container on it holds one (create the network with a larger --subnet)",
                net.name,
                pool.block_size,
                pool.cidr
            );
        };
        let s = BridgeSubnet::of(cidr);
        match claim(ipam, &pool.name, &handle, node, &s) {
            Ok(()) => return Ok(s),
            // Another node took this block first: look again.
            Err(e) if lost_race(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    bail!(
        "network {}: could not claim a subnet for node {node} after {TRIES} tries (too many \
         nodes claiming at once?)",
        net.name
    )
}

fn lost_race(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<IpamError>(),
        Some(IpamError::AddressNotHere { .. } | IpamError::AddressInUse { .. })
    )
}

/// Gateway first (it creates the block), then the network and broadcast addresses.
fn claim(ipam: &Ipam, pool: &str, handle: &str, node: &str, s: &BridgeSubnet) -> Result<()> {
    ipam.allocate(handle, node, pool, Some(s.gateway))?;
    for ip in [s.cidr.network(), s.cidr.broadcast()] {
        match ipam.allocate(handle, node, pool, Some(ip)) {
            Ok(_) => {}
            // The pool's own network address is reserved by IPAM already.
            Err(IpamError::AddressReserved { .. }) => {}
            // Already ours.
            Err(IpamError::AddressInUse { handle: h, .. }) if h == handle => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Allocates an address of the node's subnet to `handle`: `requested` if given (it must be in
/// the subnet and not reserved), otherwise the lowest free one.
pub fn allocate(
    ipam: &Ipam,
    net: &Network,
    subnet: &BridgeSubnet,
    node: &str,
    handle: &str,
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    if let Some(ip) = requested {
        if !subnet.cidr.contains(&ip) || subnet.reserved(ip) {
            bail!(
                "address {ip} is not available on node {node}: network {}'s subnet there is {} \
                 (gateway {}); pick a host address of it, or omit --ip",
                net.name,
                subnet.cidr,
                subnet.gateway
            );
        }
        return Ok(ipam.allocate(handle, node, &net.pool, Some(ip))?);
    }
    for _ in 0..TRIES {
        let block = ipam
            .blocks_of(node)?
            .into_iter()
            .find(|b| b.cidr == subnet.cidr)
            .with_context(|| format!("subnet {} of node {node} vanished", subnet.cidr))?;
        let free = (0..block.size() as u32).map(|o| block.addr(o)).find(|ip| {
            !subnet.reserved(*ip)
                && block
                    .ordinal(*ip)
                    .is_some_and(|o| !block.allocations.contains_key(&o))
        });
        let Some(ip) = free else {
            bail!(
                "network {}: node {node}'s subnet {} is full; remove containers or create the \
                 network with a larger --subnet",
                net.name,
                subnet.cidr
            );
        };
        match ipam.allocate(handle, node, &net.pool, Some(ip)) {
            Ok(ip) => return Ok(ip),
            Err(IpamError::AddressInUse { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!(
        "network {}: could not allocate an address on node {node}",
        net.name
    )
}

/// Prefix length of the per-node subnets of a bridge network whose CIDR has prefix `p`:
/// a /24 per node (like flannel) from a /22 or larger, otherwise a quarter of the CIDR.
pub fn node_prefix(p: u8) -> Option<u8> {
    (p <= 26).then(|| (p + 2).max(24))
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_ipam::IpPool;
    use weft_store::MemStore;

    fn net(store: &MemStore) -> Network {
        let pool = IpPool {
            name: "net-b".into(),
            cidr: "10.10.0.0/16".parse().unwrap(),
            block_size: 24,
            disabled: false,
            strict_affinity: None,
            vxlan_mode: None,
        };
        Ipam::new(store).ensure_pool(&pool).unwrap();
        Network {
            driver: weft_model::Driver::Bridge,
            subnet: Some(pool.cidr),
            ..Network::new("b", &pool.name)
        }
    }

    #[test]
    fn one_subnet_per_node_with_gateway_and_reserved_addresses() {
        let store = MemStore::new();
        let ipam = Ipam::new(&store);
        let n = net(&store);
        let a = node_subnet(&ipam, &n, "n1").unwrap();
        let b = node_subnet(&ipam, &n, "n2").unwrap();
        assert_eq!(a.cidr.to_string(), "10.10.0.0/24");
        assert_eq!(b.cidr.to_string(), "10.10.1.0/24");
        assert_eq!(node_subnet(&ipam, &n, "n1").unwrap(), a, "stable");
        let ip = allocate(&ipam, &n, &a, "n1", "b.c1", None).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 10, 0, 2));
        let ip = allocate(&ipam, &n, &b, "n2", "b.c2", None).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 10, 1, 2));
        let h = ipam.handle(&bridge_handle("b", "n2")).unwrap().unwrap();
        assert!(h.addresses.contains(&Ipv4Addr::new(10, 10, 1, 1)));
        assert!(h.addresses.contains(&Ipv4Addr::new(10, 10, 1, 0)));
        assert!(h.addresses.contains(&Ipv4Addr::new(10, 10, 1, 255)));
        // --ip outside the node's subnet, or the gateway: refused.
        assert!(allocate(
            &ipam,
            &n,
            &a,
            "n1",
            "b.c3",
            Some(Ipv4Addr::new(10, 10, 1, 9))
        )
        .is_err());
        assert!(allocate(&ipam, &n, &a, "n1", "b.c3", Some(a.gateway)).is_err());
        assert_eq!(
            allocate(
                &ipam,
                &n,
                &a,
                "n1",
                "b.c3",
                Some(Ipv4Addr::new(10, 10, 0, 9))
            )
            .unwrap(),
            Ipv4Addr::new(10, 10, 0, 9)
        );
    }

    #[test]
    fn node_subnet_sizes() {
        assert_eq!(node_prefix(16), Some(24));
        assert_eq!(node_prefix(22), Some(24));
        assert_eq!(node_prefix(24), Some(26));
        assert_eq!(node_prefix(26), Some(28));
        assert_eq!(node_prefix(27), None);
    }
}
