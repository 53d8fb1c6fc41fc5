//! Observation against prediction: the capture points of a predicted path, which leg a
//! captured frame belongs to (NAT-aware: a frame is the probe's when its addresses and ports
//! are those predicted somewhere on the path), and the judgement point by point.

use std::net::Ipv4Addr;

use super::capture::Captured;
use super::frame::{self, Frame, L4};
use super::{PointReport, Seen};
use crate::flow::Flow;
use crate::model::{Hop, Leg, Packet, Proto};

/// Addresses, ports (or echo id) of a packet.
type Tuple = (Ipv4Addr, Ipv4Addr, Option<u16>, Option<u16>);

/// The tuples the probe's packets are predicted to carry anywhere, by leg.
pub(super) struct Known {
    tuples: Vec<(Leg, Tuple)>,
}

fn tuple_of(p: &Packet) -> Tuple {
    match p.icmp_id {
        Some(id) => (p.src, p.dst, Some(id), None),
        None => (p.src, p.dst, p.sport, p.dport),
    }
}

impl Known {
    pub(super) fn of<'a>(variants: impl Iterator<Item = &'a [Hop]>) -> Known {
        let mut tuples = vec![];
        for hops in variants {
            for h in hops {
                for p in [&h.rx, &h.tx].into_iter().flatten() {
                    let inner = p.inner.as_deref().unwrap_or(p);
                    let t = (h.leg, tuple_of(inner));
                    if !tuples.contains(&t) {
                        tuples.push(t);
                    }
                }
            }
        }
        Known { tuples }
    }

    /// The leg of a captured frame, if it is the probe's (or its answer).
    pub(super) fn classify(&self, f: &Frame, flow: &Flow) -> Option<Leg> {
        if let Some(inner) = &f.inner {
            return self.classify(inner, flow);
        }
        if let Some(l) = classify_plain(f, flow) {
            return Some(l);
        }
        let t: Tuple = match &f.l4 {
            L4::Echo { id, .. } => (f.src, f.dst, Some(*id), None),
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => {
                (f.src, f.dst, Some(*sport), Some(*dport))
            }
            L4::Error {
                quoted: Some(q), ..
            } => {
                // An error about a packet of the forward leg, on its way back.
                let fwd = self.tuples.iter().any(|(l, x)| {
                    *l == Leg::Forward
                        && x.0 == q.src
                        && x.1 == q.dst
                        && q.proto == flow.proto.number()
                });
                return fwd.then_some(Leg::Reply);
            }
            _ => return None,
        };
        let is_echo = matches!(f.l4, L4::Echo { .. });
        if is_echo != (flow.proto == Proto::Icmp) {
            return None;
        }
        self.tuples.iter().find(|(_, x)| *x == t).map(|(l, _)| *l)
    }
}

/// Fills `observed` of every point from the frames (first matching frame per point), judges
/// each, and returns the index of the first that differs.
pub(super) fn judge(
    pts: &mut [Point],
    sock_of: &[Option<usize>],
    frames: &[Captured],
    known: &Known,
    flow: &Flow,
) -> Option<usize> {
    for c in frames {
        let Some(f) = frame::parse(&c.bytes) else {
            continue;
        };
        let Some(leg) = known.classify(&f, flow) else {
            continue;
        };
        for (i, p) in pts.iter_mut().enumerate() {
            if sock_of[i] == Some(c.socket)
                && p.outgoing == c.outgoing
                && p.report.leg == leg
                && p.report.observed.is_none()
            {
                p.report.observed = Some(Seen::observed(&f));
            }
        }
    }
    let mut first = None;
    for (i, p) in pts.iter_mut().enumerate() {
        let r = &mut p.report;
        // A point that could not be captured cannot confirm anything.
        r.agrees = sock_of[i].is_some()
            && match (&r.predicted, &r.observed) {
                (Some(a), Some(b)) => a.same_as(b),
                (Some(_), None) => !r.required,
                (None, Some(_)) => false,
                (None, None) => true,
            };
        if r.note.is_none() {
            r.note = match (&r.predicted, &r.observed) {
                (Some(_), None) if r.required => Some("predicted here, not observed".into()),
                (None, Some(_)) => Some("observed here, but predicted to stop before".into()),
                (Some(a), Some(b)) if !a.same_as(b) => Some(format!("predicted: {}", a.line)),
                _ => None,
            };
        }
        if !r.agrees && first.is_none() {
            first = Some(i);
        }
    }
    if let Some(i) = first {
        explain_divergence(pts, i);
    }
    first
}

