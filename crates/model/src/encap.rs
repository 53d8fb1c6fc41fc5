//! How packets travel between nodes: the cluster's default ([`Encap`], chosen at `lab up`) and
//! a pool's own VXLAN mode ([`VxlanMode`], Calico's IPPool `spec.vxlanMode`).

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
}

impl Encap {
    /// The VXLAN mode this default gives a pool.
    pub fn vxlan_mode(self) -> VxlanMode {
        match self {
            Encap::None => VxlanMode::Never,
            Encap::Vxlan => VxlanMode::Always,
            Encap::CrossSubnet => VxlanMode::CrossSubnet,
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
            "ipip" => Err(ValidationError::new(
                "encap ipip",
                "this build supports none, vxlan and crosssubnet; IPIP needs the ipip kernel module",
            )),
            _ => Err(ValidationError::new(
                format!("encap {s:?}"),
                "use none, vxlan or crosssubnet",
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
}
