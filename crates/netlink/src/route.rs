//! IPv4 routes: the [`Route`] value, its builders and text form, and the
//! add/replace/delete/list/get requests.

use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteMessage, RouteProtocol, RouteScope as NlScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::Handle;

/// `RTPROT_KERNEL`: routes the kernel made (connected subnets).
pub const RTPROT_KERNEL: u8 = 2;
/// `RTPROT_BOOT`: the default protocol of `ip route add`, and of [`Route::new`].
pub const RTPROT_BOOT: u8 = 3;
/// `RTPROT_STATIC`.
pub const RTPROT_STATIC: u8 = 4;
/// The main routing table.
pub const TABLE_MAIN: u32 = 254;
/// The local routing table.
pub const TABLE_LOCAL: u32 = 255;

/// The route type (`rtm_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// A normal route through a gateway or a device.
    Unicast,
    /// Silently drop.
    Blackhole,
    /// Drop with ICMP host unreachable.
    Unreachable,
    /// Drop with ICMP administratively prohibited.
    Prohibit,
    /// A local address (local table).
    Local,
    /// Any other `RTN_*` value.
    Other(u8),
}

impl From<u8> for RouteKind {
    fn from(v: u8) -> Self {
        match v {
            1 => RouteKind::Unicast,
            2 => RouteKind::Local,
            6 => RouteKind::Blackhole,
            7 => RouteKind::Unreachable,
            8 => RouteKind::Prohibit,
            o => RouteKind::Other(o),
        }
    }
}

impl From<RouteKind> for u8 {
    fn from(k: RouteKind) -> u8 {
        match k {
            RouteKind::Unicast => 1,
            RouteKind::Local => 2,
            RouteKind::Blackhole => 6,
            RouteKind::Unreachable => 7,
            RouteKind::Prohibit => 8,
            RouteKind::Other(o) => o,
        }
    }
}

/// The route scope (`rtm_scope`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteScope {
    /// Global (`RT_SCOPE_UNIVERSE`, 0).
    Universe,
    /// Directly attached (`RT_SCOPE_LINK`, 253).
    Link,
    /// On this host (`RT_SCOPE_HOST`, 254).
    Host,
    /// Any other value.
    Other(u8),
}

impl From<u8> for RouteScope {
    fn from(v: u8) -> Self {
        match v {
            0 => RouteScope::Universe,
            253 => RouteScope::Link,
            254 => RouteScope::Host,
            o => RouteScope::Other(o),
        }
    }
}

impl From<RouteScope> for u8 {
    fn from(s: RouteScope) -> u8 {
        match s {
            RouteScope::Universe => 0,
            RouteScope::Link => 253,
            RouteScope::Host => 254,
            RouteScope::Other(o) => o,
        }
    }
}

/// An IPv4 route. Values read from the kernel compare equal to the ones built
/// with the same settings, so a desired set can be diffed against [`Handle::routes`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Routing table (254 = main).
    pub table: u32,
    /// Destination prefix.
    pub dst: Ipv4Net,
    /// Route type.
    pub kind: RouteKind,
    /// Next hop.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Scope.
    pub scope: RouteScope,
    /// Protocol (who installed it): [`RTPROT_BOOT`] by default.
    pub protocol: u8,
    /// `onlink`: the gateway is reachable on `oif` without a covering route.
    pub onlink: bool,
    /// Preferred source address.
    pub prefsrc: Option<Ipv4Addr>,
    /// Metric (`RTA_PRIORITY`); `None` is 0.
    pub metric: Option<u32>,
}

impl Route {
    /// A unicast route to `dst` (host bits cleared) in the main table, scope
    /// universe, protocol boot, with no next hop yet.
    pub fn new(dst: Ipv4Net) -> Route {
        Route {
            table: TABLE_MAIN,
            dst: dst.trunc(),
            kind: RouteKind::Unicast,
            gateway: None,
            oif: None,
            scope: RouteScope::Universe,
            protocol: RTPROT_BOOT,
            onlink: false,
            prefsrc: None,
            metric: None,
        }
    }

    /// The default route (`0.0.0.0/0`) via `gw`.
    pub fn default_via(gw: Ipv4Addr) -> Route {
        Route::new(Ipv4Net::default()).via(gw)
    }

