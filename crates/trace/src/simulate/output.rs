//! Output along a route: device state, MTU (with a learned path MTU for packets made here),
//! and who answers ARP for the next hop.

use weft_netlink::{format_mac, Route};

use super::tunnel::vxlan_out;
use super::{iface, note, step, Forward, Next};
use crate::arp::{resolve, Arp};
use crate::disposition::Disposition;
use crate::flow::Flow;
use crate::lookup::{next_hop, select_source, show_route};
use crate::model::{Hop, StepDetail};
use crate::snapshot::{is_loopback, NsSnapshot};
use crate::world::{Member, Peer, World};

/// Output along `route`: device state, MTU, neighbour resolution.
pub(super) fn output(
    w: &mut World,
    m: &Member,
    s: &NsSnapshot,
    hop: &mut Hop,
    flow: &mut Flow,
    route: &Route,
    origin: bool,
) -> Forward {
    let name = m.name.clone();
    let Some(out) = route.oif.and_then(|o| s.link(o)).cloned() else {
        return Err(Disposition::Unsupported {
            member: name,
            what: format!(
                "a route without an output device (`{}`)",
                show_route(s, route)
            ),
        });
    };
    hop.egress = Some(iface(&out));
    if !out.up || !out.oper_up {
        return Err(Disposition::LinkDown {
            member: name,
            iface: out.name.clone(),
        });
    }
    if is_loopback(&out) {
        return Err(Disposition::Unsupported {
            member: name,
            what: format!(
                "a route through the loopback device (`{}`)",
                show_route(s, route)
            ),
        });
    }
    if origin {
        super::filter::output(w, m, hop, flow, &out.name)?;
    }
    // Packets made here also obey a path MTU the kernel learned for the destination.
    let learned = if origin {
        w.route_mtu(&m.key, flow.dst).filter(|p| *p < out.mtu)
    } else {
        None
    };
    let mtu = learned.unwrap_or(out.mtu);
    let fits = u32::from(flow.len) <= mtu;
    if let Some(p) = learned {
        hop.steps.push(note(format!(
            "{} has learned a path MTU of {p} to {} (an ICMP fragmentation-needed from further on; it expires by itself)",
            m.label, flow.dst
        )));
    }
    hop.steps.push(step(
        StepDetail::Mtu { iface: out.name.clone(), mtu, len: flow.len, pass: fits },
        if fits {
            format!("{} bytes fit the MTU {mtu} of {}", flow.len, out.name)
        } else {
            format!(
                "{} bytes exceed the MTU {mtu} of {} and DF is set: refused (ICMP fragmentation needed)",
                flow.len, out.name
            )
        },
        fits,
    ));
    if !fits {
        // A veth end lowered below its peer is a mismatch; say which MTU to restore.
        let peer_mtu = match w.peer(&m.key, &out) {
            Peer::Found { link, .. } if link.mtu > out.mtu && learned.is_none() => Some(link.mtu),
            _ => None,
        };
        return Err(Disposition::MtuExceeded {
            member: name,
            iface: out.name.clone(),
            mtu,
            len: flow.len,
            on_receive: false,
            peer_mtu,
            learned: learned.is_some(),
        });
    }
    super::filter::postrouting(w, m, s, hop, flow, &out.name, route);
    if out.kind.as_deref() == Some("vxlan") {
        return vxlan_out(s, hop, flow, route, &out, &name);
    }
    let nh = next_hop(route, flow.dst);
    let sender = if s.is_local(flow.src) {
        flow.src
    } else {
        select_source(s, route, nh).unwrap_or(flow.src)
    };
    match resolve(w, &m.key, &out, nh, sender) {
        Arp::Resolved(r) => {
            hop.steps.push(step(
                StepDetail::Neighbour {
                    ip: nh,
                    iface: out.name.clone(),
                    mac: Some(format_mac(&r.mac)),
                    how: r.how.name().into(),
                    by: w
                        .member(&r.attach.member)
                        .map(|x| format!("{} {}", x.label, r.attach.link.name)),
                },
                format!("ARP on {}: {}", out.name, r.text),
                true,
            ));
            for n in &r.notes {
                hop.steps.push(note(n.clone()));
            }
            Ok(Next::Wire {
                egress: out,
                attach: Box::new(r.attach),
                dst_mac: r.mac,
            })
        }
        Arp::NoAnswer(reason) => {
            hop.steps.push(step(
                StepDetail::Neighbour {
                    ip: nh,
                    iface: out.name.clone(),
                    mac: None,
                    how: "none".into(),
                    by: None,
                },
                format!("ARP on {} for {nh}: no answer", out.name),
                false,
            ));
            Err(Disposition::NoNeighbour {
                member: name,
                iface: out.name.clone(),
                ip: nh,
                reason,
            })
        }
        Arp::Unknown(detail) => Err(Disposition::Unmanaged {
            member: name,
            iface: out.name.clone(),
            detail,
        }),
    }
}
