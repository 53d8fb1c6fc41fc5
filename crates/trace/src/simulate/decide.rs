//! One hop's decisions: a packet made here (route, source, output) or a frame arriving
//! (receive checks, local delivery or tunnel port, forwarding, route, rp_filter, TTL, output).

use std::rc::Rc;

use weft_netlink::format_mac;

use super::filter;
use super::output::output;
use super::route::{route_step, routed, rp_check};
use super::{iface, note, step, tunnel, Arrival, Forward, Next, VETH_RX_SLACK};
use crate::disposition::Disposition;
use crate::flow::Flow;
use crate::lookup::{lookup, select_source, Lookup};
use crate::model::{Hop, StepDetail};
use crate::snapshot::NsSnapshot;
use crate::world::{Member, World};

/// The packet is made here: route it, pick its source, resolve the next hop.
pub(super) fn originate(
    w: &mut World,
    m: &Member,
    s: &Rc<NsSnapshot>,
    hop: &mut Hop,
    flow: &mut Flow,
    pick_source: bool,
) -> Forward {
    let mut pick_source = pick_source;
    let asked = flow.dst;
    if w.nf_table(&m.key).is_some() && !flow.reply {
        // The socket picks its source by the route to the address it connects to, before a
        // service's DNAT changes where the packet goes.
        if pick_source {
            if let Lookup::Matched(r) = lookup(s, flow.dst) {
                if let Some(src) = select_source(s, &r, flow.dst) {
                    flow.src = src;
                    pick_source = false;
                }
            }
        }
        filter::output_nat(w, m, hop, flow);
    }
    let looked = lookup(s, flow.dst);
    if let Lookup::Local(_) = &looked {
        hop.steps
            .push(route_step(w, m, s, flow, Some(flow.src), &looked));
        hop.steps.push(step(
            StepDetail::Deliver { iface: "lo".into() },
            format!("{} is local: delivered over loopback", flow.dst),
            true,
        ));
        return Err(Disposition::Delivered {
            member: m.name.clone(),
            iface: "lo".into(),
        });
    }
    let route = routed(w, m, s, hop, flow, &looked)?;
    if pick_source {
        if let Some(src) = select_source(s, &route, flow.dst) {
            flow.src = src;
        }
    }
    hop.steps.insert(
        0,
        step(
            StepDetail::Originate {
                src: flow.src,
                dst: asked,
            },
            format!(
                "{} sends {} -> {} ({})",
                m.label, flow.src, asked, flow.proto
            ),
            true,
        ),
    );
    output(w, m, s, hop, flow, &route, true)
}

