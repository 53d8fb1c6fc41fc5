//! The netfilter hooks of a node hop, in kernel order: prerouting (a service's DNAT, or
//! conntrack undoing a masquerade for the answer), input or forward (policy, profile, services
//! without endpoints), output for packets made here, postrouting (masquerade, or conntrack
//! undoing a DNAT). Only nodes hold weft's table; other namespaces pass unchanged.

use std::rc::Rc;

use weft_netlink::Route;
use weft_nft::{ChainKind, CtStates, Expr, Hook};

use super::step;
use crate::disposition::Disposition;
use crate::flow::Flow;
use crate::lookup::select_source;
use crate::model::{Hop, StepDetail};
use crate::netfilter::eval::{run_hook, Final, NatAction, Outcome, Pkt};
use crate::netfilter::explain::{decider, passed, refused, what};
use crate::netfilter::{Alternatives, CtEntry, CtNat, Indexed};
use crate::snapshot::NsSnapshot;
use crate::world::{Member, World};

type Pass = Result<(), Disposition>;

fn hook_name(h: Hook) -> &'static str {
    h.nft_name()
}

fn pkt<'a>(f: &Flow, iif: Option<&'a str>, oif: Option<&'a str>) -> Pkt<'a> {
    Pkt {
        iif,
        oif,
        saddr: f.src,
        daddr: f.dst,
        proto: f.proto.number(),
        sport: f.sport,
        dport: f.dport,
        icmp: match f.proto {
            crate::model::Proto::Icmp => Some((if f.reply { 0 } else { 8 }, 0)),
            _ => None,
        },
        ct: if f.reply {
            CtStates::ESTABLISHED
        } else {
            CtStates::NEW
        },
    }
}

fn ep(ip: std::net::Ipv4Addr, port: Option<u16>) -> String {
    match port {
        Some(p) => format!("{ip}:{p}"),
        None => ip.to_string(),
    }
}

/// The table of a node hop, unless the packet is a tunnel's outer packet.
fn table(w: &mut World, m: &Member, f: &Flow) -> Option<Rc<Indexed>> {
    if f.vni.is_some() {
        return None;
    }
    w.nf_table(&m.key)
}

fn verdict_step(hop: &mut Hop, hook: Hook, o: &Outcome, ok: bool, text: String) {
    let d = o.decided_by.as_ref();
    hop.steps.push(step(
        StepDetail::Netfilter {
            hook: hook_name(hook).into(),
            chains: o.chains.clone(),
            verdict: match o.verdict {
                Final::Accept => "accept",
                Final::Drop => "drop",
                Final::Reject(_) => "reject",
            }
            .into(),
            rule: d.map(|h| h.comment.clone().unwrap_or_else(|| h.text.clone())),
            by: d.filter(|h| h.comment.is_some()).map(decider),
        },
        text,
        ok,
    ));
}

/// A filter hook: accept goes on, drop / reject ends the leg with who decided.
fn filter(
    w: &mut World,
    m: &Member,
    hop: &mut Hop,
    f: &Flow,
    hook: Hook,
    iif: Option<&str>,
    oif: Option<&str>,
) -> Pass {
    let Some(t) = table(w, m, f) else {
        return Ok(());
    };
    let Some(o) = run_hook(&t, hook, ChainKind::Filter, &pkt(f, iif, oif), w.nf.mark, 0) else {
        return Ok(());
    };
    w.nf.mark = o.mark;
    if o.verdict == Final::Accept {
        let text = format!("netfilter {}: {}", hook_name(hook), passed(&o));
        verdict_step(hop, hook, &o, true, text);
        return Ok(());
    }
    let st = w.cluster_state().cloned().unwrap_or_default();
    let d = refused(&m.name, hook_name(hook), &o, &t, &st, f);
    let text = format!("netfilter {}: {}", hook_name(hook), d.reason());
    verdict_step(hop, hook, &o, false, text);
    Err(d)
}

