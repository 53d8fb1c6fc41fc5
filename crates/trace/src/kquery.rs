//! Two kernel questions weft-netlink does not ask: `RTM_GETNSID` (the id a namespace gives
//! another one, what `IFLA_LINK_NETNSID` of a veth refers to, so a veth's peer namespace is
//! known for certain, not guessed from indexes) and the MTU of the route `ip route get` finds
//! (which includes a path MTU learned from ICMP "fragmentation needed").

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use anyhow::{bail, Context, Result};
use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteMetric};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use weft_netlink::{run_in_netns, Netns};

/// The id `seen_from` has for `target`, or None when it has assigned none.
pub fn nsid_of(seen_from: &Netns, target: &Netns) -> Result<Option<i32>> {
    let fd = u32::try_from(target.fd().as_raw_fd()).context("namespace fd out of range")?;
    let mut msg = NsidMessage::default();
    msg.attributes.push(NsidAttribute::Fd(fd));
    let reply = run_in_netns(seen_from, move || ask(RouteNetlinkMessage::GetNsId(msg)))
        .with_context(|| format!("enter {seen_from}"))?
        .with_context(|| format!("ask {seen_from} for the id of {target}"))?;
    match reply {
        RouteNetlinkMessage::NewNsId(n) => Ok(n.attributes.iter().find_map(|a| match a {
            NsidAttribute::Id(id) if *id >= 0 => Some(*id),
            _ => None,
        })),
        other => bail!("unexpected reply to RTM_GETNSID: {other:?}"),
    }
}

/// The MTU metric of the route to `dst` in `ns` (a learned path MTU, or an `mtu` set on the
/// route); None when the route has none (the device's MTU applies).
pub fn route_mtu(ns: &Netns, dst: Ipv4Addr) -> Result<Option<u32>> {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Inet;
    m.header.destination_prefix_length = 32;
    m.attributes
        .push(RouteAttribute::Destination(RouteAddress::Inet(dst)));
    let reply = run_in_netns(ns, move || ask(RouteNetlinkMessage::GetRoute(m)))
        .with_context(|| format!("enter {ns}"))?
        .with_context(|| format!("route get {dst} in {ns}"))?;
    let RouteNetlinkMessage::NewRoute(r) = reply else {
        bail!("unexpected reply to RTM_GETROUTE");
    };
    Ok(r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Metrics(ms) => ms.iter().find_map(|x| match x {
            RouteMetric::Mtu(v) if *v > 0 => Some(*v),
            _ => None,
        }),
        _ => None,
    }))
}

/// Sends one request on a fresh socket of the calling thread's namespace; returns the reply.
fn ask(msg: RouteNetlinkMessage) -> Result<RouteNetlinkMessage> {
    let mut sock = Socket::new(NETLINK_ROUTE).context("open netlink socket")?;
    sock.bind_auto().context("bind netlink socket")?;
    sock.connect(&SocketAddr::new(0, 0))
        .context("connect netlink socket")?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = 1;
    let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    nl.finalize();
    let mut buf = vec![0u8; nl.buffer_len()];
    nl.serialize(&mut buf);
    sock.send(&buf, 0).context("send the request")?;
    let (reply, _) = sock.recv_from_full().context("receive the reply")?;
    let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply)
        .map_err(|e| anyhow::anyhow!("decode the reply: {e}"))?;
    match m.payload {
        NetlinkPayload::InnerMessage(r) => Ok(r),
        NetlinkPayload::Error(e) => bail!("the kernel refused: {e}"),
        other => bail!("unexpected reply: {other:?}"),
    }
}
