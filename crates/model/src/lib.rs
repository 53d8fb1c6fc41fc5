//! weft's resources: what users declare and what the store holds, with their validation.
//!
//! Every resource is plain data (serde); the key it lives under in the store comes from [`keys`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod encap;
pub mod keys;
pub mod lab;
mod node;
pub mod paths;
pub mod policy;
mod ports;
pub mod selector;
mod validate;

pub use encap::{
    ipip_tunnel_handle, node_handles, Encap, IpipMode, Tunnel, VxlanMode, IPIP_DEVICE,
    IPIP_OVERHEAD,
};
pub use node::{Node, DEFAULT_NODE_PREFIX};
pub use ports::{PortProto, PublishedPort};
pub use validate::{parse_cidr, parse_label, validate_lab_name, validate_name, ValidationError};

/// The gateway address every routed workload uses (answered by proxy ARP on the host end).
pub const WORKLOAD_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// MAC address of every host-side workload interface (Calico's convention).
pub const HOST_IFACE_MAC: [u8; 6] = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
/// Route protocol number tagging the routes weft owns (shown by `ip route` as `proto 80`).
pub const ROUTE_PROTO: u8 = 80;
/// Name of the default IP pool.
pub const DEFAULT_POOL: &str = "default-ipv4-ippool";

/// What a node's agent last did, written by the agent after each reconcile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub node: String,
    /// Store revision the node's kernel state was last computed from.
    pub revision: i64,
    /// Unix seconds of that reconcile.
    pub time: u64,
    /// The agent's process id.
    pub pid: u32,
    /// Set when the last reconcile failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Name of each node's VXLAN device.
pub const VXLAN_DEVICE: &str = "weft.vxlan";
/// Calico's VXLAN network identifier.
pub const VXLAN_VNI: u32 = 4096;
/// The IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;
/// Bytes VXLAN adds (outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// The IPAM handle of a node's tunnel address.
pub fn tunnel_handle(node: &str) -> String {
    format!("vxlan-tunnel-addr-{node}")
}

/// A stable, locally administered MAC for a node's VXLAN device.
pub fn vxlan_mac_for(node: &str) -> [u8; 6] {
    let d = Sha256::digest(format!("weft-vxlan-{node}").as_bytes());
    [0x66, d[0], d[1], d[2], d[3], d[4]]
}

/// Cluster-wide settings chosen at `lab up` (or by the first node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub pool: Ipv4Net,
    pub block_size: u8,
    pub service_cidr: Ipv4Net,
    pub encap: Encap,
    /// What a policy's Deny (and a profile's or tier's default deny) does to a packet.
    #[serde(default)]
    pub deny_action: DenyAction,
}

/// Drop silently (the sender times out) or reject (ICMP admin-prohibited at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DenyAction {
    #[default]
    Drop,
    Reject,
}

impl std::str::FromStr for DenyAction {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "drop" => Ok(DenyAction::Drop),
            "reject" => Ok(DenyAction::Reject),
            _ => Err(ValidationError::new(
                format!("deny action {s:?}"),
                "use drop or reject",
            )),
        }
    }
}

impl std::fmt::Display for DenyAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DenyAction::Drop => "drop",
            DenyAction::Reject => "reject",
        })
    }
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            pool: "10.244.0.0/16".parse().expect("constant CIDR"),
            block_size: 26,
            service_cidr: "10.96.0.0/12".parse().expect("constant CIDR"),
            encap: Encap::None,
            deny_action: DenyAction::Drop,
        }
    }
}

/// Network driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// Calico-style: veth per workload, /32 routes, proxy-ARP gateway.
    #[default]
    Routed,
    /// Docker-style bridge per network per node.
    Bridge,
}

impl std::str::FromStr for Driver {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "routed" | "calico" => Ok(Driver::Routed),
            "bridge" => Ok(Driver::Bridge),
            _ => Err(ValidationError::new(
                format!("driver {s:?}"),
                "use routed or bridge",
            )),
        }
    }
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Driver::Routed => "routed",
            Driver::Bridge => "bridge",
        })
    }
}

/// Who may reach a network's workloads by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Ingress only from the same network (and the local host): Docker + Calico's profile.
    #[default]
    Network,
    /// Open (Kubernetes default).
    None,
}

impl std::str::FromStr for Isolation {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "network" => Ok(Isolation::Network),
            "none" => Ok(Isolation::None),
            _ => Err(ValidationError::new(
                format!("isolation {s:?}"),
                "use network or none",
            )),
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Network => "network",
            Isolation::None => "none",
        })
    }
}

