//! `--verify`: packet sockets on every interface of the predicted path (and where the packet
//! is predicted to stop) are opened first, then the probe is sent from the source namespace;
//! what each socket saw is compared with the prediction, hop by hop, and the first divergence
//! is marked.

mod capture;
mod frame;
mod probe;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use weft_netlink::{format_mac, run_in_netns};

use crate::flow::Flow;
use crate::live::LiveSource;
use crate::model::{Hop, Leg, Packet, Proto};
pub use probe::{echo_request, ProbeOutcome};

use capture::{Captured, PacketSocket};
use frame::{Frame, L4};

/// How long captures run at most.
pub const CAPTURE_LIMIT: Duration = Duration::from_secs(2);
/// How long the probe waits for its answer.
const PROBE_LIMIT: Duration = Duration::from_millis(1500);
/// Quiet time after everything predicted was seen, to catch what was not predicted.
const LINGER: Duration = Duration::from_millis(150);

/// The headers seen (or predicted) at one capture point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Seen {
    pub src_mac: String,
    pub dst_mac: String,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub line: String,
    /// The encapsulated frame of a tunnel packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner: Option<Box<Seen>>,
}

impl Seen {
    /// True when the headers that matter (MACs, addresses, TTL) are equal.
    pub fn same_as(&self, o: &Seen) -> bool {
        (&self.src_mac, &self.dst_mac, self.src, self.dst, self.ttl)
            == (&o.src_mac, &o.dst_mac, o.src, o.dst, o.ttl)
            && match (&self.inner, &o.inner) {
                (Some(a), Some(b)) => a.same_as(b),
                (None, None) => true,
                _ => false,
            }
    }

    fn predicted(p: &Packet) -> Seen {
        Seen {
            src_mac: p.src_mac.clone(),
            dst_mac: p.dst_mac.clone(),
            src: p.src,
            dst: p.dst,
            ttl: p.ttl,
            line: p.line.clone(),
            inner: p.inner.as_deref().map(|i| Box::new(Seen::predicted(i))),
        }
    }

    fn observed(f: &Frame) -> Seen {
        let (sm, dm) = (format_mac(&f.src_mac), format_mac(&f.dst_mac));
        let l4 = match &f.l4 {
            L4::Echo { ty, id } => format!(
                "ICMP echo {}, id {id}",
                if *ty == 8 { "request" } else { "reply" }
            ),
            L4::Error { ty, code, .. } => format!("ICMP error type {ty} code {code}"),
            L4::Tcp {
                sport,
                dport,
                flags,
            } => format!("TCP {sport} > {dport} flags {flags:#04x}"),
            L4::Udp { sport, dport } => format!("UDP {sport} > {dport}"),
            L4::Other => format!("protocol {}", f.proto),
        };
        let inner = f.inner.as_deref().map(|i| Box::new(Seen::observed(i)));
        let mut line = format!(
            "{sm} > {dm}, ethertype IPv4, {} > {}: {l4}, length {} (ttl {})",
            f.src, f.dst, f.len, f.ttl
        );
        if let Some(i) = &inner {
            line.push_str(&format!(" | {}", i.line));
        }
        Seen {
            line,
            src_mac: sm,
            dst_mac: dm,
            src: f.src,
            dst: f.dst,
            ttl: f.ttl,
            inner,
        }
    }
}

/// One interface of the path, predicted and observed.
#[derive(Clone, Debug, Serialize)]
pub struct PointReport {
    pub leg: Leg,
    pub hop: usize,
    pub member: String,
    pub iface: String,
    /// `in` or `out`.
    pub direction: String,
    /// None: the packet is predicted NOT to show here.
    pub predicted: Option<Seen>,
    pub observed: Option<Seen>,
    /// False for answers that may legitimately not come (UDP).
    pub required: bool,
    pub agrees: bool,
    pub note: Option<String>,
}

/// The probe as a whole.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeReport {
    #[serde(flatten)]
    pub outcome: ProbeOutcome,
    /// Whether the prediction says an answer comes back.
    pub predicted_answer: bool,
    pub summary: String,
}

/// Observation beside prediction.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyReport {
    pub agrees: bool,
    pub probe: ProbeReport,
    pub points: Vec<PointReport>,
    /// Index in `points` of the first one that differs.
    pub first_divergence: Option<usize>,
    pub captured_ms: u64,
}

struct Point {
    member_key: String,
    ifindex: u32,
    outgoing: bool,
    report: PointReport,
}

