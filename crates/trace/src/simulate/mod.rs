//! Hop by hop: in each namespace, the checks the kernel makes in the order it makes them —
//! destination MAC, local delivery, forwarding, route lookup, reverse path filter, TTL, MTU,
//! neighbour resolution — then the wire (a veth pair, possibly through a bridge) to the next
//! namespace. Netfilter and NAT steps slot in between route lookup and output later.

mod decide;
mod filter;
mod output;
mod route;
mod tunnel;
mod wire;

use std::net::Ipv4Addr;

use weft_netlink::{format_mac, Link};

use crate::disposition::{Disposition, Verdict};
use crate::flow::{rewritten, Flow};
use crate::model::{Hop, Iface, Leg, Packet, Step, StepDetail};
use crate::snapshot::link_kind;
use crate::world::{Attach, Member, World};

use decide::{originate, receive};
use wire::cross;

/// No lab path is longer than this many namespaces.
const MAX_HOPS: usize = 16;
/// A veth drops a received frame whose IP packet exceeds the MTU by more than a VLAN tag.
pub(super) const VETH_RX_SLACK: u32 = 4;

/// How a leg ended.
#[derive(Clone, Debug)]
pub struct LegOutcome {
    pub verdict: Verdict,
    /// The member it was delivered to.
    pub delivered_to: Option<String>,
    /// The packet as it was at the end (source address picked, TTL decremented).
    pub flow: Flow,
}

/// The frame arriving at the next namespace.
pub(super) struct Arrival {
    pub(super) member: String,
    pub(super) ingress: Link,
    pub(super) rx: Packet,
    /// MTU of the sending end, for mismatch reports.
    pub(super) sender_mtu: u32,
    /// Where it came from, for the wire step.
    pub(super) from: String,
}

pub(super) fn step(detail: StepDetail, text: impl Into<String>, ok: bool) -> Step {
    Step {
        detail,
        text: text.into(),
        ok,
    }
}

pub(super) fn note(text: impl Into<String>) -> Step {
    step(StepDetail::Note, text, true)
}

/// The interface as a hop shows it.
pub fn iface(l: &Link) -> Iface {
    Iface {
        name: l.name.clone(),
        index: l.index,
        kind: link_kind(l),
        mac: l.mac.map(|m| format_mac(&m)),
        mtu: l.mtu,
    }
}

pub(super) fn new_hop(hops: &[Hop], leg: Leg, m: &Member) -> Hop {
    Hop {
        index: hops.len(),
        leg,
        member: m.key.clone(),
        kind: m.kind,
        label: m.label.clone(),
        netns: m.netns.clone(),
        ingress: None,
        egress: None,
        rx: None,
        tx: None,
        steps: Vec::new(),
        disposition: None,
    }
}

/// Simulates one leg from `start`. With `pick_source` the source address is the one the
/// kernel of `start` picks; otherwise `flow.src` stays (a reply answers from the address
/// that was asked).
pub fn run_leg(
    w: &mut World,
    leg: Leg,
    start: &str,
    mut flow: Flow,
    pick_source: bool,
    hops: &mut Vec<Hop>,
) -> LegOutcome {
    let mut entry = Entry::Originate;
    let mut tunnel: Option<Tunnel> = None;
    let mut cur = start.to_string();
    let first = hops.len();
    loop {
        let Some(m) = w.member(&cur).cloned() else {
            // Members come from the world itself; this is a bug guard, not a guess.
            let d = Disposition::Unsupported {
                member: cur.clone(),
                what: "a namespace that is not a lab member".into(),
            };
            let idx = hops.len().saturating_sub(1);
            return end(hops, None, leg, idx, d, flow);
        };
        let mut hop = new_hop(hops, leg, &m);
        if let Entry::Arrive(a) = &entry {
            hop.ingress = Some(iface(&a.ingress));
            hop.rx = Some(a.rx.clone());
            hop.steps.push(step(
                StepDetail::Wire {
                    from: a.from.clone(),
                    to: a.ingress.name.clone(),
                    member: m.name.clone(),
                },
                format!("arrives on {} from {}", a.ingress.name, a.from),
                true,
            ));
        }
        if hops.len() - first >= MAX_HOPS {
            let d = Disposition::TooManyHops {
                member: m.name.clone(),
            };
            return end(hops, Some(hop), leg, 0, d, flow);
        }
        let snap = match w.snapshot(&cur) {
            Ok(s) => s,
            Err(e) => {
                let iface = match &entry {
                    Entry::Arrive(a) => a.ingress.name.clone(),
                    _ => String::new(),
                };
                let d = Disposition::Unmanaged {
                    member: m.name.clone(),
                    iface,
                    detail: e,
                };
                return end(hops, Some(hop), leg, 0, d, flow);
            }
        };
        let made_here = !matches!(entry, Entry::Arrive(_));
        let result = match std::mem::replace(&mut entry, Entry::Originate) {
            Entry::Originate => originate(w, &m, &snap, &mut hop, &mut flow, pick_source),
            Entry::Arrive(a) => receive(w, &m, &snap, &mut hop, &mut flow, &a),
            Entry::Encap(dev) => tunnel::encapsulate(w, &m, &snap, &mut hop, &mut flow, &dev),
        };
        let next = match result {
            Ok(n) => n,
            Err(d) => {
                let delivered = d.delivered().then(|| m.key.clone());
                let mut out = end(hops, Some(hop), leg, 0, d, flow);
                out.delivered_to = delivered;
                return out;
            }
        };
        match next {
            Next::Wire {
                egress,
                attach,
                dst_mac,
            } => {
                let tx = frame(&hop, &flow, &egress, dst_mac, made_here, tunnel.as_ref());
                hop.egress = Some(iface(&egress));
                hop.tx = Some(tx.clone());
                hops.push(hop);
                match cross(w, leg, &m, &egress, *attach, tx, &flow, hops) {
                    Ok(a) => {
                        cur = a.member.clone();
                        entry = Entry::Arrive(Box::new(a));
                    }
                    Err(b) => {
                        let (hop, d) = *b;
                        return end(hops, Some(hop), leg, 0, d, flow);
                    }
                }
            }
            Next::Encap {
                dev,
                dst_mac,
                vtep,
                vni,
            } => {
                // The frame as it enters the tunnel device; the outer packet is made next.
                let tx = frame(&hop, &flow, &dev, dst_mac, made_here, None);
                hop.egress = Some(iface(&dev));
                hop.tx = Some(tx.clone());
                hops.push(hop);
                let outer = tunnel::outer_flow(&flow, vtep, vni);
                tunnel = Some(Tunnel {
                    inner: std::mem::replace(&mut flow, outer),
                    frame: tx,
                });
                entry = Entry::Encap(dev);
            }
            Next::Decap { dev } => {
                hops.push(hop);
                let Some(t) = tunnel.take() else {
                    let d = Disposition::Unsupported {
                        member: m.name.clone(),
                        what: "a tunnel packet whose inner frame is not known".into(),
                    };
                    return end(hops, None, leg, hops.len().saturating_sub(1), d, flow);
                };
                flow = t.inner;
                entry = Entry::Arrive(Box::new(Arrival {
                    member: m.key.clone(),
                    rx: crate::flow::unmarked(&t.frame),
                    sender_mtu: dev.mtu,
                    from: format!("the VXLAN tunnel (VNI {})", flow_vni(&t.frame)),
                    ingress: dev,
                }));
            }
        }
    }
}

