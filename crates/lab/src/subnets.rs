//! Underlay subnets of a lab. Every lab has the primary subnet 198.51.100.0/24 on the switch
//! `br0`; `lab up --subnet NODE=CIDR` (or `lab node add NODE --subnet CIDR`) puts nodes on
//! further subnets, each its own L2 segment: a bridge `brK` in the fabric namespace, and an
//! interface `ethK` of the gateway holding the subnet's first address. The gateway routes
//! between the subnets, so nodes on different subnets reach each other only through it, as
//! hosts behind a router do: a route `via <other node> onlink` finds nobody on the link
//! (Calico's reason for CrossSubnet).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use weft_model::lab::{FABRIC_BRIDGE, UNDERLAY_PREFIX};
use weft_model::{paths, ClusterConfig};
use weft_netlink::{Handle, Netns};

use crate::info::LabInfo;
use crate::members::GW_ADDR;

/// First host number of the nodes on a subnet (.11, .12, …).
const FIRST_NODE: u32 = 11;
/// Nodes a subnet holds (.11 to .190; the primary subnet's .200 is `ext`).
const MAX_NODES: usize = 180;

/// The lab's primary underlay subnet, 198.51.100.0/24.
pub fn primary() -> Ipv4Net {
    Ipv4Net::new(GW_ADDR, UNDERLAY_PREFIX)
        .expect("valid prefix")
        .trunc()
}

