//! Wiring of bridge networks (Docker's docker0, seed 002's `mydocker`), done synchronously when
//! a workload starts, like the CNI bridge plugin's ADD:
//!
//! - per network and node a Linux bridge holding the gateway address (the first address of the
//!   node's subnet) with a stable MAC of its own, forwarding on, no IPv6;
//! - per workload a veth pair: the host end (`veth` + 11 hex) enslaved to the bridge, `eth0` in
//!   the container with an address of the node's subnet and `default via GATEWAY`; both ends keep
//!   real (random) MACs, and the container resolves its gateway and neighbours by plain ARP.
//!
//! Routes to the other nodes' subnets (host-gw) come from the node's [`crate::plan`]; masquerade,
//! isolation and published ports from [`crate::rules`]. The subnets themselves are claimed in
//! [`crate::bridge_ipam`].

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};
use weft_netlink::{
    Batch, Handle, Link, LinkChange, Netns, Route, VethSpec, IPV4_DEVCONF_FORWARDING,
};

use crate::endpoint::{with_veth, CONTAINER_IFACE};

/// A node's subnet of a bridge network and its gateway (the subnet's first address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeSubnet {
    pub cidr: Ipv4Net,
    pub gateway: Ipv4Addr,
}

impl BridgeSubnet {
    /// The subnet `cidr` (a block of the network's pool) with its gateway.
    pub fn of(cidr: Ipv4Net) -> BridgeSubnet {
        let cidr = cidr.trunc();
        BridgeSubnet {
            cidr,
            gateway: Ipv4Addr::from(u32::from(cidr.network()) + 1),
        }
    }

    /// The gateway with the subnet's prefix, as the bridge holds it.
    pub fn gateway_net(&self) -> Ipv4Net {
        Ipv4Net::new(self.gateway, self.cidr.prefix_len()).expect("prefix of a valid net")
    }

    /// Addresses no workload may take: network, gateway, broadcast.
    pub fn reserved(&self, ip: Ipv4Addr) -> bool {
        ip == self.cidr.network() || ip == self.gateway || ip == self.cidr.broadcast()
    }
}

/// A stable, locally administered MAC for the bridge of `network` on `node`, so containers'
/// ARP entries for the gateway stay valid while ports come and go (a bridge would otherwise
/// take the lowest MAC of its ports).
pub fn bridge_mac(network: &str, node: &str) -> [u8; 6] {
    let d = Sha256::digest(format!("weft-bridge-{network}-{node}").as_bytes());
    [0x02, 0x42, d[0], d[1], d[2], d[3]]
}

/// Makes sure the bridge `name` exists, is up and holds the subnet's gateway. A link of that
/// name that is not a bridge, or a bridge holding another IPv4 address, is a clash: refused,
/// and left alone.
pub fn ensure_bridge(
    h: &mut Handle,
    name: &str,
    subnet: &BridgeSubnet,
    mac: [u8; 6],
) -> Result<Link> {
    let want = subnet.gateway_net();
    let link = match h.link_by_name(name)? {
        Some(l) => l,
        None => match h.create_bridge(name) {
            Ok(l) => {
                let setup = Batch::new().set_link(
                    l.index,
                    &LinkChange::new()
                        .mac(mac)
                        .no_ipv6_addr_gen()
                        .inet_conf(&[(IPV4_DEVCONF_FORWARDING, 1)]),
                );
                if let Err(e) = h.run_batch(&setup) {
                    let _ = h.delete_link(l.index);
                    return Err(e).with_context(|| format!("set up bridge {name}"));
                }
                l
            }
            // Made at the same moment by another `run` on this node.
            Err(e) if e.is_exists() => h
                .link_by_name(name)?
                .with_context(|| format!("bridge {name} vanished while being made"))?,
            Err(e) => return Err(e).with_context(|| format!("create bridge {name}")),
        },
    };
    if link.kind.as_deref() != Some("bridge") {
        bail!(
            "interface {name} exists and is not a bridge (kind {}); the network's bridge name \
             clashes with it: remove it or create the network with another --bridge name",
            link.kind.as_deref().unwrap_or("none")
        );
    }
    let addrs = h.addresses(Some(link.index))?;
    if let Some(other) = addrs.iter().find(|a| a.addr != want) {
        bail!(
            "bridge {name} already holds {}, not this network's gateway {want}: another network \
             or a hand-made bridge uses that name; remove it or choose another --bridge name",
            other.addr
        );
    }
    if addrs.is_empty() {
        match h.add_address(link.index, want) {
            Ok(()) => {}
            Err(e) if e.is_exists() => {}
            Err(e) => return Err(e).with_context(|| format!("add {want} to bridge {name}")),
        }
    }
    if !link.up {
        h.set_up(link.index)
            .with_context(|| format!("bring bridge {name} up"))?;
    }
    Ok(link)
}