/// A network: an address pool plus a profile.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    #[serde(default)]
    pub driver: Driver,
    /// The IP pool its workloads take addresses from.
    pub pool: String,
    /// The network's own subnet when it has a dedicated pool.
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    #[serde(default)]
    pub isolation: Isolation,
    /// Masquerade traffic from its workloads to destinations outside the cluster (Calico's
    /// natOutgoing).
    #[serde(default = "yes")]
    pub nat_outgoing: bool,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// Bridge driver: the name of the network's bridge on every node (see [`Network::bridge_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// Bridge driver: nothing leaves the network (no masquerade, no published ports, no traffic
    /// to or from outside its subnet), like Docker's `--internal`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// What isolation between networks does to a packet; the cluster's deny action when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_action: Option<DenyAction>,
}

impl Network {
    /// A routed network on `pool` with the defaults `weft network create` gives: isolated,
    /// natOutgoing on.
    pub fn new(name: &str, pool: &str) -> Network {
        Network {
            name: name.to_string(),
            driver: Driver::default(),
            pool: pool.to_string(),
            subnet: None,
            isolation: Isolation::default(),
            nat_outgoing: true,
            created: 0,
            bridge: None,
            internal: false,
            deny_action: None,
        }
    }

    /// Bridge driver: the bridge's name on each node, `wbr-` + 10 hex chars of a hash of the
    /// network's name unless the network names its own.
    pub fn bridge_name(&self) -> String {
        self.bridge
            .clone()
            .unwrap_or_else(|| default_bridge_name(&self.name))
    }
}

/// `wbr-` + 10 hex chars of a hash of the network's name (14 chars, within IFNAMSIZ).
pub fn default_bridge_name(network: &str) -> String {
    format!(
        "wbr-{}",
        &hex_digest(&format!("weft-bridge-{network}"))[..10]
    )
}

/// Host end of a bridge workload's veth: `veth` + 11 hex chars of a hash of its id.
pub fn bridge_port_name(workload_id: &str) -> String {
    format!("veth{}", &hex_digest(workload_id)[..11])
}

/// The IPAM handle holding a bridge network's gateway (and the subnet's network and broadcast
/// addresses) on `node`: `<network>.bridge-<node>`.
pub fn bridge_handle(network: &str, node: &str) -> String {
    format!("{network}.bridge-{node}")
}

fn hex_digest(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn yes() -> bool {
    true
}

/// A container as the cluster knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    /// 64 hex chars, like a Docker container id.
    pub id: String,
    pub node: String,
    pub network: String,
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// Host end of the veth (`cali…`); empty when the workload joins another one's netns.
    #[serde(default)]
    pub host_iface: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    /// `container:NAME` sharing: the workload whose network namespace this one joins.
    #[serde(default)]
    pub net_of: Option<String>,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
}

impl Workload {
    /// The IPAM handle of this workload: `<network>.<container-id>`.
    pub fn ipam_handle(&self) -> String {
        ipam_handle(&self.network, &self.id)
    }
}

/// The IPAM handle for a workload: `<network>.<container-id>`.
pub fn ipam_handle(network: &str, id: &str) -> String {
    format!("{network}.{id}")
}

/// Name of the host end of a workload's veth: `cali` + 11 hex chars of a hash of its id.
pub fn host_iface_name(workload_id: &str) -> String {
    let digest = Sha256::digest(workload_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

/// A fresh 64-hex-char container id.
pub fn new_id(seed: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(now.as_nanos().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_iface_is_cali_plus_11_hex() {
        let n = host_iface_name("abc");
        assert!(n.starts_with("cali"));
        assert_eq!(n.len(), 15, "fits IFNAMSIZ");
        assert!(n[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(n, host_iface_name("abd"));
        assert_eq!(n, host_iface_name("abc"));
    }

    #[test]
    fn ids_are_unique_hex() {
        let a = new_id("x");
        let b = new_id("x");
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn enums_parse_and_reject() {
        assert_eq!("vxlan".parse::<Encap>().unwrap(), Encap::Vxlan);
        assert_eq!("ipip".parse::<Encap>().unwrap(), Encap::Ipip);
        assert!("gre"
            .parse::<Encap>()
            .unwrap_err()
            .to_string()
            .contains("ipip"));
        assert_eq!("bridge".parse::<Driver>().unwrap(), Driver::Bridge);
        assert!("none".parse::<Isolation>().is_ok());
        assert!("foo".parse::<Isolation>().is_err());
    }

    #[test]
    fn bridge_names_fit_ifnamsiz() {
        let b = default_bridge_name("a-rather-long-network-name");
        assert!(b.starts_with("wbr-") && b.len() <= 15, "{b}");
        assert_ne!(b, default_bridge_name("other"));
        let p = bridge_port_name("abc");
        assert!(p.starts_with("veth") && p.len() == 15, "{p}");
        assert!(!p.starts_with("cali"));
    }
}
