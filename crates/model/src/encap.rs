//! How packets travel between nodes: the cluster's default ([`Encap`], chosen at `lab up`), a
//! pool's own VXLAN mode ([`VxlanMode`], Calico's IPPool `spec.vxlanMode`), and the [`Tunnel`]
//! an encapsulated packet takes (VXLAN, or IP-in-IP as in Calico's IPIP mode).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The cluster's default way between nodes, for every pool that does not choose its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    /// Plain routes via the other node's address (like BGP-learned routes).
    #[default]
    None,
    /// Calico VXLAN mode, to every other node.
    Vxlan,
    /// VXLAN only to nodes on another subnet; plain routes on the node's own subnet.
    #[serde(alias = "cross-subnet")]
    CrossSubnet,
    /// Calico IPIP mode, to every other node (needs the kernel's ipip module).
    Ipip,
    /// IPIP only to nodes on another subnet.
    #[serde(rename = "ipip-crosssubnet")]
    IpipCrossSubnet,
}

/// The device an encapsulated packet leaves through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tunnel {
    /// `weft.vxlan`: Ethernet in UDP, 50 bytes more per packet.
    Vxlan,
    /// `tunl0`: IPv4 in IPv4 (protocol 4), 20 bytes more per packet.
    Ipip,
}

impl Tunnel {
    /// The node's device of this tunnel.
    pub fn device(self) -> &'static str {
        match self {
            Tunnel::Vxlan => crate::VXLAN_DEVICE,
            Tunnel::Ipip => IPIP_DEVICE,
        }
    }

    /// Bytes the encapsulation adds to each packet.
    pub fn overhead(self) -> u32 {
        match self {
            Tunnel::Vxlan => crate::VXLAN_OVERHEAD,
            Tunnel::Ipip => IPIP_OVERHEAD,
        }
    }
}

/// The IPIP device: the kernel's fallback tunnel (it exists in every namespace once the ipip
/// module is loaded; Calico uses it the same way).
pub const IPIP_DEVICE: &str = "tunl0";
/// Bytes IPIP adds (the outer IPv4 header).
pub const IPIP_OVERHEAD: u32 = 20;

/// The IPAM handle of a node's IPIP tunnel address (Calico's name for it).
pub fn ipip_tunnel_handle(node: &str) -> String {
    format!("ipip-tunnel-addr-{node}")
}

/// The IPAM handles a node itself holds (its VXLAN and IPIP tunnel addresses): never leaks.
pub fn node_handles(node: &str) -> [String; 2] {
    [crate::tunnel_handle(node), ipip_tunnel_handle(node)]
}

/// Calico's IPPool `spec.ipipMode` takes the same three values as `vxlanMode`.
pub type IpipMode = VxlanMode;

impl Encap {
    /// The tunnel this default encapsulates with.
    pub fn tunnel(self) -> Tunnel {
        match self {
            Encap::Ipip | Encap::IpipCrossSubnet => Tunnel::Ipip,
            Encap::None | Encap::Vxlan | Encap::CrossSubnet => Tunnel::Vxlan,
        }
    }

    /// When this default encapsulates, whichever the tunnel.
    fn mode(self) -> VxlanMode {
        match self {
            Encap::None => VxlanMode::Never,
            Encap::Vxlan | Encap::Ipip => VxlanMode::Always,
            Encap::CrossSubnet | Encap::IpipCrossSubnet => VxlanMode::CrossSubnet,
        }
    }

    /// The VXLAN mode this default gives a pool (Never under an IPIP default).
    pub fn vxlan_mode(self) -> VxlanMode {
        match self.tunnel() {
            Tunnel::Vxlan => self.mode(),
            Tunnel::Ipip => VxlanMode::Never,
        }
    }

    /// The IPIP mode this default gives a pool (Never unless the default is IPIP).
    pub fn ipip_mode(self) -> IpipMode {
        match self.tunnel() {
            Tunnel::Ipip => self.mode(),
            Tunnel::Vxlan => VxlanMode::Never,
        }
    }
}

impl std::str::FromStr for Encap {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(Encap::None),
            "vxlan" => Ok(Encap::Vxlan),
            "crosssubnet" | "cross-subnet" | "vxlan-crosssubnet" => Ok(Encap::CrossSubnet),
            "ipip" => Ok(Encap::Ipip),
            "ipip-crosssubnet" | "ipip-cross-subnet" => Ok(Encap::IpipCrossSubnet),
            _ => Err(ValidationError::new(
                format!("encap {s:?}"),
                "use none, vxlan, crosssubnet, ipip or ipip-crosssubnet",
            )),
        }
    }
}