/// Keys of br_netfilter (present when the module is loaded; per netns since Linux 5.3).
const BR_NETFILTER: [&str; 3] = [
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
];

/// Frames switched inside a bridge skip the IP hooks in the node's netns even when the
/// br_netfilter module is loaded on the machine, so the dataplane is the same everywhere:
/// hairpin traffic is routed (and masqueraded by the table) rather than bridged after a DNAT
/// at bridge level, which cannot send a frame back out of the port it came in.
pub fn bypass_netfilter(node_ns: &Netns) -> Result<()> {
    let on: Vec<(&str, &str)> = BR_NETFILTER
        .iter()
        .filter(|k| weft_netlink::sysctl_get(node_ns, k).is_ok_and(|v| v != "0"))
        .map(|k| (*k, "0"))
        .collect();
    if !on.is_empty() {
        weft_netlink::sysctls_set(node_ns, &on)
            .context("turn br_netfilter off in the node's namespace")?;
    }
    Ok(())
}

/// Deletes the bridge `name` if it exists (its ports and connected route go with it).
pub fn remove_bridge(h: &mut Handle, name: &str) -> Result<()> {
    if let Some(l) = h.link_by_name(name)? {
        if l.kind.as_deref() != Some("bridge") {
            return Ok(());
        }
        match h.delete_link(l.index) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e).with_context(|| format!("delete bridge {name}")),
        }
    }
    Ok(())
}

/// What to wire for one workload of a bridge network.
#[derive(Clone, Debug)]
pub struct BridgeEndpoint<'a> {
    /// Host end name (`veth…`).
    pub host_iface: &'a str,
    /// The bridge's ifindex.
    pub bridge: u32,
    pub ip: Ipv4Addr,
    pub subnet: BridgeSubnet,
    pub mtu: Option<u32>,
}

/// Wires `ep`: veth, host end on the bridge, container address and default route. On error
/// nothing is left behind.
pub fn attach(node: &mut Handle, container_ns: &Netns, ep: &BridgeEndpoint) -> Result<()> {
    let mut spec = VethSpec::new(ep.host_iface, CONTAINER_IFACE).peer_ns(container_ns);
    if let Some(mtu) = ep.mtu {
        spec = spec.mtu(mtu);
    }
    with_veth(node, &spec, ep.host_iface, |node, host| {
        wire(node, container_ns, ep, host)
    })
}

