//! IPv4 interface addresses.

use std::net::IpAddr;

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::Handle;

/// An IPv4 address on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Address {
    /// Interface index.
    pub index: u32,
    /// Address with its prefix length.
    pub addr: Ipv4Net,
}

impl Address {
    /// Decodes an `RTM_NEWADDR` message (IPv4 only).
    pub(crate) fn from_message(m: &AddressMessage) -> Option<Address> {
        if m.header.family != AddressFamily::Inet {
            return None;
        }
        let mut local = None;
        let mut address = None;
        for a in &m.attributes {
            match a {
                AddressAttribute::Local(IpAddr::V4(ip)) => local = Some(*ip),
                AddressAttribute::Address(IpAddr::V4(ip)) => address = Some(*ip),
                _ => {}
            }
        }
        // On point-to-point links IFA_ADDRESS is the peer; IFA_LOCAL is ours.
        let ip = local.or(address)?;
        let addr = Ipv4Net::new(ip, m.header.prefix_len).ok()?;
        Some(Address {
            index: m.header.index,
            addr,
        })
    }
}

/// Builds the message adding or deleting `addr` on link `index`.
pub(crate) fn address_message(index: u32, addr: Ipv4Net) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = AddressFamily::Inet;
    m.header.prefix_len = addr.prefix_len();
    m.header.index = index;
    let ip = IpAddr::V4(addr.addr());
    m.attributes.push(AddressAttribute::Local(ip));
    m.attributes.push(AddressAttribute::Address(ip));
    if addr.prefix_len() < 31 {
        m.attributes
            .push(AddressAttribute::Broadcast(addr.broadcast()));
    }
    m
}

impl Handle {
    /// Adds `addr` to link `index` (`EEXIST` when it is already there).
    pub fn add_address(&mut self, index: u32, addr: Ipv4Net) -> Result<()> {
        let m = address_message(index, addr);
        self.request(
            "add address",
            &format_args!("{addr} to link {index}"),
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Removes `addr` from link `index` (`EADDRNOTAVAIL` when it is not there).
    pub fn del_address(&mut self, index: u32, addr: Ipv4Net) -> Result<()> {
        let m = address_message(index, addr);
        self.request(
            "delete address",
            &format_args!("{addr} from link {index}"),
            RouteNetlinkMessage::DelAddress(m),
            0,
        )?;
        Ok(())
    }

    /// IPv4 addresses of link `index`, or of every link when `None`.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        if self.strict() {
            // Kernel-side filter; only honoured with strict checking.
            m.header.index = index.unwrap_or(0);
        }
        let object = index.map(|i| format!("of link {i}")).unwrap_or_default();
        let replies = self.dump(
            "list addresses",
            &object,
            RouteNetlinkMessage::GetAddress(m),
        )?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewAddress(a) => Address::from_message(a),
                _ => None,
            })
            .filter(|a| index.is_none_or(|i| a.index == i))
            .collect())
    }
}