/// The frame leaving `egress`: this namespace's MACs, the flow's headers, and, inside a
/// tunnel, the frame it carries.
fn frame(
    hop: &Hop,
    flow: &Flow,
    egress: &Link,
    dst_mac: [u8; 6],
    made_here: bool,
    tunnel: Option<&Tunnel>,
) -> Packet {
    let smac = egress.mac.map(|m| format_mac(&m)).unwrap_or_default();
    let mut rw = if made_here {
        vec![]
    } else {
        rewritten(hop.rx.as_ref(), &smac, &format_mac(&dst_mac), flow.ttl)
    };
    for s in &hop.steps {
        if let StepDetail::Nat { nat, .. } = &s.detail {
            let field = match nat.as_str() {
                "dnat" | "un-masquerade" => "dst",
                _ => "src",
            };
            if !rw.iter().any(|r| r == field) {
                rw.push(field.into());
            }
        }
    }
    let inner = tunnel.map(|t| crate::flow::unmarked(&t.frame));
    if inner.is_some() && hop.ingress.is_none() {
        rw.push("encap".into());
    }
    flow.packet_with(egress.mac, Some(dst_mac), rw, inner)
}

fn flow_vni(_frame: &Packet) -> u32 {
    weft_model::VXLAN_VNI
}

/// Pushes the last hop (if given) with its verdict and builds the outcome.
fn end(
    hops: &mut Vec<Hop>,
    hop: Option<Hop>,
    leg: Leg,
    fallback: usize,
    d: Disposition,
    flow: Flow,
) -> LegOutcome {
    let idx = hop.as_ref().map(|h| h.index).unwrap_or(fallback);
    let verdict = Verdict::new(leg, idx, d);
    if let Some(mut h) = hop {
        h.disposition = Some(verdict.clone());
        hops.push(h);
    } else if let Some(h) = hops.get_mut(idx) {
        h.disposition = Some(verdict.clone());
    }
    LegOutcome {
        verdict,
        delivered_to: None,
        flow,
    }
}

/// What a hop decided when the packet goes on.
pub(super) enum Next {
    /// Out of `egress` onto the wire towards `attach`, addressed to `dst_mac`.
    Wire {
        egress: Link,
        attach: Box<Attach>,
        dst_mac: [u8; 6],
    },
    /// Into a VXLAN device: the frame is wrapped and the outer packet routed to `vtep`.
    Encap {
        dev: Link,
        dst_mac: [u8; 6],
        vtep: Ipv4Addr,
        vni: u32,
    },
    /// The outer packet reached the VXLAN port: the frame comes out of `dev`.
    Decap { dev: Link },
}

pub(super) type Forward = Result<Next, Disposition>;

/// How the next hop is entered.
enum Entry {
    /// The packet is made here.
    Originate,
    /// A frame arrives.
    Arrive(Box<Arrival>),
    /// The node wraps the frame that entered `dev` and routes the outer packet.
    Encap(Link),
}

/// A frame travelling inside a tunnel: its own flow and headers.
struct Tunnel {
    inner: Flow,
    frame: Packet,
}

/// Both legs: the forward leg from `from`, then, when it delivered, the answer from where it
/// was delivered. Hops of both legs go into `hops`.
pub fn both_legs(
    w: &mut World,
    from: &str,
    flow: Flow,
    hops: &mut Vec<Hop>,
) -> (LegOutcome, Option<LegOutcome>) {
    let fwd = run_leg(w, Leg::Forward, from, flow, true, hops);
    let reply = fwd.delivered_to.clone().map(|at| {
        let answer = fwd.flow.answer();
        run_leg(w, Leg::Reply, &at, answer, false, hops)
    });
    (fwd, reply)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
