//! The fixed shape of a lab's underlay (DESIGN.md, "Lab"), shared by the lab builder and by
//! whatever reads a lab (trace, doctor).

use std::net::Ipv4Addr;

/// The nodes' default gateway on the underlay (member `gw`).
pub const GW_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The outside client (member `ext`).
pub const EXT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 200);
/// "The internet", owned by the gateway on its loopback.
pub const INTERNET_ADDR: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Underlay prefix length (198.51.100.0/24).
pub const UNDERLAY_PREFIX: u8 = 24;
/// Members every lab has besides its nodes.
pub const FIXED_MEMBERS: [&str; 3] = ["gw", "ext", "fabric"];
/// Name of the switch (bridge) in the fabric namespace.
pub const FABRIC_BRIDGE: &str = "br0";
