//! Descriptions of links to create or change, and the messages they make.

use std::fmt;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use netlink_packet_core::DefaultNla;
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoVeth, InfoVxlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
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
    /// IPv4 per-device settings of this end, `(IPV4_DEVCONF_* index, value)`
    /// (`IFLA_AF_SPEC` / `AF_INET` / `IFLA_INET_CONF`). The kernel refuses `IFLA_AF_SPEC`
    /// in `RTM_NEWLINK` (`EAFNOSUPPORT`), so they are set by one `RTM_SETLINK` right after.
    pub inet_conf: Vec<(u32, u32)>,
}

/// `IPV4_DEVCONF_FORWARDING` (`net/ipv4/conf/<if>/forwarding`), from `linux/ip.h`.
pub const IPV4_DEVCONF_FORWARDING: u32 = 1;
/// `IPV4_DEVCONF_PROXY_ARP` (`net/ipv4/conf/<if>/proxy_arp`), from `linux/ip.h`.
pub const IPV4_DEVCONF_PROXY_ARP: u32 = 3;
/// Last valid `IPV4_DEVCONF_*` index the kernel accepts (`IPV4_DEVCONF_MAX`, kernel 5.x/6.x).
const IPV4_DEVCONF_LAST: u32 = 33;
/// `IFLA_INET_CONF`, inside `IFLA_AF_SPEC` / `AF_INET`.
const IFLA_INET_CONF: u16 = 1;
/// `NLA_F_NESTED`.
const NLA_F_NESTED: u16 = 1 << 15;

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

    /// Sets IPv4 per-device settings of this end, `(IPV4_DEVCONF_* index, value)` (the
    /// index is 1-based, as in `linux/ip.h`, e.g. [`IPV4_DEVCONF_FORWARDING`]). Added to
    /// those already given; applied by one `RTM_SETLINK` right after the creation.
    pub fn inet_conf(mut self, conf: &[(u32, u32)]) -> Self {
        self.inet_conf.extend_from_slice(conf);
        self
    }

    /// Turns proxy ARP on or off on this end (`net/ipv4/conf/<name>/proxy_arp`).
    pub fn proxy_arp(self, on: bool) -> Self {
        self.inet_conf(&[(IPV4_DEVCONF_PROXY_ARP, u32::from(on))])
    }

    /// Turns IPv4 forwarding on or off on this end (`net/ipv4/conf/<name>/forwarding`).
    pub fn forwarding(self, on: bool) -> Self {
        self.inet_conf(&[(IPV4_DEVCONF_FORWARDING, u32::from(on))])
    }

    /// Checks what the kernel would refuse with a bare `EINVAL`.
    pub(crate) fn check(&self) -> Result<(), String> {
        check_inet_conf(&self.inet_conf)
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

/// Checks devconf indices (the kernel answers a bare `EINVAL`).
fn check_inet_conf(conf: &[(u32, u32)]) -> Result<(), String> {
    for &(k, _) in conf {
        if k == 0 || k > IPV4_DEVCONF_LAST {
            return Err(format!(
                "IPv4 devconf index {k} is out of range 1..={IPV4_DEVCONF_LAST}"
            ));
        }
    }
    Ok(())
}

/// The `IFLA_AF_SPEC` attribute holding IPv4 devconf settings and IPv6 `addrgenmode none`,
/// or `None` when there is nothing to set.
fn af_spec(inet_conf: &[(u32, u32)], no_ipv6_addr_gen: bool) -> Option<LinkAttribute> {
    let mut families = Vec::new();
    if !inet_conf.is_empty() {
        // IFLA_INET_CONF holds one u32 attribute per setting, typed by its devconf index.
        let mut nest = Vec::with_capacity(inet_conf.len() * 8);
        for &(k, v) in inet_conf {
            nest.extend_from_slice(&8u16.to_ne_bytes());
            // In range: checked by `VethSpec::check` (at most IPV4_DEVCONF_LAST).
            nest.extend_from_slice(&(k as u16).to_ne_bytes());
            nest.extend_from_slice(&v.to_ne_bytes());
        }
        families.push(AfSpecUnspec::Inet(vec![AfSpecInet::Other(
            DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, nest),
        )]));
    }
    if no_ipv6_addr_gen {
        families.push(AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
            In6AddrGenMode::None,
        )]));
    }
    (!families.is_empty()).then_some(LinkAttribute::AfSpecUnspec(families))
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
    /// IPv4 per-device settings, `(IPV4_DEVCONF_* index, value)`, see [`VethSpec::inet_conf`].
    pub inet_conf: Vec<(u32, u32)>,
    /// Set IPv6 `addrgenmode none` (no link-local address); see [`LinkChange::no_ipv6_addr_gen`].
    pub no_ipv6_addr_gen: bool,
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

    /// Sets IPv4 per-device settings, `(IPV4_DEVCONF_* index, value)` (1-based index, as in
    /// `linux/ip.h`). Added to those already given.
    pub fn inet_conf(mut self, conf: &[(u32, u32)]) -> Self {
        self.inet_conf.extend_from_slice(conf);
        self
    }

    /// IPv6 `addrgenmode none`: the link gets no link-local address when it goes up, so it
    /// sends no IPv6 (router/neighbour solicitations, MLD reports). Set it while the link is
    /// down and bring it up in a later request: in one request the kernel brings the link up
    /// first (making the link-local address) and changes the mode only after.
    pub fn no_ipv6_addr_gen(mut self) -> Self {
        self.no_ipv6_addr_gen = true;
        self
    }

    /// Checks what the kernel would refuse with a bare `EINVAL`.
    pub(crate) fn check(&self) -> Result<(), String> {
        check_inet_conf(&self.inet_conf)
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
        if let Some(a) = af_spec(&self.inet_conf, self.no_ipv6_addr_gen) {
            m.attributes.push(a);
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
        for (k, v) in &self.inet_conf {
            parts.push(format!("ipv4-devconf {k}={v}"));
        }
        if self.no_ipv6_addr_gen {
            parts.push("addrgenmode none".to_string());
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
