//! Descriptions of links to create or change, and the messages they make.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::AddressFamily;

use crate::mac::format_mac;
use crate::netns::Netns;
#[cfg(doc)]
use crate::Handle;

/// What to create with [`Handle::create_veth_with`]: everything here goes into one
/// `RTM_NEWLINK` request.
#[derive(Clone, Debug, Default)]
pub struct VethSpec<'a> {
    /// Name of the end created in the handle's namespace.
    pub name: String,
    /// Its MAC (random when `None`).
    pub mac: Option<[u8; 6]>,
    /// MTU of both ends (kernel default when `None`).
    pub mtu: Option<u32>,
    /// Bring this end up.
    pub up: bool,
    /// Name of the peer end.
    pub peer_name: String,
    /// Namespace the peer is created in (the handle's own when `None`).
    pub peer_ns: Option<&'a Netns>,
    /// The peer's MAC (random when `None`).
    pub peer_mac: Option<[u8; 6]>,
    /// Bring the peer end up.
    pub peer_up: bool,
}

impl<'a> VethSpec<'a> {
    /// A pair `name` / `peer`, both down, in the handle's namespace.
    pub fn new(name: &str, peer: &str) -> VethSpec<'a> {
        VethSpec {
            name: name.to_string(),
            peer_name: peer.to_string(),
            ..VethSpec::default()
        }
    }

    /// Sets this end's MAC.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Sets the MTU of both ends.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Brings this end up.
    pub fn up(mut self) -> Self {
        self.up = true;
        self
    }

    /// Creates the peer inside `ns`.
    pub fn peer_ns(mut self, ns: &'a Netns) -> Self {
        self.peer_ns = Some(ns);
        self
    }

    /// Sets the peer's MAC.
    pub fn peer_mac(mut self, mac: [u8; 6]) -> Self {
        self.peer_mac = Some(mac);
        self
    }

    /// Brings the peer up.
    pub fn peer_up(mut self) -> Self {
        self.peer_up = true;
        self
    }

    /// Builds the `RTM_NEWLINK` message.
    pub(crate) fn message(&self) -> LinkMessage {
        // The peer cannot be brought up in the creating request: the kernel
        // configures it before the pair is linked, and veth_open fails with
        // ENOTCONN. `peer_up` is applied by a second request.
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(self.peer_name.clone()));
        if let Some(m) = self.peer_mac {
            peer.attributes.push(LinkAttribute::Address(m.to_vec()));
        }
        if let Some(mtu) = self.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(ns) = self.peer_ns {
            peer.attributes
                .push(LinkAttribute::NetNsFd(ns.fd().as_raw_fd()));
        }
        let mut change = LinkChange::new();
        change.up = self.up.then_some(true);
        change.mac = self.mac;
        change.mtu = self.mtu;
        let mut m = change.message(0);
        m.attributes
            .insert(0, LinkAttribute::IfName(self.name.clone()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        m
    }
}

impl fmt::Display for VethSpec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (peer {}", self.name, self.peer_name)?;
        if let Some(ns) = self.peer_ns {
            write!(f, " in {ns}")?;
        }
        write!(f, ")")
    }
}

/// Several link settings applied in one `RTM_SETLINK` request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkChange {
    /// `Some(true)` sets `IFF_UP`, `Some(false)` clears it.
    pub up: Option<bool>,
    /// New MAC.
    pub mac: Option<[u8; 6]>,
    /// New MTU.
    pub mtu: Option<u32>,
    /// `Some(Some(i))` enslaves to `i`, `Some(None)` releases.
    pub master: Option<Option<u32>>,
    /// New name.
    pub name: Option<String>,
}

impl LinkChange {
    /// No change.
    pub fn new() -> LinkChange {
        LinkChange::default()
    }

    /// Sets or clears `IFF_UP`.
    pub fn up(mut self, up: bool) -> Self {
        self.up = Some(up);
        self
    }

    /// Sets the MAC.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Sets (or with `None` removes) the master device.
    pub fn master(mut self, master: Option<u32>) -> Self {
        self.master = Some(master);
        self
    }

    /// Renames the link (it must be down).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Builds the message for link `index`.
    pub(crate) fn message(&self, index: u32) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if let Some(up) = self.up {
            m.header.change_mask = LinkFlags::Up;
            if up {
                m.header.flags = LinkFlags::Up;
            }
        }
        if let Some(n) = &self.name {
            m.attributes.push(LinkAttribute::IfName(n.clone()));
        }
        if let Some(mac) = self.mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = self.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(master) = self.master {
            m.attributes
                .push(LinkAttribute::Controller(master.unwrap_or(0)));
        }
        m
    }
}

impl fmt::Display for LinkChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match self.up {
            Some(true) => parts.push("up".to_string()),
            Some(false) => parts.push("down".to_string()),
            None => {}
        }
        if let Some(m) = &self.mac {
            parts.push(format!("address {}", format_mac(m)));
        }
        if let Some(m) = self.mtu {
            parts.push(format!("mtu {m}"));
        }
        match self.master {
            Some(Some(m)) => parts.push(format!("master {m}")),
            Some(None) => parts.push("nomaster".to_string()),
            None => {}
        }
        if let Some(n) = &self.name {
            parts.push(format!("name {n}"));
        }
        write!(f, "{}", parts.join(" "))
    }
}

/// Builds the `RTM_NEWLINK` message of a VXLAN device.
pub(crate) fn vxlan_message(
    name: &str,
    vni: u32,
    port: u16,
    local: Option<Ipv4Addr>,
    dev: Option<u32>,
    learning: bool,
) -> LinkMessage {
    let mut data = vec![InfoVxlan::Id(vni), InfoVxlan::Port(port)];
    if let Some(l) = local {
        data.push(InfoVxlan::Local(l));
    }
    if let Some(d) = dev {
        data.push(InfoVxlan::Link(d));
    }
    data.push(InfoVxlan::Learning(learning));
    let mut m = LinkMessage::default();
    m.header.interface_family = AddressFamily::Unspec;
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(data)),
    ]));
    m
}
