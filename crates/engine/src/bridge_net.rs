//! Bridge networks in the engine: `network create --driver bridge` and `rm`, a workload's
//! address and wiring on its node's bridge, and published ports (`run -p`).

use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Context, Result};
use ipnet::Ipv4Net;
use weft_dataplane::bridge::{self, BridgeEndpoint};
use weft_dataplane::bridge_ipam;
use weft_ipam::{IpPool, Ipam};
use weft_model::{bridge_handle, default_bridge_name, keys, Driver, Network, PublishedPort};
use weft_netlink::{Handle, Netns};
use weft_store::Store;

use crate::network::{pool_name_of, NetworkOptions};
use crate::{Cluster, NodeRef};

/// Where a bridge network's subnet is taken from when `--subnet` is not given: the first free
/// /16 of 172.17.0.0/16 … 172.31.0.0/16, like Docker's default address pools.
fn default_subnet(pools: &[IpPool], taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    (17..=31)
        .map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid"))
        .find(|c| {
            !pools.iter().any(|p| overlaps(p.cidr, *c)) && !taken.iter().any(|t| overlaps(*t, *c))
        })
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// An interface name the kernel takes, and that is not one of weft's workload prefixes.
fn check_bridge_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if !ok {
        bail!("invalid --bridge {name:?}: use 1-15 characters from [a-zA-Z0-9_.-]");
    }
    if ["cali", "veth"].iter().any(|p| name.starts_with(p)) || name == "eth0" || name == "lo" {
        bail!("invalid --bridge {name:?}: cali*, veth*, eth0 and lo are weft's own interfaces");
    }
    Ok(())
}

/// `network create NAME --driver bridge`: the pool (one /N subnet per node), then the record.
pub(crate) fn create(c: &Cluster, o: &NetworkOptions) -> Result<Network> {
    let store: &dyn Store = c.store.as_ref();
    let ipam = Ipam::new(store);
    let bridge = o
        .bridge
        .clone()
        .unwrap_or_else(|| default_bridge_name(&o.name));
    check_bridge_name(&bridge)?;
    let networks = crate::list_networks(c)?;
    if let Some(other) = networks
        .iter()
        .find(|n| n.driver == Driver::Bridge && n.bridge_name() == bridge)
    {
        bail!(
            "network {}: bridge name {bridge} is already used by network {}; choose another --bridge",
            o.name,
            other.name
        );
    }
    let cfg = c.config()?;
    let nodes = c.nodes()?;
    let pools = ipam.pools()?;
    let subnet = match o.subnet {
        Some(s) => s,
        None => default_subnet(&pools, &[cfg.service_cidr]).with_context(|| {
            format!(
                "network {}: no free /16 left in 172.17.0.0-172.31.255.255; give one with --subnet",
                o.name
            )
        })?,
    };
    if overlaps(subnet, cfg.service_cidr) {
        bail!(
            "network {}: subnet {subnet} overlaps the service range {}; choose another --subnet",
            o.name,
            cfg.service_cidr
        );
    }
    if let Some(n) = nodes.iter().find(|n| subnet.contains(&n.address)) {
        bail!(
            "network {}: subnet {subnet} holds node {}'s address {}; choose another --subnet",
            o.name,
            n.name,
            n.address
        );
    }
    let Some(node_prefix) = bridge_ipam::node_prefix(subnet.prefix_len()) else {
        bail!(
            "network {}: subnet {subnet} is too small to give each node a subnet of its own; \
             use a /26 or larger",
            o.name
        );
    };
    let pool = IpPool {
        name: pool_name_of(&o.name),
        cidr: subnet,
        block_size: node_prefix,
        disabled: false,
        strict_affinity: None,
        vxlan_mode: None,
    };
    // Refuses a subnet that overlaps any pool (another network's, or the cluster's).
    ipam.ensure_pool(&pool)
        .with_context(|| format!("network {}: subnet {subnet}", o.name))?;
    let net = Network {
        name: o.name.clone(),
        driver: Driver::Bridge,
        pool: pool.name.clone(),
        subnet: Some(subnet),
        isolation: o.isolation,
        nat_outgoing: o.nat_outgoing && !o.internal,
        created: weft_model::now(),
        bridge: o.bridge.clone(),
        internal: o.internal,
        deny_action: o.deny_action,
    };
    if let Err(e) = weft_store::create_json(store, &keys::network(&o.name), &net) {
        let _ = ipam.delete_pool(&pool.name);
        return Err(e).with_context(|| format!("create network {}", o.name));
    }
    Ok(net)
}

