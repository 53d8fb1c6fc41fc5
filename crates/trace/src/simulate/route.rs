//! Routing decisions of a hop: the route step (with weft's plan beside the kernel's entry),
//! what a non-unicast result means, and the reverse path filter.

use std::net::Ipv4Addr;

use weft_model::ROUTE_PROTO;
use weft_netlink::{Link, Route, RouteKind};

use super::step;
use crate::disposition::Disposition;
use crate::flow::Flow;
use crate::lookup::{route_command_args, rp_filter_pass, show_route, Lookup};
use crate::model::{Hop, MemberKind, Step, StepDetail};
use crate::snapshot::NsSnapshot;
use crate::world::{Member, World};

pub(super) fn rp_check(
    s: &NsSnapshot,
    hop: &mut Hop,
    member: &str,
    ing: &Link,
    flow: &Flow,
    mode: u8,
) -> Option<Disposition> {
    if mode == 0 {
        return None;
    }
    let pass = rp_filter_pass(s, mode, ing.index, flow.src);
    hop.steps.push(step(
        StepDetail::RpFilter {
            iface: ing.name.clone(),
            mode,
            pass,
        },
        format!(
            "rp_filter={mode} on {}: {} {}",
            ing.name,
            flow.src,
            if pass {
                "is routed back this way"
            } else {
                "is not routed back this way: dropped"
            }
        ),
        pass,
    ));
    (!pass).then(|| Disposition::RpFilter {
        member: member.to_string(),
        iface: ing.name.clone(),
        src: flow.src,
    })
}

/// The route step of a lookup, with whether weft's plan holds the entry.
pub(super) fn route_step(
    w: &mut World,
    m: &Member,
    s: &NsSnapshot,
    flow: &Flow,
    src: Option<Ipv4Addr>,
    looked: &Lookup,
) -> Step {
    let (table, entry, result, route) = match looked {
        Lookup::Local(r) => ("local", r.as_ref().map(|r| show_route(s, r)), "local", None),
        Lookup::Matched(r) => (
            "main",
            Some(show_route(s, r)),
            match r.kind {
                RouteKind::Unicast => "unicast",
                RouteKind::Blackhole => "blackhole",
                RouteKind::Unreachable => "unreachable",
                RouteKind::Prohibit => "prohibit",
                _ => "other",
            },
            Some(r),
        ),
        Lookup::NoRoute => ("main", None, "none", None),
    };
    let planned = match (route, m.kind) {
        (Some(r), MemberKind::Node) if r.protocol == ROUTE_PROTO => w
            .planned_routes(&m.key)
            .map(|p| p.iter().any(|x| same_route(x, r))),
        _ => None,
    };
    let text = match (&entry, result) {
        (Some(e), _) => format!(
            "route to {}: {e}{}",
            flow.dst,
            match planned {
                Some(true) => " (planned by weft)",
                Some(false) => " (NOT in weft's plan)",
                None => "",
            }
        ),
        (None, "local") => format!("route to {}: local address", flow.dst),
        _ => format!("route to {}: no route matches", flow.dst),
    };
    step(
        StepDetail::Route {
            table: table.into(),
            dst: flow.dst,
            entry,
            result: result.into(),
            src,
            planned,
        },
        text,
        matches!(result, "unicast" | "local"),
    )
}

fn same_route(a: &Route, b: &Route) -> bool {
    (a.dst, a.kind, a.gateway, a.oif) == (b.dst, b.kind, b.gateway, b.oif)
}

/// The planned route for `flow.dst` more specific than what the kernel matched and missing
/// from the kernel, in `ip route replace` form.
fn missing_planned(
    w: &mut World,
    m: &Member,
    s: &NsSnapshot,
    flow: &Flow,
    matched: Option<&Route>,
) -> Option<String> {
    let plan = w.planned_routes(&m.key)?;
    let min = matched.map(|r| r.dst.prefix_len()).unwrap_or(0);
    plan.iter()
        .filter(|p| p.dst.contains(&flow.dst) && p.dst.prefix_len() > min)
        .filter(|p| !s.main.iter().any(|k| same_route(k, p)))
        .max_by_key(|p| p.dst.prefix_len())
        .map(|p| route_command_args(s, p))
}

/// Checks the lookup result: a unicast route goes on, anything else ends the leg.
pub(super) fn routed(
    w: &mut World,
    m: &Member,
    s: &NsSnapshot,
    hop: &mut Hop,
    flow: &Flow,
    looked: &Lookup,
) -> Result<Route, Disposition> {
    let st = route_step(w, m, s, flow, None, looked);
    hop.steps.push(st);
    let name = m.name.clone();
    match looked {
        Lookup::Matched(r) if r.kind == RouteKind::Unicast => Ok(r.clone()),
        Lookup::Matched(r) => {
            let missing = missing_planned(w, m, s, flow, Some(r));
            let route = show_route(s, r);
            Err(match r.kind {
                RouteKind::Blackhole => Disposition::Blackholed {
                    member: name,
                    route,
                    missing,
                },
                RouteKind::Unreachable | RouteKind::Prohibit => Disposition::Unreachable {
                    member: name,
                    route,
                    missing,
                },
                _ => Disposition::Unsupported {
                    member: name,
                    what: format!("route type of `{route}`"),
                },
            })
        }
        Lookup::NoRoute => match missing_planned(w, m, s, flow, None) {
            Some(missing) => Err(Disposition::Unreachable {
                member: name,
                route: "no matching route".into(),
                missing: Some(missing),
            }),
            None => Err(Disposition::NoRoute {
                member: name,
                dst: flow.dst,
            }),
        },
        Lookup::Local(_) => Err(Disposition::Delivered {
            member: name,
            iface: "lo".into(),
        }),
    }
}
