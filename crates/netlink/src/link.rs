//! Links: listing, creating (veth, bridge, vxlan), changing and deleting.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoKind, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::link_spec::{vxlan_message, LinkChange, VethSpec};
use crate::mac::mac_from_slice;
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
    ///
    /// Everything but the peer's up state goes into one request; `peer_up` costs a
    /// second one, made through a short-lived handle in `peer_ns` when the peer is
    /// elsewhere (a caller that already holds a handle there had better leave
    /// `peer_up` off and call [`Handle::set_up`] on it). If that fails, the pair is
    /// deleted again.
    pub fn create_veth_with(&mut self, spec: &VethSpec) -> Result<Link> {
        spec.check().map_err(|d| {
            Error::from_errno("create veth", spec.to_string(), libc::EINVAL).with_detail(d)
        })?;
        let link = self.create_link("create veth", spec, &spec.name, spec.message())?;
        if !spec.inet_conf.is_empty() {
            let change = LinkChange::new().inet_conf(&spec.inet_conf);
            if let Err(e) = self.set_link(link.index, &change) {
                let _ = self.delete_link(link.index);
                return Err(e);
            }
        }
        if spec.peer_up {
            if let Err(e) = self.peer_up(spec, &link) {
                let _ = self.delete_link(link.index);
                return Err(e);
            }
        }
        Ok(link)
    }

    /// Brings up the peer of the veth `link` just created from `spec`.
    fn peer_up(&mut self, spec: &VethSpec, link: &Link) -> Result<()> {
        const OP: &str = "set up veth peer";
        let peer = link.link.ok_or_else(|| {
            Error::from_errno(OP, spec.to_string(), libc::ENODEV)
                .with_detail("the kernel did not report the peer's index")
        })?;
        // RTM_SETLINK ignores IFLA_TARGET_NETNSID (it would act on the link with
        // the same index here), so a short-lived handle in the peer's netns is used.
        match spec.peer_ns {
            None => self.set_up(peer),
            Some(ns) => Handle::in_netns(ns)?.set_up(peer),
        }
    }

    /// Creates a bridge (down, like `ip link add NAME type bridge`).
    pub fn create_bridge(&mut self, name: &str) -> Result<Link> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.create_link("create bridge", &name, name, m)
    }

    /// Creates an IPIP device (down) with neither local nor remote address, like
    /// `ip link add NAME type ipip`: it receives IP-in-IP from any node and sends to the
    /// gateway of each route through it. The kernel loads the ipip module if it can;
    /// a kernel without it answers EOPNOTSUPP.
    pub fn create_ipip(&mut self, name: &str) -> Result<Link> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::IpIp,
            )]));
        self.create_link("create ipip", &name, name, m)
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
        change.check().map_err(|d| {
            Error::from_errno("set", LinkRef(index, change).to_string(), libc::EINVAL)
                .with_detail(d)
        })?;
        let m = change.message(index);
        self.request(
            "set",
            &LinkRef(index, change),
            RouteNetlinkMessage::SetLink(m),
            0,
        )?;
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
        m.attributes
            .push(LinkAttribute::NetNsFd(ns.fd().as_raw_fd()));
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
        self.request(
            "delete",
            &LinkRef(index, &""),
            RouteNetlinkMessage::DelLink(m),
            0,
        )?;
        Ok(())
    }
}