    /// Sets the gateway.
    pub fn via(mut self, gw: Ipv4Addr) -> Route {
        self.gateway = Some(gw);
        self
    }

    /// Sets the output interface.
    pub fn dev(mut self, oif: u32) -> Route {
        self.oif = Some(oif);
        self
    }

    /// Marks the gateway as on-link.
    pub fn onlink(mut self) -> Route {
        self.onlink = true;
        self
    }

    /// Sets scope link (a directly attached destination).
    pub fn scope_link(mut self) -> Route {
        self.scope = RouteScope::Link;
        self
    }

    /// Sets the scope.
    pub fn scope(mut self, scope: RouteScope) -> Route {
        self.scope = scope;
        self
    }

    /// Sets the protocol number.
    pub fn proto(mut self, protocol: u8) -> Route {
        self.protocol = protocol;
        self
    }

    /// Makes it a blackhole route.
    pub fn blackhole(mut self) -> Route {
        self.kind = RouteKind::Blackhole;
        self
    }

    /// Makes it an unreachable route.
    pub fn unreachable(mut self) -> Route {
        self.kind = RouteKind::Unreachable;
        self
    }

    /// Sets the table.
    pub fn table(mut self, table: u32) -> Route {
        self.table = table;
        self
    }

    /// Sets the metric.
    pub fn metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }

    /// Sets the preferred source address.
    pub fn src(mut self, prefsrc: Ipv4Addr) -> Route {
        self.prefsrc = Some(prefsrc);
        self
    }

    /// Builds the request message. For a delete, scope and protocol are wildcards
    /// (like `ip route del`), so the route is matched by table, destination, type,
    /// and the gateway, device and metric when they are set.
    pub(crate) fn to_message(&self, delete: bool) -> RouteMessage {
        let mut m = RouteMessage::default();
        let h = &mut m.header;
        h.address_family = AddressFamily::Inet;
        h.destination_prefix_length = self.dst.prefix_len();
        h.table = u8::try_from(self.table).unwrap_or(0);
        h.kind = RouteType::from(u8::from(self.kind));
        if delete {
            h.protocol = RouteProtocol::Unspec;
            h.scope = NlScope::NoWhere;
        } else {
            h.protocol = RouteProtocol::from(self.protocol);
            h.scope = NlScope::from(u8::from(self.scope));
        }
        if self.onlink {
            h.flags = RouteFlags::Onlink;
        }
        let a = &mut m.attributes;
        if self.dst.prefix_len() > 0 {
            a.push(RouteAttribute::Destination(RouteAddress::Inet(
                self.dst.addr(),
            )));
        }
        if let Some(gw) = self.gateway {
            a.push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
        }
        if let Some(oif) = self.oif {
            a.push(RouteAttribute::Oif(oif));
        }
        if let Some(src) = self.prefsrc {
            a.push(RouteAttribute::PrefSource(RouteAddress::Inet(src)));
        }
        if let Some(metric) = self.metric {
            a.push(RouteAttribute::Priority(metric));
        }
        a.push(RouteAttribute::Table(self.table));
        m
    }

    /// Decodes an `RTM_NEWROUTE` message (IPv4 only). For a multipath route, the
    /// first next hop is reported.
    pub(crate) fn from_message(m: &RouteMessage) -> Option<Route> {
        let h = &m.header;
        if h.address_family != AddressFamily::Inet {
            return None;
        }
        let mut r = Route {
            table: u32::from(h.table),
            dst: Ipv4Net::new(Ipv4Addr::UNSPECIFIED, h.destination_prefix_length).ok()?,
            kind: RouteKind::from(u8::from(h.kind)),
            gateway: None,
            oif: None,
            scope: RouteScope::from(u8::from(h.scope)),
            protocol: u8::from(h.protocol),
            onlink: h.flags.contains(RouteFlags::Onlink),
            prefsrc: None,
            metric: None,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Table(t) => r.table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                    r.dst = Ipv4Net::new(*ip, h.destination_prefix_length).ok()?;
                }
                RouteAttribute::Gateway(RouteAddress::Inet(gw)) => r.gateway = Some(*gw),
                RouteAttribute::Oif(o) => r.oif = Some(*o),
                RouteAttribute::PrefSource(RouteAddress::Inet(s)) => r.prefsrc = Some(*s),
                RouteAttribute::Priority(p) => r.metric = Some(*p),
                RouteAttribute::MultiPath(hops) => {
                    if let Some(hop) = hops.first() {
                        r.oif = r.oif.or(Some(hop.interface_index));
                        for ha in &hop.attributes {
                            if let RouteAttribute::Gateway(RouteAddress::Inet(gw)) = ha {
                                r.gateway = r.gateway.or(Some(*gw));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Some(r)
    }
}

impl fmt::Display for Route {
    /// `ip route`-like text: `blackhole 10.244.0.0/26 proto boot`,
    /// `default via 169.254.1.1 dev 2 onlink`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RouteKind::Unicast => {}
            RouteKind::Blackhole => write!(f, "blackhole ")?,
            RouteKind::Unreachable => write!(f, "unreachable ")?,
            RouteKind::Prohibit => write!(f, "prohibit ")?,
            RouteKind::Local => write!(f, "local ")?,
            RouteKind::Other(o) => write!(f, "type {o} ")?,
        }
        if self.dst.prefix_len() == 0 {
            write!(f, "default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev {oif}")?;
        }
        match self.protocol {
            RTPROT_KERNEL => write!(f, " proto kernel")?,
            RTPROT_BOOT => write!(f, " proto boot")?,
            RTPROT_STATIC => write!(f, " proto static")?,
            p => write!(f, " proto {p}")?,
        }
        match self.scope {
            RouteScope::Universe => {}
            RouteScope::Link => write!(f, " scope link")?,
            RouteScope::Host => write!(f, " scope host")?,
            RouteScope::Other(s) => write!(f, " scope {s}")?,
        }
        if let Some(s) = self.prefsrc {
            write!(f, " src {s}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        if self.onlink {
            write!(f, " onlink")?;
        }
        if self.table != TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        Ok(())
    }
}

impl Handle {
    /// Adds a route; fails with `EEXIST` when one to the same destination exists.
    pub fn add_route(&mut self, r: &Route) -> Result<()> {
        let m = r.to_message(false);
        self.request(
            "add route",
            r,
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Adds or replaces the route to the same destination (and metric).
    pub fn replace_route(&mut self, r: &Route) -> Result<()> {
        let m = r.to_message(false);
        self.request(
            "replace route",
            r,
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )?;
        Ok(())
    }

    /// Deletes a route (`ESRCH` when there is none). Scope and protocol are not
    /// matched; gateway, device and metric are when set.
    pub fn del_route(&mut self, r: &Route) -> Result<()> {
        let m = r.to_message(true);
        self.request("delete route", r, RouteNetlinkMessage::DelRoute(m), 0)?;
        Ok(())
    }

    /// The IPv4 routes of table `table` (254 = main); cached clones are left out.
    pub fn routes(&mut self, table: u32) -> Result<Vec<Route>> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        if self.strict() {
            // Kernel-side filter (strict checking only).
            m.attributes.push(RouteAttribute::Table(table));
        }
        let object = format_args!("of table {table}");
        let replies = match self.dump("list routes", &object, RouteNetlinkMessage::GetRoute(m)) {
            Ok(r) => r,
            // A table that was never populated does not exist yet.
            Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(rm)
                    if !rm.header.flags.contains(RouteFlags::Cloned) =>
                {
                    Route::from_message(rm)
                }
                _ => None,
            })
            .filter(|r| r.table == table)
            .collect())
    }

    /// The route the kernel would use for `dst`, like `ip route get`: `dst` is
    /// reported as `dst/32`, with the resolved gateway, device, source and table.
    pub fn route_get(&mut self, dst: Ipv4Addr) -> Result<Route> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 32;
        m.header.flags = RouteFlags::LookupTable;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
        let replies = self.request("route get", &dst, RouteNetlinkMessage::GetRoute(m), 0)?;
        replies
            .iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewRoute(rm) => Route::from_message(rm),
                _ => None,
            })
            .ok_or_else(|| {
                crate::Error::from_errno("route get", dst.to_string(), libc::ENETUNREACH)
                    .with_detail("the kernel sent no route")
            })
    }
}