pub(super) struct Point {
    pub(super) member_key: String,
    pub(super) ifindex: u32,
    pub(super) outgoing: bool,
    pub(super) report: PointReport,
}

pub(super) fn points(hops: &[Hop], proto: Proto) -> Vec<Point> {
    let mut out = Vec::new();
    for h in hops {
        let required = !(proto == Proto::Udp && h.leg == Leg::Reply);
        for (iface, pkt, outgoing) in [(&h.ingress, &h.rx, false), (&h.egress, &h.tx, true)] {
            let Some(i) = iface else { continue };
            if i.kind == "loopback" {
                continue;
            }
            out.push(Point {
                member_key: h.member.clone(),
                ifindex: i.index,
                outgoing,
                report: PointReport {
                    leg: h.leg,
                    hop: h.index,
                    member: h.label.clone(),
                    iface: i.name.clone(),
                    direction: if outgoing { "out" } else { "in" }.into(),
                    predicted: pkt.as_ref().map(Seen::predicted),
                    observed: None,
                    required,
                    agrees: true,
                    note: None,
                },
            });
        }
    }
    out
}

/// Which leg of `flow` a frame belongs to, if any.
fn classify_plain(f: &Frame, flow: &Flow) -> Option<Leg> {
    if let Some(inner) = &f.inner {
        return classify_plain(inner, flow);
    }
    let fwd_dst = f.dst == flow.dst;
    let rep_src = f.src == flow.dst;
    match (&f.l4, flow.proto) {
        (L4::Echo { ty: 8, id }, Proto::Icmp) if Some(*id) == flow.icmp_id && fwd_dst => {
            Some(Leg::Forward)
        }
        (L4::Echo { ty: 0, id }, Proto::Icmp) if Some(*id) == flow.icmp_id && rep_src => {
            Some(Leg::Reply)
        }
        (L4::Tcp { sport, dport, .. }, Proto::Tcp) | (L4::Udp { sport, dport }, Proto::Udp) => {
            let (s, d) = (Some(*sport), Some(*dport));
            if s == flow.sport && d == flow.dport && fwd_dst {
                Some(Leg::Forward)
            } else if s == flow.dport && d == flow.sport && rep_src {
                Some(Leg::Reply)
            } else {
                None
            }
        }
        (
            L4::Error {
                quoted: Some(q), ..
            },
            _,
        ) if rep_src && q.dst == flow.dst && q.proto == flow.proto.number() => Some(Leg::Reply),
        _ => None,
    }
}

/// Says what a first divergence suggests when the packet entered a namespace and never left
/// it: something there dropped it that the prediction does not model (netfilter).
pub(super) fn explain_divergence(pts: &mut [Point], i: usize) {
    let (before, rest) = pts.split_at_mut(i);
    let Some(p) = rest.first_mut() else { return };
    let r = &mut p.report;
    if !(r.direction == "out" && r.predicted.is_some() && r.observed.is_none()) {
        return;
    }
    let entered = before.iter().rev().find(|q| q.report.hop == r.hop);
    if entered.is_some_and(|q| q.report.observed.is_some()) || i == 0 {
        r.note = Some(format!(
            "the packet {} {} but did not leave it: something there drops it that the prediction does not know of (a table other than weft's, or weft's table differing from the plan: weft doctor); look at `nft list ruleset` in {}",
            if i == 0 { "was made in" } else { "entered" },
            r.member,
            r.member
        ));
    }
}
