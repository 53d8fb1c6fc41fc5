//! `--verify`: packet sockets on every interface of the predicted path (and where the packet
//! is predicted to stop) are opened first, then the probe is sent from the source namespace;
//! what each socket saw is compared with the prediction, hop by hop, and the first divergence
//! is marked.

mod capture;
mod compare;
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
use crate::model::{Hop, Leg, Packet};
pub use probe::{echo_request, ProbeOutcome};

use capture::{Captured, PacketSocket};
use compare::{judge, points, Known, Point};
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

    pub(super) fn predicted(p: &Packet) -> Seen {
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

    pub(super) fn observed(f: &Frame) -> Seen {
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
    /// Every frame captured, for `-o pcap` (not in the JSON).
    #[serde(skip)]
    pub capture: Capture,
}

/// The raw capture of a verification: the interfaces listened on and the frames they saw.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    /// Per interface: its name and where it is (`cali1234 in node master`).
    pub interfaces: Vec<(String, String)>,
    /// (interface index in `interfaces`, outgoing, microseconds since the epoch, frame).
    pub frames: Vec<(usize, bool, u64, Vec<u8>)>,
}

/// Runs the probe from `from` and captures on every point of `hops`.
pub fn verify(
    src: &mut LiveSource,
    from: &str,
    hops: &[Hop],
    flow: &Flow,
    predicted_answer: bool,
) -> Result<VerifyReport> {
    let (_, r) = verify_any(src, from, &[(hops, predicted_answer)], flow)?;
    Ok(r)
}

/// Like [`verify`] for a path with alternatives (a service's endpoints, chosen at random per
/// connection): one probe, captures on the points of every alternative, and the report of the
/// alternative the kernel took (the first that agrees, else the one that differs least), with
/// its index.
pub fn verify_any(
    src: &mut LiveSource,
    from: &str,
    variants: &[(&[Hop], bool)],
    flow: &Flow,
) -> Result<(usize, VerifyReport)> {
    let mut all: Vec<Vec<Point>> = variants
        .iter()
        .map(|(hops, _)| points(hops, flow.proto))
        .collect();
    let known = Known::of(variants.iter().map(|(h, _)| *h));
    // One socket per (member, interface), shared by the alternatives.
    let mut keys: Vec<(String, u32)> = Vec::new();
    let mut sockets = Vec::new();
    let mut sock_of: Vec<Vec<Option<usize>>> = Vec::new();
    let mut names: Vec<(String, String)> = Vec::new();
    for pts in &mut all {
        let mut of = Vec::new();
        for p in pts.iter_mut() {
            let k = (p.member_key.clone(), p.ifindex);
            if let Some(i) = keys.iter().position(|x| *x == k) {
                of.push(Some(i));
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
                    names.push((p.report.iface.clone(), p.report.member.clone()));
                    of.push(Some(sockets.len() - 1));
                }
                Err(e) => {
                    p.report.note = Some(format!("cannot capture here: {e:#}"));
                    of.push(None);
                }
            }
        }
        sock_of.push(of);
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
        let mut matched: Vec<Vec<bool>> = all.iter().map(|p| vec![false; p.len()]).collect();
        let mut satisfied_at: Option<Instant> = None;
        let frames = capture::capture(&sockets, CAPTURE_LIMIT, |caps: &[Captured]| {
            for c in &caps[seen_until..] {
                let Some(f) = frame::parse(&c.bytes) else {
                    continue;
                };
                let Some(leg) = known.classify(&f, flow) else {
                    continue;
                };
                for (v, pts) in all.iter().enumerate() {
                    for (i, p) in pts.iter().enumerate() {
                        if sock_of[v][i] == Some(c.socket)
                            && p.outgoing == c.outgoing
                            && p.report.leg == leg
                        {
                            matched[v][i] = true;
                        }
                    }
                }
            }
            seen_until = caps.len();
            let any = all.iter().zip(&matched).any(|(pts, m)| {
                pts.iter()
                    .zip(m)
                    .all(|(p, m)| *m || p.report.predicted.is_none() || !p.report.required)
            });
            if finished.load(Ordering::SeqCst) && any {
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

    let mut best: Option<(usize, usize, VerifyReport)> = None;
    for (v, mut pts) in all.into_iter().enumerate() {
        let first = judge(&mut pts, &sock_of[v], &frames, &known, flow);
        let report = report(pts, first, outcome.clone(), variants[v].1, captured_ms);
        let differing =
            report.points.iter().filter(|p| !p.agrees).count() + usize::from(!report.agrees);
        if best.as_ref().is_none_or(|(_, d, _)| differing < *d) {
            best = Some((v, differing, report));
        }
    }
    let (v, _, mut r) = best.context("no path to verify")?;
    r.capture = Capture {
        interfaces: names,
        frames: frames
            .into_iter()
            .map(|c| (c.socket, c.outgoing, c.at_us, c.bytes))
            .collect(),
    };
    Ok((v, r))
}

fn report(
    pts: Vec<Point>,
    first: Option<usize>,
    outcome: ProbeOutcome,
    predicted_answer: bool,
    captured_ms: u64,
) -> VerifyReport {
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
    VerifyReport {
        agrees: first.is_none() && answer_ok,
        probe: ProbeReport {
            outcome,
            predicted_answer,
            summary,
        },
        points: pts.into_iter().map(|p| p.report).collect(),
        first_divergence: first,
        captured_ms,
        capture: Capture::default(),
    }
}