impl std::fmt::Display for Encap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encap::None => "none",
            Encap::Vxlan => "vxlan",
            Encap::CrossSubnet => "crosssubnet",
            Encap::Ipip => "ipip",
            Encap::IpipCrossSubnet => "ipip-crosssubnet",
        })
    }
}

/// A pool's VXLAN mode, in Calico's words (IPPool `spec.vxlanMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VxlanMode {
    /// Never encapsulate: a route via the other node's address, which must be on this node's
    /// link (the same subnet, or a flat L2 underlay).
    Never,
    /// Always encapsulate to other nodes.
    Always,
    /// Encapsulate only towards nodes on another subnet.
    CrossSubnet,
}

impl VxlanMode {
    /// Whether traffic of a pool in this mode may leave a node encapsulated (its workloads then
    /// get the smaller MTU, and the node needs its VXLAN device).
    pub fn may_encapsulate(self) -> bool {
        self != VxlanMode::Never
    }

    /// Whether traffic to a node on the same subnet (`same_subnet`) or not is encapsulated.
    pub fn encapsulates(self, same_subnet: bool) -> bool {
        match self {
            VxlanMode::Never => false,
            VxlanMode::Always => true,
            VxlanMode::CrossSubnet => !same_subnet,
        }
    }
}

impl std::str::FromStr for VxlanMode {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "never" | "none" => Ok(VxlanMode::Never),
            "always" | "vxlan" => Ok(VxlanMode::Always),
            "crosssubnet" | "cross-subnet" => Ok(VxlanMode::CrossSubnet),
            _ => Err(ValidationError::new(
                format!("VXLAN mode {s:?}"),
                "use Never, Always or CrossSubnet",
            )),
        }
    }
}

impl std::fmt::Display for VxlanMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VxlanMode::Never => "Never",
            VxlanMode::Always => "Always",
            VxlanMode::CrossSubnet => "CrossSubnet",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_in_calicos_and_weft_spellings() {
        assert_eq!("crosssubnet".parse::<Encap>().unwrap(), Encap::CrossSubnet);
        assert_eq!("CrossSubnet".parse::<Encap>().unwrap(), Encap::CrossSubnet);
        assert_eq!(
            serde_json::to_string(&Encap::CrossSubnet).unwrap(),
            "\"crosssubnet\""
        );
        assert_eq!("Always".parse::<VxlanMode>().unwrap(), VxlanMode::Always);
        assert_eq!("never".parse::<VxlanMode>().unwrap(), VxlanMode::Never);
        assert!("sometimes".parse::<VxlanMode>().is_err());
        assert_eq!(
            serde_json::to_string(&VxlanMode::CrossSubnet).unwrap(),
            "\"CrossSubnet\""
        );
        assert_eq!(Encap::None.vxlan_mode(), VxlanMode::Never);
        assert_eq!(Encap::Vxlan.vxlan_mode(), VxlanMode::Always);
    }

    #[test]
    fn cross_subnet_encapsulates_only_off_subnet() {
        assert!(!VxlanMode::CrossSubnet.encapsulates(true));
        assert!(VxlanMode::CrossSubnet.encapsulates(false));
        assert!(VxlanMode::Always.encapsulates(true));
        assert!(!VxlanMode::Never.encapsulates(false));
        assert!(!VxlanMode::Never.may_encapsulate());
        assert!(VxlanMode::CrossSubnet.may_encapsulate());
    }

    #[test]
    fn an_ipip_default_gives_pools_ipip_and_no_vxlan() {
        for (s, mode) in [
            ("ipip", VxlanMode::Always),
            ("ipip-crosssubnet", VxlanMode::CrossSubnet),
        ] {
            let e: Encap = s.parse().unwrap();
            assert_eq!(e.to_string(), s);
            assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{s}\""));
            assert_eq!(e.tunnel(), Tunnel::Ipip);
            assert_eq!(e.ipip_mode(), mode);
            assert_eq!(e.vxlan_mode(), VxlanMode::Never);
        }
        assert_eq!(Encap::CrossSubnet.ipip_mode(), VxlanMode::Never);
        assert_eq!(Encap::None.tunnel(), Tunnel::Vxlan);
        assert_eq!(Tunnel::Ipip.device(), "tunl0");
        assert_eq!(Tunnel::Ipip.overhead(), 20);
        assert_eq!(Tunnel::Vxlan.overhead(), 50);
    }
}
