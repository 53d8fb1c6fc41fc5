//! `weft trace FROM TO`: resolve, simulate both legs, optionally verify, and say plainly what
//! the trace does not know.

use anyhow::{bail, Context, Result};

use crate::disposition::{Disposition, Verdict};
use crate::endpoints::LabView;
use crate::flow::{Flow, DEFAULT_TTL};
use crate::live::LiveSource;
use crate::model::{Endpoint, Hop, Proto, Trace, SCHEMA};
use crate::service_target::service_port;
use crate::simulate::{both_legs, LegOutcome};
use crate::world::World;

/// What to trace besides FROM and TO.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    pub proto: Proto,
    /// Destination port (tcp and udp).
    pub port: Option<u16>,
    /// IP total length of the probe (icmp and udp); default 84 (like ping).
    pub size: Option<u16>,
    /// Send a real probe and compare.
    pub verify: bool,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            proto: Proto::Icmp,
            port: None,
            size: None,
            verify: false,
        }
    }
}

/// A number that differs from run to run (echo ids, source ports).
fn jitter() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t ^ std::process::id().rotate_left(16)
}

/// The probe's packet for `o`, from `src` to `dst`.
pub fn probe_flow(
    o: &TraceOptions,
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
) -> Result<Flow> {
    let j = jitter();
    let (sport, dport, icmp_id, len) = match o.proto {
        Proto::Icmp => {
            if o.port.is_some() {
                bail!("--port is for tcp and udp; ICMP has no ports (use --proto tcp or udp)");
            }
            (
                None,
                None,
                Some((j & 0xffff) as u16 | 1),
                o.size.unwrap_or(84),
            )
        }
        Proto::Tcp | Proto::Udp => {
            let Some(port) = o.port else {
                bail!("--proto {} needs --port N (the destination port)", o.proto);
            };
            if port == 0 {
                bail!("--port 0 is not a port; use 1-65535");
            }
            if o.proto == Proto::Tcp && o.size.is_some() {
                bail!("--size applies to icmp and udp; a TCP probe is a SYN of fixed size");
            }
            let sport = 33000 + (j % 27000) as u16;
            let len = if o.proto == Proto::Tcp {
                60
            } else {
                o.size.unwrap_or(32)
            };
            (Some(sport), Some(port), None, len)
        }
    };
    if len < 28 {
        bail!("--size {len}: an IPv4 probe is at least 28 bytes");
    }
    Ok(Flow {
        src,
        dst,
        proto: o.proto,
        sport,
        dport,
        icmp_id,
        len,
        ttl: DEFAULT_TTL,
        reply: false,
        vni: None,
    })
}

/// How many of a service's endpoints `--verify` follows at most (each is one more prediction).
const MAX_ALTERNATIVES: usize = 16;

/// Whether the sender gets an answer: delivered both ways, or refused with an ICMP error the
/// probe sees as one (a service without endpoints; a reject for UDP).
fn answers(fwd: &LegOutcome, reply: &Option<LegOutcome>, proto: Proto) -> bool {
    match &fwd.verdict.disposition {
        Disposition::NoEndpoints { .. } => proto != Proto::Icmp,
        Disposition::Denied(d) => d.action == "reject" && proto == Proto::Udp,
        d => d.delivered() && reply.as_ref().is_some_and(|r| r.verdict.delivered()),
    }
}

/// TO as written: a container, node, lab member, address, or a service (by name or ClusterIP).
fn resolve_to(
    view: &mut LabView,
    to: &str,
    o: &mut TraceOptions,
    notes: &mut Vec<String>,
) -> Result<(Endpoint, Option<String>)> {
    let svc = if to.trim().starts_with("svc:") {
        Some(view.resolve_service(to)?)
    } else {
        let (ep, key) = view.resolve(to, false)?;
        if key.is_some() {
            return Ok((ep, key));
        }
        match view.service_at(to, ep.ip)? {
            Some(t) => Some(t),
            None => return Ok((ep, key)),
        }
    };
    let Some(t) = svc else { unreachable!() };
    let (proto, port, note) = service_port(&t, o.proto, o.port)?;
    o.proto = proto;
    o.port = Some(port);
    notes.extend(note);
    Ok((t.endpoint, None))
}

