//! `weft trace FROM TO`: resolve, simulate both legs, optionally verify, and say plainly what
//! the trace does not know.

use anyhow::{bail, Context, Result};

use crate::disposition::Verdict;
use crate::endpoints::LabView;
use crate::flow::{Flow, DEFAULT_TTL};
use crate::live::LiveSource;
use crate::model::{Proto, Trace, SCHEMA};
use crate::simulate::both_legs;
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

/// Traces `from` → `to` in lab `lab`.
pub fn trace(lab: &str, from: &str, to: &str, o: &TraceOptions) -> Result<Trace> {
    let view = LabView::open(lab)?;
    let (from_ep, from_key) = view
        .resolve(from, true)
        .with_context(|| format!("FROM {from}"))?;
    let (to_ep, to_key) = view
        .resolve(to, false)
        .with_context(|| format!("TO {to}"))?;
    let from_key = from_key.context("FROM resolved to no namespace")?;
    let flow = probe_flow(o, from_ep.ip, to_ep.ip)?;

    let mut world = World::new(
        view.members.clone(),
        Box::new(LiveSource::new(view.netns.clone())),
    )
    .with_plan(view.cluster.clone(), view.config.encap);
    let mut hops = Vec::new();
    let (fwd, reply) = both_legs(&mut world, &from_key, flow.clone(), &mut hops);

    let mut notes = Vec::new();
    if to_key.is_none() {
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
    if fwd.flow.src != from_ep.ip {
        notes.push(format!(
            "{} sends from {}, the address its kernel picks for this route (not {})",
            from_ep.label, fwd.flow.src, from_ep.ip
        ));
    }
    if o.proto != Proto::Icmp && fwd.verdict.delivered() {
        notes.push(format!(
            "whether a socket listens on {} port {} is not checked: the answer is a SYN-ACK/reply if one does, a RST / ICMP port unreachable if not",
            o.proto,
            o.port.unwrap_or(0)
        ));
    }
    notes.push("netfilter (policy, services, NAT) is not evaluated by this version".into());

    let disposition: Verdict = match &reply {
        Some(r) if fwd.verdict.delivered() => r.verdict.clone(),
        _ => fwd.verdict.clone(),
    };
    let predicted_answer =
        fwd.verdict.delivered() && reply.as_ref().is_some_and(|r| r.verdict.delivered());
    let verify = if o.verify {
        let mut src = LiveSource::new(view.netns.clone());
        let sent = Flow {
            src: fwd.flow.src,
            ..flow.clone()
        };
        Some(crate::verify::verify(
            &mut src,
            &from_key,
            &hops,
            &sent,
            predicted_answer,
        )?)
    } else {
        None
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