fn wire(node: &mut Handle, container_ns: &Netns, ep: &BridgeEndpoint, host: &Link) -> Result<()> {
    let node_side = Batch::new()
        .set_link(
            host.index,
            &LinkChange::new().master(Some(ep.bridge)).no_ipv6_addr_gen(),
        )
        .set_up(host.index);
    node.run_batch(&node_side)
        .with_context(|| format!("enslave {} to its bridge and bring it up", ep.host_iface))?;
    let eth0 = host
        .link
        .context("the kernel did not report the container end's index")?;
    let addr = Ipv4Net::new(ep.ip, ep.subnet.cidr.prefix_len()).expect("valid prefix");
    let container_side = Batch::new()
        .set_up(weft_netlink::LOOPBACK_INDEX)
        .set_link(eth0, &LinkChange::new().no_ipv6_addr_gen())
        .add_address(eth0, addr)
        .set_up(eth0)
        .add_route(
            &Route::new("0.0.0.0/0".parse().expect("constant"))
                .via(ep.subnet.gateway)
                .dev(eth0),
        );
    let mut c =
        Handle::in_netns(container_ns).context("netlink socket in the container's netns")?;
    c.run_batch(&container_side).with_context(|| {
        format!(
            "lo up, eth0 {addr} up, default via {} in the container",
            ep.subnet.gateway
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_is_the_first_address() {
        let s = BridgeSubnet::of("10.10.1.0/24".parse().unwrap());
        assert_eq!(s.gateway, Ipv4Addr::new(10, 10, 1, 1));
        assert_eq!(s.gateway_net().to_string(), "10.10.1.1/24");
        assert!(s.reserved(Ipv4Addr::new(10, 10, 1, 0)));
        assert!(s.reserved(Ipv4Addr::new(10, 10, 1, 255)));
        assert!(!s.reserved(Ipv4Addr::new(10, 10, 1, 2)));
    }

    #[test]
    fn bridge_macs_are_stable_unicast_and_local() {
        let m = bridge_mac("net1", "n1");
        assert_eq!(m, bridge_mac("net1", "n1"));
        assert_ne!(m, bridge_mac("net1", "n2"));
        assert_eq!(m[0] & 0x03, 0x02, "locally administered unicast");
    }

    /// Named test namespaces, deleted on drop (also on panic).
    struct TestNs(Vec<String>);

    impl Drop for TestNs {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = Netns::delete_named(n);
            }
        }
    }

    fn is_root() -> bool {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
    }

    /// Root only: the bridge holds the gateway, the port is enslaved, the container has its
    /// address and default route; a clash is refused and left alone.
    #[test]
    fn bridge_and_port_wiring() {
        if !is_root() {
            eprintln!("skipping bridge_and_port_wiring: needs root");
            return;
        }
        let pid = std::process::id();
        let guard = TestNs(vec![
            format!("weft-t{pid}-brnode"),
            format!("weft-t{pid}-brctr"),
        ]);
        let node_ns = Netns::create_named(&guard.0[0]).unwrap_or_else(|e| panic!("{e}"));
        let ctr_ns = Netns::create_named(&guard.0[1]).unwrap_or_else(|e| panic!("{e}"));
        let mut h = Handle::in_netns(&node_ns).unwrap_or_else(|e| panic!("{e}"));
        let subnet = BridgeSubnet::of("10.10.3.0/24".parse().unwrap());
        let mac = bridge_mac("n", "x");
        let br =
            ensure_bridge(&mut h, "wbr-test", &subnet, mac).unwrap_or_else(|e| panic!("{e:#}"));
        // Idempotent.
        ensure_bridge(&mut h, "wbr-test", &subnet, mac).unwrap_or_else(|e| panic!("{e:#}"));
        let ep = BridgeEndpoint {
            host_iface: "vethtest0000001",
            bridge: br.index,
            ip: Ipv4Addr::new(10, 10, 3, 2),
            subnet,
            mtu: None,
        };
        attach(&mut h, &ctr_ns, &ep).unwrap_or_else(|e| panic!("{e:#}"));
        let port = h.link_by_name(ep.host_iface).unwrap().expect("port");
        assert_eq!(port.master, Some(br.index));
        let br = h.link_by_name("wbr-test").unwrap().expect("bridge");
        assert_eq!(br.mac, Some(mac));
        let mut c = Handle::in_netns(&ctr_ns).unwrap_or_else(|e| panic!("{e}"));
        let eth0 = c.link_by_name(CONTAINER_IFACE).unwrap().expect("eth0");
        let addrs = c.addresses(Some(eth0.index)).unwrap();
        assert_eq!(addrs[0].addr.to_string(), "10.10.3.2/24");
        // Another subnet on the same bridge name: a clash.
        let other = BridgeSubnet::of("10.10.4.0/24".parse().unwrap());
        let e = ensure_bridge(&mut h, "wbr-test", &other, mac).unwrap_err();
        assert!(
            format!("{e:#}").contains("already holds 10.10.3.1/24"),
            "{e:#}"
        );
        // A non-bridge of that name: a clash too.
        let e = ensure_bridge(&mut h, ep.host_iface, &other, mac).unwrap_err();
        assert!(format!("{e:#}").contains("not a bridge"), "{e:#}");
        remove_bridge(&mut h, "wbr-test").unwrap();
        assert!(h.link_by_name("wbr-test").unwrap().is_none());
    }
}