/// Traces `from` → `to` in lab `lab`.
pub fn trace(lab: &str, from: &str, to: &str, o: &TraceOptions) -> Result<Trace> {
    let mut view = LabView::open_for_trace(lab)?;
    let (from_ep, from_key) = view
        .resolve(from, true)
        .with_context(|| format!("FROM {from}"))?;
    let mut notes = Vec::new();
    let mut o = o.clone();
    let (to_ep, to_key) =
        resolve_to(&mut view, to, &mut o, &mut notes).with_context(|| format!("TO {to}"))?;
    // The node tables keep only the services a packet to TO can meet; those are all the view
    // needs to hold.
    view.load_services_for(&[to_ep.ip])?;
    let from_key = from_key.context("FROM resolved to no namespace")?;
    let flow = probe_flow(&o, from_ep.ip, to_ep.ip)?;

    let mut world = World::new(
        view.members.clone(),
        Box::new(LiveSource::new(view.netns.clone())),
    )
    .with_plan(std::mem::take(&mut view.cluster), view.config.encap);
    world.nf.targets = Some(vec![to_ep.ip]);
    let mut hops = Vec::new();
    let (mut fwd, mut reply) = both_legs(&mut world, &from_key, flow.clone(), &mut hops);
    let alts = world.nf.alternatives.clone();

    // With --verify, every endpoint the kernel may pick is predicted, so that one probe can
    // tell which one it took.
    let mut variants = vec![];
    if let (true, Some(a)) = (o.verify, &alts) {
        for i in 1..a.candidates.len().min(MAX_ALTERNATIVES) {
            world.nf.restart(i);
            let mut h = Vec::new();
            let (f, r) = both_legs(&mut world, &from_key, flow.clone(), &mut h);
            variants.push((h, f, r));
        }
    }

    if to_key.is_none() && to_ep.kind == "address" {
        notes.push(format!(
            "{} belongs to no container, node or lab member weft knows: the path is followed as far as the routes and ARP go",
            to_ep.ip
        ));
    }
    if let (Some(at), Some(want)) = (&fwd.delivered_to, &to_key) {
        if at != want {
            notes.push(format!(
                "delivered to {at}, but TO is {want}: the address is held by another namespace too"
            ));
        }
    }
    let origin_src = origin_source(&hops).unwrap_or(flow.src);
    if origin_src != from_ep.ip {
        notes.push(format!(
            "{} sends from {}, the address its kernel picks for this route (not {})",
            from_ep.label, origin_src, from_ep.ip
        ));
    }
    if o.proto != Proto::Icmp && fwd.verdict.delivered() {
        notes.push(format!(
            "whether a socket listens on {} port {} is not checked: the answer is a SYN-ACK/reply if one does, a RST / ICMP port unreachable if not",
            o.proto,
            o.port.unwrap_or(0)
        ));
    }
    notes.push("netfilter: weft's table (inet weft) is evaluated as each node's agent builds it from the store (weft doctor says when a node's kernel differs); other tables are not read".into());

    let verify = if o.verify {
        let mut src = LiveSource::new(view.netns.clone());
        let sent_flow = Flow {
            src: origin_src,
            ..flow.clone()
        };
        let mut all: Vec<(&[Hop], bool)> = vec![(&hops, answers(&fwd, &reply, o.proto))];
        for (h, f, r) in &variants {
            all.push((h, answers(f, r, o.proto)));
        }
        let (chosen, report) = crate::verify::verify_any(&mut src, &from_key, &all, &sent_flow)?;
        if chosen > 0 {
            let (h, f, r) = variants.swap_remove(chosen - 1);
            hops = h;
            fwd = f;
            reply = r;
        }
        if let Some(a) = &alts {
            if a.candidates.len() > 1 {
                notes.push(format!(
                    "{} has {} endpoints ({}); the probe's connection was sent to {} (endpoint {} of {}), the path shown",
                    a.what,
                    a.candidates.len(),
                    a.candidates.join(", "),
                    a.candidates.get(chosen).cloned().unwrap_or_default(),
                    chosen + 1,
                    a.candidates.len()
                ));
            }
        }
        Some(report)
    } else {
        if let Some(a) = alts.as_ref().filter(|a| a.candidates.len() > 1) {
            notes.push(format!(
                "{} has {} endpoints ({}); each new connection goes to one at random: the path to the first is shown (--verify shows the one a real connection takes)",
                a.what,
                a.candidates.len(),
                a.candidates.join(", ")
            ));
        }
        None
    };

    let disposition: Verdict = match &reply {
        Some(r) if fwd.verdict.delivered() => r.verdict.clone(),
        _ => fwd.verdict.clone(),
    };
    Ok(Trace {
        schema: SCHEMA.into(),
        lab: lab.to_string(),
        from: from_ep,
        to: to_ep,
        proto: o.proto,
        port: o.port,
        size: flow.len,
        hops,
        forward: fwd.verdict.clone(),
        reply: reply.map(|r| r.verdict),
        disposition,
        notes,
        verify,
    })
}

/// The source address the sender's kernel picked (before any NAT).
fn origin_source(hops: &[Hop]) -> Option<std::net::Ipv4Addr> {
    hops.first()?.steps.iter().find_map(|s| match s.detail {
        crate::model::StepDetail::Originate { src, .. } => Some(src),
        _ => None,
    })
}
