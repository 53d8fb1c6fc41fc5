//! The wire between two namespaces: a veth pair, possibly through a bridge (a hop of its
//! own, switching by its fdb or flooding), with the MTU checks of each device.

use weft_netlink::Link;

use super::{iface, new_hop, step, Arrival, VETH_RX_SLACK};
use crate::disposition::Disposition;
use crate::flow::{unmarked, Flow};
use crate::model::{Hop, Leg, Packet, StepDetail};
use crate::world::{Attach, BridgeTransit, Member, World};

/// The wire from `out` of `m` to the receiving interface, with the bridge hop in between.
#[allow(clippy::too_many_arguments)]
pub(super) fn cross(
    w: &mut World,
    leg: Leg,
    m: &Member,
    out: &Link,
    attach: Attach,
    tx: Packet,
    flow: &Flow,
    hops: &mut Vec<Hop>,
) -> Result<Arrival, Box<(Hop, Disposition)>> {
    let mut sender_mtu = out.mtu;
    let mut from = format!("{} of {}", out.name, m.label);
    if let Some(t) = &attach.bridge {
        let Some(bm) = w.member(&t.member).cloned() else {
            return Err(Box::new((
                new_hop(hops, leg, m),
                Disposition::Unsupported {
                    member: t.member.clone(),
                    what: "a bridge outside the lab".into(),
                },
            )));
        };
        let mut hop = new_hop(hops, leg, &bm);
        hop.ingress = Some(iface(&t.ingress));
        let same = unmarked(&tx);
        hop.steps.push(step(
            StepDetail::Wire {
                from: from.clone(),
                to: t.ingress.name.clone(),
                member: bm.name.clone(),
            },
            format!("arrives on bridge port {} from {from}", t.ingress.name),
            true,
        ));
        if u32::from(flow.len) > t.ingress.mtu + VETH_RX_SLACK {
            hop.steps.push(step(
                StepDetail::Mtu {
                    iface: t.ingress.name.clone(),
                    mtu: t.ingress.mtu,
                    len: flow.len,
                    pass: false,
                },
                format!(
                    "{} (MTU {}) drops the {}-byte packet on receive",
                    t.ingress.name, t.ingress.mtu, flow.len
                ),
                false,
            ));
            let d = Disposition::MtuExceeded {
                member: bm.name.clone(),
                iface: t.ingress.name.clone(),
                mtu: t.ingress.mtu,
                len: flow.len,
                on_receive: true,
                peer_mtu: (out.mtu != t.ingress.mtu).then_some(out.mtu),
                learned: false,
            };
            return Err(Box::new((hop, d)));
        }
        hop.rx = Some(same.clone());
        let by = fdb_by(w, &t.member, t, &tx);
        hop.steps.push(step(
            StepDetail::Bridge {
                bridge: t.bridge.name.clone(),
                ingress: t.ingress.name.clone(),
                egress: t.egress.name.clone(),
                by: by.0.clone(),
            },
            format!(
                "{} switches {} from {} to {} ({})",
                t.bridge.name, tx.dst_mac, t.ingress.name, t.egress.name, by.1
            ),
            true,
        ));
        hop.egress = Some(iface(&t.egress));
        if t.egress.index != t.bridge.index && u32::from(flow.len) > t.egress.mtu {
            let d = Disposition::MtuExceeded {
                member: bm.name.clone(),
                iface: t.egress.name.clone(),
                mtu: t.egress.mtu,
                len: flow.len,
                on_receive: true,
                peer_mtu: None,
                learned: false,
            };
            return Err(Box::new((hop, d)));
        }
        hop.tx = Some(same);
        hops.push(hop);
        sender_mtu = t.egress.mtu;
        from = format!("{} of {}", t.egress.name, bm.label);
    }
    // The frame as the receiver sees it: same headers, nothing marked as rewritten.
    let rx = unmarked(&tx);
    Ok(Arrival {
        member: attach.member,
        ingress: attach.link,
        rx,
        sender_mtu,
        from,
    })
}

fn tx_dst(p: &Packet) -> Option<[u8; 6]> {
    weft_netlink::parse_mac(&p.dst_mac)
}

/// How the bridge picks the egress port: a learned fdb entry, or flooding.
fn fdb_by(w: &mut World, member: &str, t: &BridgeTransit, tx: &Packet) -> (String, String) {
    if t.egress.index == t.bridge.index {
        return ("local".into(), "the bridge's own address".into());
    }
    let Ok(s) = w.snapshot(member) else {
        return ("flood".into(), "fdb unreadable".into());
    };
    let mac = tx_dst(tx);
    match s
        .fdb
        .iter()
        .find(|e| Some(e.mac) == mac && e.index != t.bridge.index)
    {
        Some(e) if e.index == t.egress.index => ("fdb".into(), "learned in the fdb".into()),
        Some(e) => (
            "fdb".into(),
            format!(
                "the fdb has it on {}; it moves once the owner answers",
                s.link_name(e.index)
            ),
        ),
        None => (
            "flood".into(),
            "not learned yet: flooded to every port".into(),
        ),
    }
}
