//! `-o svg`: the flow diagram of a trace, like the seeds draw by hand: one box per namespace
//! crossed (its kind, name and the interfaces in and out), the forward leg on the upper row and
//! the answer on the lower one, and on every arrow the headers the packet carries on that
//! wire, rewritten fields marked. Plain SVG text, no dependency.

use std::fmt::Write;

use crate::model::{Hop, Leg, MemberKind, Trace};

const BOX_W: usize = 250;
const BOX_H: usize = 96;
const GAP: usize = 130;
const ROW_H: usize = 300;
const TOP: usize = 90;

/// Escapes text for XML content and attributes.
pub fn esc(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn fill(k: MemberKind) -> &'static str {
    match k {
        MemberKind::Container => "#e8f4ea",
        MemberKind::Node => "#e6eefb",
        MemberKind::Fabric => "#f2f2f2",
        MemberKind::Gateway | MemberKind::External => "#fbf1e3",
    }
}

fn hop_box(out: &mut String, h: &Hop, x: usize, y: usize) {
    let stop = h.disposition.as_ref().is_some_and(|d| !d.delivered());
    let _ = write!(
        out,
        r#"<g class="hop" id="hop{}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{}" stroke="{}" stroke-width="{}"/>"#,
        h.index,
        fill(h.kind),
        if stop { "#c0392b" } else { "#555" },
        if stop { 3 } else { 1 }
    );
    let lines = [
        format!("[{}] {}", h.index, h.label),
        format!(
            "in: {}",
            h.ingress
                .as_ref()
                .map(|i| i.name.as_str())
                .unwrap_or("(made here)")
        ),
        format!(
            "out: {}",
            h.egress.as_ref().map(|i| i.name.as_str()).unwrap_or("-")
        ),
        h.disposition
            .as_ref()
            .map(|d| d.disposition.kind().replace('_', " "))
            .unwrap_or_default(),
    ];
    for (i, l) in lines.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="{}"{}>{}</text>"#,
            x + 10,
            y + 22 + i * 20,
            if i == 0 { 14 } else { 12 },
            if i == 0 { r#" font-weight="bold""# } else { "" },
            esc(&l.chars().take(36).collect::<String>())
        );
    }
    out.push_str("</g>");
}

/// The arrow from a hop to the next, and under the sending box the headers on that wire.
fn arrow(
    out: &mut String,
    h: &Hop,
    (x1, x2): (usize, usize),
    y: usize,
    leftwards: bool,
    label_x: usize,
) {
    let Some(tx) = &h.tx else { return };
    let (a, b) = if leftwards { (x2, x1) } else { (x1, x2) };
    let _ = write!(
        out,
        r##"<g class="wire"><line x1="{a}" y1="{y}" x2="{b}" y2="{y}" stroke="#333" stroke-width="2" marker-end="url(#arrow)"/>"##
    );
    // The headers, split where tcpdump's line has its parts.
    let parts: Vec<&str> = tx.line.splitn(3, ", ").collect();
    for (i, p) in parts.iter().enumerate() {
        let _ = write!(
            out,
            r#"<text x="{}" y="{}" font-size="9" class="headers">{}</text>"#,
            label_x,
            y + BOX_H / 2 + 18 + i * 12,
            esc(&p.chars().take(64).collect::<String>())
        );
    }
    out.push_str("</g>");
}

/// The SVG document of a trace.
pub fn svg(t: &Trace) -> String {
    let fwd: Vec<&Hop> = t.hops.iter().filter(|h| h.leg == Leg::Forward).collect();
    let rep: Vec<&Hop> = t.hops.iter().filter(|h| h.leg == Leg::Reply).collect();
    let cols = fwd.len().max(rep.len()).max(1);
    let width = 40 + cols * (BOX_W + GAP);
    let height = TOP + 2 * ROW_H;
    let x_of = |i: usize| 20 + i * (BOX_W + GAP);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="monospace">
<defs><marker id="arrow" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#333"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>
<text x="20" y="30" font-size="16" font-weight="bold">{}</text>
<text x="20" y="52" font-size="12">{}</text>
"##,
        esc(&format!(
            "weft trace {} -> {} ({}{})",
            t.from.spec,
            t.to.spec,
            t.proto,
            t.port.map(|p| format!(" port {p}")).unwrap_or_default()
        )),
        esc(&format!(
            "{} ({} of lab {})",
            t.disposition.reason, t.disposition.leg, t.lab
        ))
    );
    for (row, hops, leftwards) in [(0usize, &fwd, false), (1, &rep, true)] {
        let y = TOP + row * ROW_H;
        let _ = write!(
            out,
            r#"<text x="20" y="{}" font-size="13" font-style="italic">{}</text>"#,
            y - 8,
            if row == 0 { "forward" } else { "reply" }
        );
        let n = hops.len();
        for (i, h) in hops.iter().enumerate() {
            // The answer goes right to left, under the hops it crosses.
            let col = if leftwards { n - 1 - i } else { i };
            hop_box(&mut out, h, x_of(col), y);
            if i + 1 < n {
                let (x1, x2) = if leftwards {
                    (x_of(col - 1) + BOX_W, x_of(col))
                } else {
                    (x_of(col) + BOX_W, x_of(col + 1))
                };
                arrow(
                    &mut out,
                    h,
                    (x1, x2),
                    y + BOX_H / 2,
                    leftwards,
                    x_of(col) + 4,
                );
            }
        }
    }
    out.push_str("</svg>\n");
    out
}
