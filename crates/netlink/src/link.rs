//! Links: listing, creating (veth, bridge, vxlan), changing and deleting.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVxlan, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::mac::{format_mac, mac_from_slice};
use crate::netns::Netns;
use crate::Handle;

/// A network interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_INFO_KIND` (`"veth"`, `"bridge"`, `"vxlan"`, ...); `None` for plain devices.
    pub kind: Option<String>,
    /// Hardware address, when it is an Ethernet-sized one.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up (`IFF_RUNNING`: up and carrier, or state unknown like `lo`).
    pub oper_up: bool,
    /// Index of the master device (bridge), if enslaved.
    pub master: Option<u32>,
    /// `IFLA_LINK` (iflink): for a veth, the peer's index (in the peer's netns).
    pub link: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the netns id (as seen from here) where `link` lives.
    pub link_netnsid: Option<i32>,
}

impl Link {
    /// Decodes an `RTM_NEWLINK` message.
    pub(crate) fn from_message(m: &LinkMessage) -> Link {
        let mut l = Link {
            index: m.header.index,
            name: String::new(),
            kind: None,
            mac: None,
            mtu: 0,
            up: m.header.flags.contains(LinkFlags::Up),
            oper_up: m.header.flags.contains(LinkFlags::Running),
            master: None,
            link: None,
            link_netnsid: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => l.name = n.clone(),
                LinkAttribute::Address(b) => l.mac = mac_from_slice(b),
                LinkAttribute::Mtu(v) => l.mtu = *v,
                LinkAttribute::Controller(v) if *v != 0 => l.master = Some(*v),
                LinkAttribute::Link(v) if *v != 0 => l.link = Some(*v),
                LinkAttribute::LinkNetNsId(v) => l.link_netnsid = Some(*v),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        l
    }
}

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
        let mut peer = LinkMessage::default();
        if self.peer_up {
            peer.header.flags = LinkFlags::Up;
            peer.header.change_mask = LinkFlags::Up;
        }
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
        m.attributes.insert(0, LinkAttribute::IfName(self.name.clone()));
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

/// Error object for an index-addressed link.
struct LinkRef<'a>(u32, &'a dyn fmt::Display);

impl fmt::Display for LinkRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra = self.1.to_string();
        if extra.is_empty() {
            write!(f, "link {}", self.0)
        } else {
            write!(f, "link {} ({extra})", self.0)
        }
    }
}

fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

impl Handle {
    /// All links of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let mut m = LinkMessage::default();
        m.attributes.push(skip_stats());
        let replies = self.dump("list links", &"", RouteNetlinkMessage::GetLink(m))?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })
            .collect())
    }

    /// The link called `name`, if any.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(skip_stats());
        self.get_link("get link", &name, m)
    }

    /// The link with interface index `index`, if any.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(skip_stats());
        self.get_link("get link", &LinkRef(index, &""), m)
    }

    fn get_link(
        &mut self,
        op: &str,
        object: &dyn fmt::Display,
        m: LinkMessage,
    ) -> Result<Option<Link>> {
        match self.request(op, object, RouteNetlinkMessage::GetLink(m), 0) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
                _ => None,
            })),
            Err(e) if matches!(e.errno(), Some(libc::ENODEV)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a veth pair `name` / `peer`; the peer is created directly inside
    /// `peer_ns` when given. Returns the new local end (its `link` is the peer's index).
    pub fn create_veth(&mut self, name: &str, peer: &str, peer_ns: Option<&Netns>) -> Result<Link> {
        let mut spec = VethSpec::new(name, peer);
        spec.peer_ns = peer_ns;
        self.create_veth_with(&spec)
    }

    /// Creates a veth pair with names, MACs, MTU, peer namespace and up state all set
    /// in one request. Returns the new local end (its `link` is the peer's index).
    pub fn create_veth_with(&mut self, spec: &VethSpec) -> Result<Link> {
        self.create_link("create veth", spec, &spec.name, spec.message())
    }

    /// Creates a bridge (down, like `ip link add NAME type bridge`).
    pub fn create_bridge(&mut self, name: &str) -> Result<Link> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
        self.create_link("create bridge", &name, name, m)
    }

    /// Creates a VXLAN device (down) with VNI `vni` on UDP port `port`, optional
    /// local address and underlay device, and MAC learning on or off.
    pub fn create_vxlan(
        &mut self,
        name: &str,
        vni: u32,
        port: u16,
        local: Option<Ipv4Addr>,
        dev: Option<u32>,
        learning: bool,
    ) -> Result<Link> {
        let m = vxlan_message(name, vni, port, local, dev, learning);
        self.create_link("create vxlan", &format_args!("{name} (vni {vni})"), name, m)
    }

    fn create_link(
        &mut self,
        op: &str,
        object: &dyn fmt::Display,
        name: &str,
        m: LinkMessage,
    ) -> Result<Link> {
        let replies = self.request(
            op,
            object,
            RouteNetlinkMessage::NewLink(m),
            NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
        )?;
        let echoed = replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(l) => {
                let l = Link::from_message(l);
                (l.name == name).then_some(l)
            }
            _ => None,
        });
        if let Some(l) = echoed {
            return Ok(l);
        }
        // Kernels before 6.3 do not echo RTM_NEWLINK: look it up.
        self.link_by_name(name)?.ok_or_else(|| {
            Error::from_errno(op, object.to_string(), libc::ENODEV)
                .with_detail("created but not found afterwards")
        })
    }

    /// Applies several settings to link `index` in one request.
    pub fn set_link(&mut self, index: u32, change: &LinkChange) -> Result<()> {
        let m = change.message(index);
        self.request("set", &LinkRef(index, change), RouteNetlinkMessage::SetLink(m), 0)?;
        Ok(())
    }

    /// Sets `IFF_UP`.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_link(index, &LinkChange::new().up(true))
    }

    /// Clears `IFF_UP`.
    pub fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_link(index, &LinkChange::new().up(false))
    }

    /// Sets the hardware address.
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.set_link(index, &LinkChange::new().mac(mac))
    }

    /// Sets the MTU.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_link(index, &LinkChange::new().mtu(mtu))
    }

    /// Enslaves the link to `master` (a bridge), or releases it with `None`.
    pub fn set_master(&mut self, index: u32, master: Option<u32>) -> Result<()> {
        self.set_link(index, &LinkChange::new().master(master))
    }

    /// Renames the link (it must be down).
    pub fn set_name(&mut self, index: u32, name: &str) -> Result<()> {
        self.set_link(index, &LinkChange::new().name(name))
    }

    /// Moves the link into namespace `ns` (it keeps its name, goes down, and loses
    /// its addresses and routes).
    pub fn move_to_netns(&mut self, index: u32, ns: &Netns) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::NetNsFd(ns.fd().as_raw_fd()));
        self.request(
            "move",
            &format_args!("link {index} to {ns}"),
            RouteNetlinkMessage::SetLink(m),
            0,
        )?;
        Ok(())
    }

    /// Deletes the link (for a veth, both ends go).
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request("delete", &LinkRef(index, &""), RouteNetlinkMessage::DelLink(m), 0)?;
        Ok(())
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
