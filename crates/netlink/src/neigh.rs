//! ARP neighbours and bridge/VXLAN forwarding database (fdb) entries.

use std::net::Ipv4Addr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::neighbour_table::{
    NeighbourTableAttribute, NeighbourTableMessage, NeighbourTableParameter,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::mac::{format_mac, mac_from_slice};
use crate::Handle;

/// `NUD_REACHABLE`.
pub const NUD_REACHABLE: u16 = 0x02;
/// `NUD_STALE`.
pub const NUD_STALE: u16 = 0x04;
/// `NUD_NOARP`.
pub const NUD_NOARP: u16 = 0x40;
/// `NUD_PERMANENT`.
pub const NUD_PERMANENT: u16 = 0x80;

/// An IPv4 neighbour (ARP) entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// Interface index.
    pub index: u32,
    /// Neighbour address.
    pub ip: Ipv4Addr,
    /// Its MAC, when resolved.
    pub mac: Option<[u8; 6]>,
    /// `NUD_*` state bits.
    pub state: u16,
}

/// A forwarding database entry (`bridge fdb`), e.g. a VXLAN remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FdbEntry {
    /// Interface index (the VXLAN device or bridge port).
    pub index: u32,
    /// The MAC it forwards for.
    pub mac: [u8; 6],
    /// Remote tunnel endpoint (VXLAN `NDA_DST`).
    pub dst: Option<Ipv4Addr>,
    /// `NUD_*` state bits.
    pub state: u16,
}

/// Builds the neighbour message for `ip` on link `index`.
pub(crate) fn neighbour_message(
    index: u32,
    ip: Ipv4Addr,
    mac: Option<[u8; 6]>,
    state: u16,
) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.ifindex = index;
    m.header.state = NeighbourState::from(state);
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
    if let Some(mac) = mac {
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    }
    m
}

/// Builds the fdb message (`bridge fdb ... self permanent dst DST`).
pub(crate) fn fdb_message(index: u32, mac: [u8; 6], dst: Option<Ipv4Addr>) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    if let Some(dst) = dst {
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(dst)));
    }
    m
}

fn dump_request(family: AddressFamily, index: Option<u32>, strict: bool) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family;
    if let Some(i) = index {
        if strict {
            m.attributes.push(NeighbourAttribute::IfIndex(i));
        } else {
            m.header.ifindex = i;
        }
    }
    m
}

/// Builds the `RTM_SETNEIGHTBL` message setting the ARP proxy delay of link `index`.
pub(crate) fn proxy_delay_message(index: u32, ms: u64) -> NeighbourTableMessage {
    let mut m = NeighbourTableMessage::default();
    m.header.family = AddressFamily::Inet;
    m.attributes
        .push(NeighbourTableAttribute::Name("arp_cache".to_string()));
    m.attributes.push(NeighbourTableAttribute::Parms(vec![
        NeighbourTableParameter::Ifindex(index),
        NeighbourTableParameter::ProxyDelay(ms),
    ]));
    m
}

impl Handle {
    /// Sets the ARP proxy delay of link `index` to `ms` milliseconds, like writing
    /// `net/ipv4/neigh/<link>/proxy_delay` (in jiffies there, shown rounded), by one
    /// `RTM_SETNEIGHTBL` request on the `arp_cache` table.
    pub fn set_neigh_proxy_delay(&mut self, index: u32, ms: u64) -> Result<()> {
        self.request(
            "set ARP proxy_delay",
            &format_args!("{ms} ms on link {index}"),
            RouteNetlinkMessage::SetNeighbourTable(proxy_delay_message(index, ms)),
            0,
        )?;
        Ok(())
    }