/// The gateway's address on `subnet`: its first address (198.51.100.1 on the primary).
pub fn gateway(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// Underlay address of the i-th node (0-based) of `subnet`: .11, .12, …
pub fn node_addr_in(subnet: Ipv4Net, i: usize) -> Result<Ipv4Addr> {
    if i >= MAX_NODES {
        bail!("a lab subnet holds at most {MAX_NODES} nodes ({subnet} is full)");
    }
    Ok(Ipv4Addr::from(
        u32::from(subnet.network()) + FIRST_NODE + i as u32,
    ))
}

/// Checks an extra subnet: a network address, /8 to /24, clear of the primary subnet, the
/// lab's "internet", the cluster's pool and service range, and the other extra subnets.
pub fn validate(subnet: Ipv4Net, config: &ClusterConfig, others: &[Ipv4Net]) -> Result<()> {
    if subnet.trunc() != subnet {
        bail!(
            "--subnet {subnet}: host bits are set; write {}",
            subnet.trunc()
        );
    }
    if !(8..=24).contains(&subnet.prefix_len()) {
        bail!("--subnet {subnet}: a lab subnet is /8 to /24 (its nodes are .11, .12, …)");
    }
    let internet = Ipv4Net::new(weft_model::lab::INTERNET_ADDR, 32).expect("valid");
    let taken = [
        (primary(), "the lab's primary subnet"),
        (internet, "the lab's internet address"),
        (config.pool, "the cluster's pool"),
        (config.service_cidr, "the cluster's service range"),
    ];
    for (other, what) in taken
        .iter()
        .copied()
        .chain(others.iter().map(|o| (*o, "another lab subnet")))
    {
        if other != subnet && overlaps(other, subnet) {
            bail!("--subnet {subnet} overlaps {what} {other}; choose another range");
        }
    }
    Ok(())
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Parses `--subnet NODE[,NODE...]=CIDR` arguments into node → subnet.
pub fn parse_assignments(args: &[String]) -> Result<BTreeMap<String, Ipv4Net>> {
    let mut out = BTreeMap::new();
    for a in args {
        let Some((nodes, cidr)) = a.split_once('=') else {
            bail!("--subnet {a}: write NODE[,NODE...]=CIDR, e.g. --subnet b1=198.51.101.0/24");
        };
        let net = weft_model::parse_cidr("--subnet", cidr.trim())?;
        for n in nodes.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if out.insert(n.to_string(), net).is_some() {
                bail!("--subnet: node {n} is given a subnet twice");
            }
        }
    }
    Ok(out)
}

/// The switch of `subnet` and the gateway's interface on it, made when missing; returns the
/// switch's ifindex in the fabric namespace. The primary subnet's switch is `br0`.
pub(crate) fn ensure_segment(
    fabric: &mut Handle,
    lab: &str,
    info: &mut LabInfo,
    subnet: Ipv4Net,
) -> Result<u32> {
    if subnet == primary() {
        return Ok(fabric
            .link_by_name(FABRIC_BRIDGE)?
            .context("the lab's switch bridge is missing; rebuild the lab")?
            .index);
    }
    let k = match info.subnets.iter().position(|s| *s == subnet) {
        Some(i) => i + 1,
        None => {
            info.subnets.push(subnet);
            info.subnets.len()
        }
    };
    let bridge = format!("br{k}");
    if let Some(l) = fabric.link_by_name(&bridge)? {
        return Ok(l.index);
    }
    let br = fabric.create_bridge(&bridge)?.index;
    fabric.set_up(br)?;
    let gw_ns = Netns::named(&paths::lab_netns(lab, "gw"))
        .with_context(|| format!("the gateway of lab {lab} is missing; rebuild the lab"))?;
    let port = format!("gw{k}");
    let iface = format!("eth{k}");
    fabric.create_veth(&port, &iface, Some(&gw_ns))?;
    let p = fabric
        .link_by_name(&port)?
        .context("switch port vanished")?
        .index;
    fabric.set_master(p, Some(br))?;
    fabric.set_up(p)?;
    let mut h = Handle::in_netns(&gw_ns)?;
    let i = h
        .link_by_name(&iface)?
        .with_context(|| format!("{iface} missing on the gateway"))?
        .index;
    h.add_address(
        i,
        Ipv4Net::new(gateway(subnet), subnet.prefix_len()).expect("valid"),
    )?;
    h.set_up(i)?;
    // The gateway now routes between the subnets.
    weft_netlink::sysctls_set(&gw_ns, &[("net/ipv4/ip_forward", "1")])?;
    Ok(br)
}

/// A switch port name no member uses yet: `node0`, `node1`, …
pub(crate) fn free_port(fabric: &mut Handle) -> Result<String> {
    for i in 0.. {
        let name = format!("node{i}");
        if fabric.link_by_name(&name)?.is_none() {
            return Ok(name);
        }
    }
    unreachable!("an unused port name is always found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_gateways_of_a_subnet() {
        let b: Ipv4Net = "198.51.101.0/24".parse().unwrap();
        assert_eq!(gateway(b), Ipv4Addr::new(198, 51, 101, 1));
        assert_eq!(gateway(primary()), GW_ADDR);
        assert_eq!(node_addr_in(b, 0).unwrap(), Ipv4Addr::new(198, 51, 101, 11));
        assert_eq!(node_addr_in(b, 2).unwrap(), Ipv4Addr::new(198, 51, 101, 13));
        assert!(node_addr_in(b, 180).is_err());
    }

    #[test]
    fn subnets_are_checked_against_the_lab_and_the_cluster() {
        let cfg = ClusterConfig::default();
        let ok: Ipv4Net = "198.51.101.0/24".parse().unwrap();
        assert!(validate(ok, &cfg, &[]).is_ok());
        assert!(validate(ok, &cfg, &[ok]).is_ok(), "itself is no conflict");
        for bad in [
            "198.51.100.0/25",
            "198.51.0.0/16",
            "10.244.3.0/24",
            "198.51.101.0/28",
        ] {
            let e = validate(bad.parse().unwrap(), &cfg, &[]);
            assert!(e.is_err(), "{bad} accepted");
        }
        let e = validate("198.51.101.5/24".parse().unwrap(), &cfg, &[]).unwrap_err();
        assert!(e.to_string().contains("198.51.101.0/24"), "{e}");
    }

    #[test]
    fn assignments_parse() {
        let m =
            parse_assignments(&["b1,b2=198.51.101.0/24".into(), "c1=10.9.0.0/24".into()]).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m["b2"].to_string(), "198.51.101.0/24");
        assert!(parse_assignments(&["b1".into()]).is_err());
        assert!(parse_assignments(&["b1=x".into()]).is_err());
        assert!(parse_assignments(&["b1=10.9.0.0/24".into(), "b1=10.8.0.0/24".into()]).is_err());
    }
}