/// `network rm` of a bridge network (it has no containers): the record, then each node's
/// bridge, subnet and the pool.
pub(crate) fn remove(c: &Cluster, net: &Network) -> Result<()> {
    let store: &dyn Store = c.store.as_ref();
    weft_store::delete(store, &keys::network(&net.name))?;
    let ipam = Ipam::new(store);
    let bridge = net.bridge_name();
    for n in c.nodes()? {
        let name = n.name.clone();
        if let Ok(ns) = c.node_ref(n).netns() {
            let mut h = Handle::in_netns(&ns)?;
            bridge::remove_bridge(&mut h, &bridge)
                .with_context(|| format!("remove bridge {bridge} on node {name}"))?;
        }
        ipam.release(&bridge_handle(&net.name, &name))
            .with_context(|| format!("release the subnet of {} on node {name}", net.name))?;
    }
    ipam.delete_pool(&net.pool)
        .with_context(|| format!("remove pool {} of network {}", net.pool, net.name))?;
    Ok(())
}

/// A bridge workload's address: the node's subnet (claimed on first use), then an address of it.
pub(crate) fn allocate(
    c: &Cluster,
    net: &Network,
    node: &str,
    handle: &str,
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let ipam = Ipam::new(c.store.as_ref());
    let subnet = bridge_ipam::node_subnet(&ipam, net, node)?;
    bridge_ipam::allocate(&ipam, net, &subnet, node, handle, requested)
}

/// Where a bridge workload is wired: its node (netns and netlink handle) and its own netns.
pub(crate) struct Wiring<'a> {
    pub node: &'a NodeRef,
    pub node_ns: &'a Netns,
    pub h: &'a mut Handle,
    pub cns: &'a Netns,
}

/// Wires a workload onto the network's bridge of `node` (made on first use).
pub(crate) fn attach(
    c: &Cluster,
    net: &Network,
    w: Wiring,
    host_iface: &str,
    ip: Ipv4Addr,
    mtu: Option<u32>,
) -> Result<()> {
    let Wiring {
        node,
        node_ns,
        h,
        cns,
    } = w;
    bridge::bypass_netfilter(node_ns)?;
    let ipam = Ipam::new(c.store.as_ref());
    let subnet = bridge_ipam::node_subnet(&ipam, net, &node.node.name)?;
    let name = net.bridge_name();
    let br = bridge::ensure_bridge(
        h,
        &name,
        &subnet,
        bridge::bridge_mac(&net.name, &node.node.name),
    )
    .with_context(|| {
        format!(
            "bridge {name} of network {} on node {}",
            net.name, node.node.name
        )
    })?;
    bridge::attach(
        h,
        cns,
        &BridgeEndpoint {
            host_iface,
            bridge: br.index,
            ip,
            subnet,
            mtu,
        },
    )
}

