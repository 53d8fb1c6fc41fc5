//! VXLAN (Calico's VXLAN mode): a frame routed into the VXLAN device gets its destination MAC
//! from the device's static neighbour entry and its remote VTEP from the device's fdb, then
//! travels as a UDP packet (port 4789) routed like any packet the node makes; at the far node
//! it is delivered to the VXLAN port and the frame comes out of that node's VXLAN device.

use std::net::Ipv4Addr;

use weft_model::{VXLAN_DEVICE, VXLAN_OVERHEAD, VXLAN_PORT, VXLAN_VNI};
use weft_netlink::{format_mac, Link, Route, NUD_NOARP, NUD_PERMANENT, NUD_REACHABLE, NUD_STALE};

use super::output::output;
use super::route::routed;
use super::{step, Forward, Next};
use crate::disposition::Disposition;
use crate::flow::{Flow, DEFAULT_TTL};
use crate::lookup::{lookup, next_hop, select_source};
use crate::model::{Hop, Proto, StepDetail};
use crate::snapshot::NsSnapshot;
use crate::world::{Member, World};

/// Neighbour states whose MAC the kernel uses as is.
const USABLE: u16 = NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_STALE | 0x08 | 0x10;

/// The VNI of a VXLAN device (weft's devices use Calico's; the kernel's value is not read).
fn vni_of(_dev: &Link) -> u32 {
    VXLAN_VNI
}

/// The frame leaves through VXLAN device `dev`: find the inner destination MAC and the VTEP.
pub(super) fn vxlan_out(
    s: &NsSnapshot,
    hop: &mut Hop,
    flow: &Flow,
    route: &Route,
    dev: &Link,
    member: &str,
) -> Forward {
    let nh = next_hop(route, flow.dst);
    let entry = s
        .neighbour(dev.index, nh)
        .filter(|n| n.state & USABLE != 0)
        .and_then(|n| n.mac.map(|m| (m, n.state)));
    let Some((mac, state)) = entry else {
        hop.steps.push(step(
            StepDetail::Neighbour {
                ip: nh,
                iface: dev.name.clone(),
                mac: None,
                how: "none".into(),
                by: None,
            },
            format!("no neighbour entry for {nh} on {}", dev.name),
            false,
        ));
        return Err(Disposition::NoNeighbour {
            member: member.to_string(),
            iface: dev.name.clone(),
            ip: nh,
            reason: format!(
                "{} learns nothing: weft installs a static neighbour for every remote tunnel address, and {nh} has none (the remote node's agent has not published its VXLAN MAC, or this node's agent has not caught up)",
                dev.name
            ),
        });
    };
    let vtep = s
        .fdb
        .iter()
        .find(|e| e.index == dev.index && e.mac == mac)
        .and_then(|e| e.dst);
    let how = if state & NUD_PERMANENT != 0 {
        "permanent"
    } else {
        "cache"
    };
    let Some(vtep) = vtep else {
        hop.steps.push(step(
            StepDetail::Neighbour {
                ip: nh,
                iface: dev.name.clone(),
                mac: Some(format_mac(&mac)),
                how: how.into(),
                by: None,
            },
            format!(
                "{nh} is at {} on {}, but its fdb has no VTEP for that MAC",
                format_mac(&mac),
                dev.name
            ),
            false,
        ));
        return Err(Disposition::NoNeighbour {
            member: member.to_string(),
            iface: dev.name.clone(),
            ip: nh,
            reason: format!(
                "the fdb of {} has no remote VTEP for {}: the frame has nowhere to go",
                dev.name,
                format_mac(&mac)
            ),
        });
    };
    hop.steps.push(step(
        StepDetail::Neighbour {
            ip: nh,
            iface: dev.name.clone(),
            mac: Some(format_mac(&mac)),
            how: how.into(),
            by: Some(format!("VTEP {vtep}")),
        },
        format!(
            "{nh} is at {} ({how} entry on {}); the fdb sends that MAC to VTEP {vtep}",
            format_mac(&mac),
            dev.name
        ),
        true,
    ));
    Ok(Next::Encap {
        dev: dev.clone(),
        dst_mac: mac,
        vtep,
        vni: vni_of(dev),
    })
}

/// The outer packet that carries `inner` to `vtep`.
pub(super) fn outer_flow(inner: &Flow, vtep: Ipv4Addr, vni: u32) -> Flow {
    Flow {
        src: Ipv4Addr::UNSPECIFIED,
        dst: vtep,
        proto: Proto::Udp,
        // The kernel picks the source port from a hash of the inner flow.
        sport: None,
        dport: Some(VXLAN_PORT),
        icmp_id: None,
        len: inner.len.saturating_add(VXLAN_OVERHEAD as u16),
        ttl: DEFAULT_TTL,
        reply: false,
        vni: Some(vni),
    }
}

/// Routes the outer packet out of the node, like a packet the node makes.
pub(super) fn encapsulate(
    w: &mut World,
    m: &Member,
    s: &NsSnapshot,
    hop: &mut Hop,
    outer: &mut Flow,
    dev: &Link,
) -> Forward {
    let looked = lookup(s, outer.dst);
    let route = routed(w, m, s, hop, outer, &looked)?;
    if let Some(src) = select_source(s, &route, outer.dst) {
        outer.src = src;
    }
    hop.steps.insert(
        0,
        step(
            StepDetail::Encap {
                device: dev.name.clone(),
                tunnel: "vxlan".into(),
                vni: outer.vni.unwrap_or(VXLAN_VNI),
                outer_src: Some(outer.src),
                outer_dst: outer.dst,
                dport: VXLAN_PORT,
            },
            format!(
                "{} encapsulates the frame in VXLAN (VNI {}): outer {} > {} UDP {VXLAN_PORT}, {} bytes",
                dev.name,
                outer.vni.unwrap_or(VXLAN_VNI),
                outer.src,
                outer.dst,
                outer.len
            ),
            true,
        ),
    );
    output(w, m, s, hop, outer, &route, true)
}

/// The VXLAN device that takes a tunnel packet delivered here.
pub(super) fn vxlan_device(s: &NsSnapshot) -> Option<Link> {
    let mut devs = s
        .links
        .iter()
        .filter(|l| l.kind.as_deref() == Some("vxlan"));
    let first = devs.next()?.clone();
    Some(
        s.link_by_name(VXLAN_DEVICE)
            .filter(|l| l.kind.as_deref() == Some("vxlan"))
            .cloned()
            .unwrap_or(first),
    )
}