fn points(hops: &[Hop], proto: Proto) -> Vec<Point> {
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
fn classify(f: &Frame, flow: &Flow) -> Option<Leg> {
    if let Some(inner) = &f.inner {
        return classify(inner, flow);
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
fn explain_divergence(pts: &mut [Point], i: usize) {
    let (before, rest) = pts.split_at_mut(i);
    let Some(p) = rest.first_mut() else { return };
    let r = &mut p.report;
    if !(r.direction == "out" && r.predicted.is_some() && r.observed.is_none()) {
        return;
    }
    let entered = before.iter().rev().find(|q| q.report.hop == r.hop);
    if entered.is_some_and(|q| q.report.observed.is_some()) || i == 0 {
        r.note = Some(format!(
            "the packet {} {} but did not leave it: something there drops it that this version does not model (netfilter: policy, services, NAT); look at `nft list ruleset` in {}",
            if i == 0 { "was made in" } else { "entered" },
            r.member,
            r.member
        ));
    }
}

/// Runs the probe from `from` and captures on every point of `hops`.
pub fn verify(
    src: &mut LiveSource,
    from: &str,
    hops: &[Hop],
    flow: &Flow,
    predicted_answer: bool,
) -> Result<VerifyReport> {
    let mut pts = points(hops, flow.proto);
    // One socket per (member, interface).
    let mut keys: Vec<(String, u32)> = Vec::new();
    let mut sockets = Vec::new();
    let mut sock_of = Vec::new();
    for p in &mut pts {
        let k = (p.member_key.clone(), p.ifindex);
        if let Some(i) = keys.iter().position(|x| *x == k) {
            sock_of.push(Some(i));
            continue;
        }
        let opened = src.netns(&p.member_key).and_then(|ns| {
            PacketSocket::open(
                ns,
                p.ifindex,
                &format!("{} of {}", p.report.iface, p.report.member),
            )
        });
        match opened {
            Ok(s) => {
                keys.push(k);
                sockets.push(s);
                sock_of.push(Some(sockets.len() - 1));
            }
            Err(e) => {
                p.report.note = Some(format!("cannot capture here: {e:#}"));
                sock_of.push(None);
            }
        }
    }
    let src_ns = src
        .netns(from)?
        .try_clone()
        .context("duplicate the source namespace handle")?;
    let finished = AtomicBool::new(false);
    let start = Instant::now();
    let (outcome, frames) = std::thread::scope(|s| {
        let prober = s.spawn(|| {
            let r = run_in_netns(&src_ns, || probe::send(flow, PROBE_LIMIT));
            finished.store(true, Ordering::SeqCst);
            r
        });
        let mut seen_until = 0usize;
        let mut matched = vec![false; pts.len()];
        let mut satisfied_at: Option<Instant> = None;
        let frames = capture::capture(&sockets, CAPTURE_LIMIT, |caps: &[Captured]| {
            for c in &caps[seen_until..] {
                let Some(f) = frame::parse(&c.bytes) else {
                    continue;
                };
                let Some(leg) = classify(&f, flow) else {
                    continue;
                };
                for (i, p) in pts.iter().enumerate() {
                    if sock_of[i] == Some(c.socket)
                        && p.outgoing == c.outgoing
                        && p.report.leg == leg
                    {
                        matched[i] = true;
                    }
                }
            }
            seen_until = caps.len();
            let all = pts
                .iter()
                .zip(&matched)
                .all(|(p, m)| *m || p.report.predicted.is_none() || !p.report.required);
            if finished.load(Ordering::SeqCst) && all {
                let at = *satisfied_at.get_or_insert_with(Instant::now);
                return at.elapsed() >= LINGER;
            }
            false
        });
        let outcome = match prober.join() {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => ProbeOutcome {
                sent: false,
                answered: None,
                error: Some(format!("{e:#}")),
            },
            Err(_) => ProbeOutcome {
                sent: false,
                answered: None,
                error: Some("the probe thread panicked".into()),
            },
        };
        (outcome, frames)
    });
    let captured_ms = start.elapsed().as_millis() as u64;

    // First matching frame per point.
    for c in &frames {
        let Some(f) = frame::parse(&c.bytes) else {
            continue;
        };
        let Some(leg) = classify(&f, flow) else {
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
        explain_divergence(&mut pts, i);
    }
    let answer_ok = match outcome.answered {
        Some(a) => a == predicted_answer,
        None => true,
    };
    let summary = match (&outcome.error, outcome.sent, outcome.answered) {
        (Some(e), false, _) => format!("the probe could not be sent: {e}"),
        (_, true, Some(true)) => "probe sent; the answer came back".to_string(),
        (_, true, Some(false)) => format!(
            "probe sent; no answer within {} ms",
            PROBE_LIMIT.as_millis()
        ),
        (_, true, None) => "probe sent; no answer (none is certain for UDP)".to_string(),
        (_, false, _) => "the probe was not sent".to_string(),
    };
    let summary = if answer_ok {
        summary
    } else {
        format!(
            "{summary}, but the prediction says {}",
            if predicted_answer {
                "it comes back"
            } else {
                "it does not"
            }
        )
    };
    let agrees = first.is_none() && answer_ok;
    Ok(VerifyReport {
        agrees,
        probe: ProbeReport {
            outcome,
            predicted_answer,
            summary,
        },
        points: pts.into_iter().map(|p| p.report).collect(),
        first_divergence: first,
        captured_ms,
    })
}
