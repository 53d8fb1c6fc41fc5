//! A host of the cluster, and how its record is stored.
//!
//! The record carries the node's underlay address *with its prefix*, like Calico's
//! `spec.bgp.ipv4Address: 198.51.100.11/24`, so that every agent can tell whether another node
//! is on its own subnet (reachable directly) or behind a router (CrossSubnet encapsulates).
//! Records written before the prefix existed hold a bare address; they read as a /24.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Prefix assumed for a node record whose address has none (the lab's 198.51.100.0/24).
pub const DEFAULT_NODE_PREFIX: u8 = 24;

/// A host of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NodeRecord", into = "NodeRecord")]
pub struct Node {
    pub name: String,
    /// Underlay address other nodes reach this node at.
    pub address: Ipv4Addr,
    /// Prefix length of the underlay subnet `address` is on (stored as `address: A.B.C.D/N`).
    pub prefix_len: u8,
    /// Underlay interface carrying `address`.
    pub interface: String,
    pub labels: BTreeMap<String, String>,
    /// VXLAN mode: the node's tunnel address (the first address of its first block).
    pub tunnel_address: Option<Ipv4Addr>,
    /// VXLAN mode: the MAC address of the node's VXLAN device.
    pub vxlan_mac: Option<String>,
}

impl Node {
    /// A node at `address` (on a /24) on the underlay interface `eth0`, without labels or VXLAN
    /// state.
    pub fn new(name: &str, address: Ipv4Addr) -> Node {
        Node::on_subnet(
            name,
            Ipv4Net::new(address, DEFAULT_NODE_PREFIX).expect("valid prefix"),
        )
    }

    /// A node whose underlay address and subnet are `address` (e.g. 198.51.101.11/24).
    pub fn on_subnet(name: &str, address: Ipv4Net) -> Node {
        Node {
            name: name.to_string(),
            address: address.addr(),
            prefix_len: address.prefix_len(),
            interface: default_iface(),
            labels: BTreeMap::new(),
            tunnel_address: None,
            vxlan_mac: None,
        }
    }

    /// The node's address with its prefix, as stored: 198.51.100.11/24.
    pub fn address_with_prefix(&self) -> Ipv4Net {
        Ipv4Net::new(self.address, self.prefix_len).expect("prefix checked on decode")
    }

    /// The node's underlay subnet: 198.51.100.0/24.
    pub fn subnet(&self) -> Ipv4Net {
        self.address_with_prefix().trunc()
    }

    /// Whether `other` is on this node's subnet, so that this node reaches it without a
    /// router (Calico's same-subnet test for CrossSubnet: the peer's address in our prefix).
    pub fn same_subnet(&self, other: &Node) -> bool {
        self.subnet().contains(&other.address)
    }
}

fn default_iface() -> String {
    "eth0".into()
}

/// The stored shape of a node.
#[derive(Serialize, Deserialize)]
struct NodeRecord {
    name: String,
    /// `A.B.C.D/N`, or (older records) `A.B.C.D`, read as a /24.
    address: String,
    #[serde(default = "default_iface")]
    interface: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tunnel_address: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vxlan_mac: Option<String>,
}

impl TryFrom<NodeRecord> for Node {
    type Error = String;
    fn try_from(r: NodeRecord) -> Result<Node, String> {
        let address: Ipv4Net = match r.address.parse::<Ipv4Net>() {
            Ok(net) => net,
            Err(_) => {
                let a: Ipv4Addr = r.address.parse().map_err(|_| {
                    format!(
                        "node {}: address {:?} is neither A.B.C.D/N nor A.B.C.D",
                        r.name, r.address
                    )
                })?;
                Ipv4Net::new(a, DEFAULT_NODE_PREFIX).expect("valid prefix")
            }
        };
        Ok(Node {
            interface: r.interface,
            labels: r.labels,
            tunnel_address: r.tunnel_address,
            vxlan_mac: r.vxlan_mac,
            ..Node::on_subnet(&r.name, address)
        })
    }
}

impl From<Node> for NodeRecord {
    fn from(n: Node) -> NodeRecord {
        NodeRecord {
            address: n.address_with_prefix().to_string(),
            name: n.name,
            interface: n.interface,
            labels: n.labels,
            tunnel_address: n.tunnel_address,
            vxlan_mac: n.vxlan_mac,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_carries_the_prefix_and_old_records_read_as_24() {
        let n = Node::on_subnet("b1", "198.51.101.11/24".parse().unwrap());
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["address"], "198.51.101.11/24");
        assert_eq!(serde_json::from_value::<Node>(json).unwrap(), n);

        let old: Node = serde_json::from_str(r#"{"name":"a1","address":"198.51.100.11"}"#).unwrap();
        assert_eq!(old.address, Ipv4Addr::new(198, 51, 100, 11));
        assert_eq!(old.prefix_len, 24);
        assert_eq!(old.interface, "eth0");

        let bad = serde_json::from_str::<Node>(r#"{"name":"x","address":"nowhere"}"#);
        assert!(bad.unwrap_err().to_string().contains("nowhere"));
    }

    #[test]
    fn same_subnet_is_decided_by_the_local_prefix() {
        let a1 = Node::on_subnet("a1", "198.51.100.11/24".parse().unwrap());
        let a2 = Node::on_subnet("a2", "198.51.100.12/24".parse().unwrap());
        let b1 = Node::on_subnet("b1", "198.51.101.11/24".parse().unwrap());
        assert!(a1.same_subnet(&a2));
        assert!(!a1.same_subnet(&b1));
        assert!(!b1.same_subnet(&a1));
        // A wider prefix on one side: that side sees the other as local.
        let wide = Node::on_subnet("w", "198.51.100.13/23".parse().unwrap());
        assert!(wide.same_subnet(&b1));
        assert_eq!(wide.subnet().to_string(), "198.51.100.0/23");
    }
}