fn nat_step(hop: &mut Hop, hook: Hook, nat: &str, before: String, after: String, text: String) {
    hop.steps.push(step(
        StepDetail::Nat {
            hook: hook_name(hook).into(),
            nat: nat.into(),
            before,
            after,
            candidates: vec![],
            chosen: None,
        },
        text,
        true,
    ));
}

/// The endpoint (`ip:port`) an `ep_…` chain DNATs to.
fn dnat_target(t: &Indexed, chain: &str) -> String {
    t.chain(chain)
        .and_then(|c| {
            c.rules.iter().flat_map(|r| &r.exprs).find_map(|e| match e {
                Expr::Dnat { addr, port } => Some(ep(*addr, *port)),
                _ => None,
            })
        })
        .unwrap_or_else(|| chain.to_string())
}

/// A nat hook for a new connection: a service's DNAT (prerouting, output).
fn dnat(w: &mut World, m: &Member, hop: &mut Hop, f: &mut Flow, hook: Hook, iif: Option<&str>) {
    let Some(t) = table(w, m, f) else { return };
    let Some(o) = run_hook(
        &t,
        hook,
        ChainKind::Nat,
        &pkt(f, iif, None),
        w.nf.mark,
        w.nf.choice,
    ) else {
        return;
    };
    w.nf.mark = o.mark;
    let Some(NatAction::Dnat { addr, port }) = o.nat else {
        let text = format!(
            "netfilter {} (nat): no service is at {} {}",
            hook_name(hook),
            f.dst,
            what(f)
        );
        verdict_step(hop, hook, &o, true, text);
        return;
    };
    let before = ep(f.dst, f.dport);
    let orig = (f.dst, f.dport);
    f.dst = addr;
    if port.is_some() && f.dport.is_some() {
        f.dport = port;
    }
    let after = ep(f.dst, f.dport);
    w.nf.conntrack.push(CtEntry {
        member: m.key.clone(),
        nat: CtNat::Dnat {
            orig,
            new: (f.dst, f.dport),
        },
    });
    let service = o
        .hits
        .iter()
        .find_map(|h| h.comment.as_deref().filter(|c| c.starts_with("service ")))
        .map(|c| c.split(':').next().unwrap_or(c).to_string())
        .unwrap_or_else(|| "a service".into());
    let (candidates, chosen) = match &o.choice {
        Some(c) => (
            c.targets.iter().map(|x| dnat_target(&t, x)).collect(),
            Some(c.chosen),
        ),
        None => (vec![after.clone()], Some(0)),
    };
    let marked = o.hits.iter().find_map(|h| {
        h.comment
            .as_deref()
            .filter(|c| c.contains("masquerade") || c.starts_with("hairpin"))
    });
    let mut text = format!(
        "netfilter {} (nat): {service}: DNAT {before} -> {after}",
        hook_name(hook)
    );
    if candidates.len() > 1 {
        text.push_str(&format!(
            " (endpoint {} of {}: {}; the kernel picks one at random per connection)",
            chosen.unwrap_or(0) + 1,
            candidates.len(),
            candidates.join(", ")
        ));
    }
    if let Some(why) = marked {
        text.push_str(&format!("; marked for masquerade ({why})"));
    }
    if w.nf.alternatives.is_none() {
        w.nf.alternatives = Some(Alternatives {
            member: m.key.clone(),
            what: service.clone(),
            candidates: candidates.clone(),
            chosen: chosen.unwrap_or(0),
        });
    }
    hop.steps.push(step(
        StepDetail::Nat {
            hook: hook_name(hook).into(),
            nat: "dnat".into(),
            before,
            after,
            candidates,
            chosen,
        },
        text,
        true,
    ));
}

/// Prerouting of a frame arriving at a node: a service's DNAT for a new connection; for the
/// answer, conntrack undoes the masquerade it met on the way out.
pub(super) fn prerouting(w: &mut World, m: &Member, hop: &mut Hop, f: &mut Flow, iif: &str) {
    w.nf.mark = 0;
    if table(w, m, f).is_none() {
        return;
    }
    if !f.reply {
        return dnat(w, m, hop, f, Hook::Prerouting, Some(iif));
    }
    for nat in w.nf.reverse(&m.key, f) {
        if let CtNat::Snat { orig, new } = nat {
            f.dst = orig;
            nat_step(
                hop,
                Hook::Prerouting,
                "un-masquerade",
                new.to_string(),
                orig.to_string(),
                format!("conntrack: the answer to the masqueraded connection goes back to {orig} (was {new})"),
            );
        }
    }
}

