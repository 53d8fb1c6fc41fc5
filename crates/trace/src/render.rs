//! Output: text for people (hops with their decisions and tcpdump-like lines), JSON for
//! scripts (the schema is `SCHEMA.md`; it is the serde form of [`Trace`]).

use std::fmt::Write;

use crate::model::{Hop, Leg, StepDetail, Trace};
use crate::verify::VerifyReport;

/// The trace as JSON (schema `weft.trace/v1`, see SCHEMA.md).
pub fn json(t: &Trace) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}

/// The trace as text.
pub fn text(t: &Trace) -> String {
    let mut o = String::new();
    let port = t.port.map(|p| format!(" port {p}")).unwrap_or_default();
    let _ = writeln!(
        o,
        "trace {} -> {} ({}{port}, {} bytes) in lab {}",
        t.from.spec, t.to.spec, t.proto, t.size, t.lab
    );
    let _ = writeln!(o, "  from {} {}", t.from.label, t.from.ip);
    let _ = writeln!(o, "  to   {} {}", t.to.label, t.to.ip);
    for leg in [Leg::Forward, Leg::Reply] {
        let hops: Vec<&Hop> = t.hops.iter().filter(|h| h.leg == leg).collect();
        if hops.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\n{leg}");
        for h in hops {
            hop_text(&mut o, h);
        }
    }
    let _ = writeln!(o);
    let both = t.forward.delivered() && t.reply.as_ref().is_some_and(|r| r.delivered());
    if both {
        let _ = writeln!(o, "result: delivered, and the answer comes back");
    } else {
        let d = &t.disposition;
        let _ = writeln!(o, "result: {} ({} leg, hop {})", d.reason, d.leg, d.hop);
        if let Some(f) = &d.fix {
            let _ = writeln!(o, "  fix: {f}");
        }
    }
    if !t.notes.is_empty() {
        let _ = writeln!(o, "notes:");
        for n in &t.notes {
            let _ = writeln!(o, "  - {n}");
        }
    }
    if let Some(v) = &t.verify {
        verify_text(&mut o, v);
    }
    o
}

fn hop_text(o: &mut String, h: &Hop) {
    let _ = writeln!(o, " [{}] {}   (netns {})", h.index, h.label, h.netns);
    for s in &h.steps {
        let mark = if s.ok { "-" } else { "x" };
        let _ = writeln!(o, "      {mark} {}", s.text);
        if let (StepDetail::Wire { .. }, Some(rx), Some(i)) = (&s.detail, &h.rx, &h.ingress) {
            let _ = writeln!(o, "        in  {}: {}", i.name, rx.line);
        }
    }
    if let (Some(tx), Some(e)) = (&h.tx, &h.egress) {
        let _ = writeln!(o, "        out {}: {}", e.name, tx.line);
    }
    if let Some(v) = &h.disposition {
        let _ = writeln!(o, "   => {}", v.reason);
    }
}

fn verify_text(o: &mut String, v: &VerifyReport) {
    let _ = writeln!(o, "\nverify: {}", v.probe.summary);
    let _ = writeln!(
        o,
        "  {:<4} {:<8} {:<28} {:<16} {:<4} {:<10} OBSERVED",
        "HOP", "LEG", "MEMBER", "IFACE", "DIR", "PREDICTED"
    );
    for (i, p) in v.points.iter().enumerate() {
        let pred = if p.predicted.is_some() {
            "packet"
        } else {
            "nothing"
        };
        let obs = match (&p.observed, &p.predicted) {
            (Some(ob), Some(pr)) if ob.same_as(pr) => "same".to_string(),
            (Some(ob), _) => ob.line.clone(),
            (None, _) => "nothing".to_string(),
        };
        let flag = if Some(i) == v.first_divergence {
            "  <-- first divergence"
        } else if !p.agrees {
            "  <-- differs"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  {:<4} {:<8} {:<28} {:<16} {:<4} {:<10} {obs}{flag}",
            p.hop,
            p.leg.to_string(),
            p.member,
            p.iface,
            p.direction,
            pred
        );
        if let Some(n) = &p.note {
            let _ = writeln!(o, "       {n}");
        }
    }
    let _ = writeln!(
        o,
        "{}",
        if v.agrees {
            "prediction and observation agree"
        } else {
            "prediction and observation DIFFER"
        }
    );
}