    /// Adds or replaces the ARP entry `ip` → `mac` on link `index`, permanent or
    /// reachable.
    pub fn add_neighbour(
        &mut self,
        index: u32,
        ip: Ipv4Addr,
        mac: [u8; 6],
        permanent: bool,
    ) -> Result<()> {
        let state = if permanent {
            NUD_PERMANENT
        } else {
            NUD_REACHABLE
        };
        let m = neighbour_message(index, ip, Some(mac), state);
        self.request(
            "add neighbour",
            &format_args!("{ip} lladdr {} on link {index}", format_mac(&mac)),
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// Deletes the ARP entry for `ip` on link `index` (`ENOENT` when absent).
    pub fn del_neighbour(&mut self, index: u32, ip: Ipv4Addr) -> Result<()> {
        let m = neighbour_message(index, ip, None, 0);
        self.request(
            "delete neighbour",
            &format_args!("{ip} on link {index}"),
            RouteNetlinkMessage::DelNeighbour(m),
            0,
        )?;
        Ok(())
    }

    /// IPv4 neighbours of link `index`, or of all links when `None`.
    pub fn neighbours(&mut self, index: Option<u32>) -> Result<Vec<Neighbour>> {
        let m = dump_request(AddressFamily::Inet, index, self.strict());
        let object = index.map(|i| format!("of link {i}")).unwrap_or_default();
        let replies = self.dump(
            "list neighbours",
            &object,
            RouteNetlinkMessage::GetNeighbour(m),
        )?;
        let mut out = Vec::new();
        for r in &replies {
            let RouteNetlinkMessage::NewNeighbour(n) = r else {
                continue;
            };
            if n.header.family != AddressFamily::Inet
                || index.is_some_and(|i| i != n.header.ifindex)
            {
                continue;
            }
            let mut ip = None;
            let mut mac = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => ip = Some(*v),
                    NeighbourAttribute::LinkLayerAddress(b) => mac = mac_from_slice(b),
                    _ => {}
                }
            }
            if let Some(ip) = ip {
                out.push(Neighbour {
                    index: n.header.ifindex,
                    ip,
                    mac,
                    state: u16::from(n.header.state),
                });
            }
        }
        Ok(out)
    }

    /// Adds or replaces the fdb entry `mac` → remote `dst` on VXLAN device `index`
    /// (`bridge fdb replace MAC dev DEV dst DST self permanent`).
    pub fn add_fdb(&mut self, index: u32, mac: [u8; 6], dst: Ipv4Addr) -> Result<()> {
        let m = fdb_message(index, mac, Some(dst));
        self.request(
            "add fdb entry",
            &format_args!("{} dst {dst} on link {index}", format_mac(&mac)),
            RouteNetlinkMessage::NewNeighbour(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// Deletes the fdb entry for `mac` on link `index` (`dst` selects one remote
    /// of a VXLAN entry; `None` removes the entry).
    pub fn del_fdb(&mut self, index: u32, mac: [u8; 6], dst: Option<Ipv4Addr>) -> Result<()> {
        let m = fdb_message(index, mac, dst);
        self.request(
            "delete fdb entry",
            &format_args!("{} on link {index}", format_mac(&mac)),
            RouteNetlinkMessage::DelNeighbour(m),
            0,
        )?;
        Ok(())
    }

    /// Fdb entries of link `index`, or of all links when `None`.
    pub fn fdb(&mut self, index: Option<u32>) -> Result<Vec<FdbEntry>> {
        let m = dump_request(AddressFamily::Bridge, index, self.strict());
        let object = index.map(|i| format!("of link {i}")).unwrap_or_default();
        let replies = self.dump("list fdb", &object, RouteNetlinkMessage::GetNeighbour(m))?;
        let mut out = Vec::new();
        for r in &replies {
            let RouteNetlinkMessage::NewNeighbour(n) = r else {
                continue;
            };
            if n.header.family != AddressFamily::Bridge
                || index.is_some_and(|i| i != n.header.ifindex)
            {
                continue;
            }
            let mut mac = None;
            let mut dst = None;
            for a in &n.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(b) => mac = mac_from_slice(b),
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v)) => dst = Some(*v),
                    NeighbourAttribute::Destination(NeighbourAddress::Other(b)) => {
                        if let Ok(o) = <[u8; 4]>::try_from(b.as_slice()) {
                            dst = Some(Ipv4Addr::from(o));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(mac) = mac {
                out.push(FdbEntry {
                    index: n.header.ifindex,
                    mac,
                    dst,
                    state: u16::from(n.header.state),
                });
            }
        }
        Ok(out)
    }
}