/// Output of a packet made on a node: a service's DNAT (before the route is chosen).
pub(super) fn output_nat(w: &mut World, m: &Member, hop: &mut Hop, f: &mut Flow) {
    w.nf.mark = 0;
    if !f.reply {
        dnat(w, m, hop, f, Hook::Output, None);
    }
}

/// Local delivery on a node: the input hook, then conntrack undoing a DNAT for the answer.
pub(super) fn input(w: &mut World, m: &Member, hop: &mut Hop, f: &mut Flow, iif: &str) -> Pass {
    filter(w, m, hop, f, Hook::Input, Some(iif), None)?;
    undo_dnat(w, m, hop, f, Hook::Input);
    Ok(())
}

/// A forwarded packet on a node: the forward hook (policy and profiles of workloads).
pub(super) fn forward(
    w: &mut World,
    m: &Member,
    hop: &mut Hop,
    f: &Flow,
    iif: &str,
    oif: &str,
) -> Pass {
    filter(w, m, hop, f, Hook::Forward, Some(iif), Some(oif))
}

/// A packet made here: the filter output hook.
pub(super) fn output(w: &mut World, m: &Member, hop: &mut Hop, f: &Flow, oif: &str) -> Pass {
    filter(w, m, hop, f, Hook::Output, None, Some(oif))
}

fn undo_dnat(w: &mut World, m: &Member, hop: &mut Hop, f: &mut Flow, hook: Hook) {
    if !f.reply {
        return;
    }
    for nat in w.nf.reverse(&m.key, f) {
        if let CtNat::Dnat { orig, new } = nat {
            f.src = orig.0;
            if orig.1.is_some() {
                f.sport = orig.1;
            }
            nat_step(
                hop,
                hook,
                "un-dnat",
                ep(new.0, new.1),
                ep(orig.0, orig.1),
                format!(
                    "conntrack: the answer from endpoint {} leaves as the service {} the client asked",
                    ep(new.0, new.1),
                    ep(orig.0, orig.1)
                ),
            );
        }
    }
}

/// Postrouting: masquerade for a new connection (by mark, or natOutgoing); for the answer,
/// conntrack undoes the DNAT.
pub(super) fn postrouting(
    w: &mut World,
    m: &Member,
    s: &NsSnapshot,
    hop: &mut Hop,
    f: &mut Flow,
    oif: &str,
    route: &Route,
) {
    let Some(t) = table(w, m, f) else { return };
    if f.reply {
        return undo_dnat(w, m, hop, f, Hook::Postrouting);
    }
    let Some(o) = run_hook(
        &t,
        Hook::Postrouting,
        ChainKind::Nat,
        &pkt(f, None, Some(oif)),
        w.nf.mark,
        0,
    ) else {
        return;
    };
    if o.nat != Some(NatAction::Masquerade) {
        return;
    }
    let mut r = route.clone();
    r.prefsrc = None;
    let Some(new) = select_source(s, &r, f.dst) else {
        return;
    };
    let orig = f.src;
    f.src = new;
    w.nf.conntrack.push(CtEntry {
        member: m.key.clone(),
        nat: CtNat::Snat { orig, new },
    });
    let why = o
        .decided_by
        .as_ref()
        .and_then(|h| h.comment.clone())
        .unwrap_or_else(|| "masquerade".into());
    hop.steps.push(step(
        StepDetail::Nat {
            hook: "postrouting".into(),
            nat: "masquerade".into(),
            before: orig.to_string(),
            after: new.to_string(),
            candidates: vec![],
            chosen: None,
        },
        format!("netfilter postrouting (nat): masquerade {orig} -> {new}, the node's address for leaving via {oif} ({why})"),
        true,
    ));
}