/// The packet arrives here: deliver it or forward it.
pub(super) fn receive(
    w: &mut World,
    m: &Member,
    s: &Rc<NsSnapshot>,
    hop: &mut Hop,
    flow: &mut Flow,
    a: &Arrival,
) -> Forward {
    let name = m.name.clone();
    let ing = &a.ingress;
    // A veth drops frames larger than its MTU on receive (the capture never sees them).
    if ing.kind.as_deref() == Some("veth") && u32::from(flow.len) > ing.mtu + VETH_RX_SLACK {
        hop.rx = None;
        hop.steps.push(step(
            StepDetail::Mtu {
                iface: ing.name.clone(),
                mtu: ing.mtu,
                len: flow.len,
                pass: false,
            },
            format!(
                "{} (MTU {}) drops the {}-byte packet on receive; the sender's end has MTU {}",
                ing.name, ing.mtu, flow.len, a.sender_mtu
            ),
            false,
        ));
        return Err(Disposition::MtuExceeded {
            member: name,
            iface: ing.name.clone(),
            mtu: ing.mtu,
            len: flow.len,
            on_receive: true,
            peer_mtu: (a.sender_mtu != ing.mtu).then_some(a.sender_mtu),
            learned: false,
        });
    }
    if !ing.up {
        return Err(Disposition::LinkDown {
            member: name,
            iface: ing.name.clone(),
        });
    }
    let dst_mac = &a.rx.dst_mac;
    let own = ing.mac.map(|m| format_mac(&m)).unwrap_or_default();
    if *dst_mac != own && dst_mac != "ff:ff:ff:ff:ff:ff" {
        return Err(Disposition::WrongMac {
            member: name,
            iface: ing.name.clone(),
            mac: dst_mac.clone(),
        });
    }
    filter::prerouting(w, m, hop, flow, &ing.name);
    let looked = lookup(s, flow.dst);
    let rpf = s.rp_filter(&ing.name);
    if let Lookup::Local(_) = looked {
        hop.steps.push(route_step(w, m, s, flow, None, &looked));
        if let Some(d) = rp_check(s, hop, &name, ing, flow, rpf) {
            return Err(d);
        }
        // A tunnel packet for the VXLAN port goes to the VXLAN device, not to a socket.
        if let Some(vni) = flow.vni {
            let Some(dev) = tunnel::vxlan_device(s) else {
                return Err(Disposition::Unsupported {
                    member: name,
                    what: format!(
                        "a VXLAN packet (VNI {vni}) for a namespace without a VXLAN device"
                    ),
                });
            };
            hop.steps.push(step(
                StepDetail::Decap {
                    device: dev.name.clone(),
                    vni,
                },
                format!(
                    "UDP {} to {} is the VXLAN port: {} decapsulates VNI {vni}",
                    flow.dport.unwrap_or(0),
                    flow.dst,
                    dev.name
                ),
                true,
            ));
            return Ok(Next::Decap { dev });
        }
        filter::input(w, m, hop, flow, &ing.name)?;
        hop.steps.push(step(
            StepDetail::Deliver {
                iface: ing.name.clone(),
            },
            format!("{} is an address of {}: delivered", flow.dst, m.label),
            true,
        ));
        return Err(Disposition::Delivered {
            member: name,
            iface: ing.name.clone(),
        });
    }
    let fwd = s.forwarding(&ing.name).unwrap_or(false);
    hop.steps.push(step(
        StepDetail::Forwarding { iface: ing.name.clone(), enabled: fwd },
        if fwd {
            format!("{} forwards (conf/{}/forwarding=1)", ing.name, ing.name)
        } else {
            format!(
                "{} does not forward (conf/{}/forwarding=0, net.ipv4.ip_forward={}): the packet is dropped",
                ing.name,
                ing.name,
                s.ip_forward().map(|b| if b { "1" } else { "0" }).unwrap_or("?")
            )
        },
        fwd,
    ));
    if !fwd {
        // Name where it would have gone, so a capture there can confirm nothing leaves.
        if let Lookup::Matched(r) = &looked {
            if let Some(l) = r.oif.and_then(|o| s.link(o)) {
                hop.steps.push(note(format!(
                    "with forwarding on it would leave via {}",
                    l.name
                )));
                hop.egress = Some(iface(l));
            }
        }
        return Err(Disposition::ForwardingDisabled {
            member: name,
            iface: ing.name.clone(),
            ip_forward: s.ip_forward(),
        });
    }
    let route = routed(w, m, s, hop, flow, &looked)?;
    if let Some(d) = rp_check(s, hop, &name, ing, flow, rpf) {
        return Err(d);
    }
    if flow.ttl <= 1 {
        return Err(Disposition::TtlExceeded { member: name });
    }
    let before = flow.ttl;
    flow.ttl -= 1;
    hop.steps.push(step(
        StepDetail::Ttl {
            before,
            after: flow.ttl,
        },
        format!("routed: TTL {before} -> {}", flow.ttl),
        true,
    ));
    if let Some(out) = route.oif.and_then(|o| s.link(o)) {
        // Named before the hook, so that a capture there confirms nothing leaves when denied.
        hop.egress = Some(iface(out));
        filter::forward(w, m, hop, flow, &ing.name, &out.name.clone())?;
    }
    output(w, m, s, hop, flow, &route, false)
}