/// Checks `-p` against the network before anything is made.
pub(crate) fn check_publish(net: &Network, ports: &[PublishedPort], shared: bool) -> Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    if shared {
        bail!("-p cannot be used with --net container:NAME; publish the ports on that container");
    }
    if net.driver != Driver::Bridge {
        bail!(
            "-p publishes ports of bridge networks; network {} uses the {} driver (create one \
             with --driver bridge, or use a NodePort service)",
            net.name,
            net.driver
        );
    }
    if net.internal {
        bail!(
            "network {} is internal: nothing from outside reaches it, so -p cannot publish",
            net.name
        );
    }
    for (i, p) in ports.iter().enumerate() {
        if ports[..i]
            .iter()
            .any(|q| q.proto == p.proto && q.host_port == p.host_port)
        {
            bail!("-p {}/{} is given twice", p.host_port, p.proto);
        }
    }
    Ok(())
}

/// Claims each port on `node` for `workload` (one compare-and-swap create each); on a clash
/// releases what it claimed and says who holds the port.
pub(crate) fn claim_ports(
    c: &Cluster,
    node: &str,
    workload: &str,
    ports: &[PublishedPort],
) -> Result<Vec<PublishedPort>> {
    let store = c.store.as_ref();
    let mut done: Vec<PublishedPort> = vec![];
    for p in ports {
        let p = PublishedPort {
            node: node.to_string(),
            workload: workload.to_string(),
            ..p.clone()
        };
        match weft_store::create_json(store, &p.key(), &p) {
            Ok(_) => done.push(p),
            Err(e) => {
                release(store, &done);
                return Err(match e {
                    weft_store::Error::Conflict(_) => {
                        let owner = weft_store::get_json::<PublishedPort>(store, &p.key())
                            .ok()
                            .flatten()
                            .map(|(o, _)| o.workload)
                            .unwrap_or_else(|| "another container".into());
                        anyhow!(
                            "port {}/{} is already published on node {node} by {owner}; \
                             choose another host port",
                            p.host_port,
                            p.proto
                        )
                    }
                    e => anyhow!(e).context(format!("publish port {}/{}", p.host_port, p.proto)),
                });
            }
        }
    }
    Ok(done)
}

/// Records the container's address in its port records (the agent DNATs to it from then on);
/// returns the store revision of the last write.
pub(crate) fn set_port_address(c: &Cluster, ports: &[PublishedPort], ip: Ipv4Addr) -> Result<i64> {
    let mut rev = 0;
    for p in ports {
        let p = PublishedPort {
            ip: Some(ip),
            ..p.clone()
        };
        rev = weft_store::put_json(c.store.as_ref(), &p.key(), &p)?;
    }
    Ok(rev)
}

fn release(store: &dyn Store, ports: &[PublishedPort]) {
    for p in ports {
        let _ = weft_store::delete(store, &p.key());
    }
}

/// Deletes the port records of `ports`.
pub(crate) fn release_ports(c: &Cluster, ports: &[PublishedPort]) {
    release(c.store.as_ref(), ports)
}

/// The ports `workload` publishes on `node`.
pub(crate) fn ports_of(c: &Cluster, node: &str, workload: &str) -> Result<Vec<PublishedPort>> {
    let mut out: Vec<PublishedPort> = weft_store::list_json::<PublishedPort>(
        c.store.as_ref(),
        &format!("{}{node}/", keys::PORTS),
    )?
    .into_iter()
    .map(|(_, p, _)| p)
    .filter(|p| p.workload == workload)
    .collect();
    out.sort_by_key(|p| (p.host_port, p.proto));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_subnet_skips_taken_ranges() {
        let pools = vec![IpPool::new("a", "172.17.0.0/16".parse().unwrap())];
        let got = default_subnet(&pools, &["172.18.0.0/15".parse().unwrap()]).unwrap();
        assert_eq!(got.to_string(), "172.20.0.0/16");
    }

    #[test]
    fn bridge_names() {
        assert!(check_bridge_name("mydocker").is_ok());
        assert!(check_bridge_name("docker0").is_ok());
        assert!(check_bridge_name("a-name-too-long-x").is_err());
        assert!(check_bridge_name("cali0").is_err());
        assert!(check_bridge_name("a/b").is_err());
    }
}
