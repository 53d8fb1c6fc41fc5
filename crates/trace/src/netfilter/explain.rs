//! Names what decided in weft's table — a policy, a network's profile, a service, or one of
//! the table's own guards — from the rule comments the dataplane writes, and says what to
//! change.

use std::net::Ipv4Addr;

use weft_dataplane::ClusterState;
use weft_model::Workload;
use weft_nft::{Reject, Table};

use super::eval::{Final, Hit, Outcome};
use crate::disposition::{Denial, Disposition};
use crate::flow::Flow;
use crate::model::Proto;

/// `tcp port 80`, `icmp`.
pub fn what(f: &Flow) -> String {
    match (f.proto, f.dport) {
        (Proto::Icmp, _) => "icmp".into(),
        (p, Some(port)) => format!("{p} port {port}"),
        (p, None) => p.to_string(),
    }
}

fn workload_on<'a>(st: &'a ClusterState, chain: &str) -> Option<&'a Workload> {
    let iface = chain
        .strip_prefix("tw_")
        .or_else(|| chain.strip_prefix("fw_"))?;
    st.workloads.iter().find(|w| w.host_iface == iface)
}

fn workload_at(st: &ClusterState, ip: Ipv4Addr) -> Option<&Workload> {
    st.workloads
        .iter()
        .find(|w| w.ip == Some(ip) && w.net_of.is_none())
}

/// The policies a per-endpoint chain applies, in order (from its `allowed by policy` rules).
pub fn policies_of(t: &Table, chain: &str) -> Vec<String> {
    t.chain(chain)
        .map(|c| {
            c.rules
                .iter()
                .filter_map(|r| r.comment.as_deref()?.strip_prefix("allowed by policy "))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Who a rule's comment names: `policy default/x`, `profile net1`, `service default.web`.
pub fn decider(h: &Hit) -> String {
    let Some(c) = h.comment.as_deref() else {
        return format!("rule {} of chain {}", h.rule, h.chain);
    };
    let first = |rest: &str| rest.split([':', ' ']).next().unwrap_or(rest).to_string();
    for (prefix, kind) in [
        ("policy ", "policy"),
        ("allowed by policy ", "policy"),
        ("passed by policy ", "policy"),
        ("profile ", "profile"),
        ("service ", "service"),
    ] {
        if let Some(rest) = c.strip_prefix(prefix) {
            return format!("{kind} {}", first(rest));
        }
    }
    c.to_string()
}

/// The disposition for a packet the hook drops or rejects.
pub fn refused(
    member: &str,
    hook: &str,
    o: &Outcome,
    t: &Table,
    st: &ClusterState,
    f: &Flow,
) -> Disposition {
    let action = match o.verdict {
        Final::Reject(_) => "reject",
        _ => "drop",
    };
    let Some(h) = &o.decided_by else {
        let chain = o.chains.last().cloned().unwrap_or_default();
        return Disposition::Denied(Box::new(Denial {
            member: member.into(),
            hook: hook.into(),
            chain: chain.clone(),
            rule: format!("policy drop of chain {chain}"),
            by: format!("the default policy of {chain}"),
            action: action.into(),
            change: "weft's table never drops by chain policy: the table on this node is not weft's (weft doctor compares it with the plan)".into(),
        }));
    };
    let comment = h.comment.clone().unwrap_or_else(|| h.text.clone());
    let svc = f.dst;
    if comment.contains("without endpoints") {
        let service = st
            .services
            .iter()
            .find(|s| s.cluster_ip() == Some(svc))
            .map(|s| format!("service {}.{}", s.metadata.namespace, s.metadata.name))
            .unwrap_or_else(|| format!("the NodePort {} on {svc}", what(f)));
        return Disposition::NoEndpoints {
            member: member.into(),
            change: format!(
                "start a workload whose labels match the selector of {service} (weft get svc), or fix the selector; until then every connection is refused"
            ),
            service: format!("{service} ({svc} {})", what(f)),
        };
    }
    // The endpoint's own chain (tw_/fw_), even when the decision is in a profile or policy
    // chain it went to.
    let ep_chain = o
        .chains
        .iter()
        .rev()
        .find(|c| c.starts_with("tw_") || c.starts_with("fw_"))
        .cloned()
        .unwrap_or_else(|| h.chain.clone());
    let wl = workload_on(st, &ep_chain);
    let wl_name = wl
        .map(|w| w.name.clone())
        .unwrap_or_else(|| "the workload".into());
    let src_name = workload_at(st, f.src)
        .map(|w| format!("{} ({})", w.name, f.src))
        .unwrap_or_else(|| f.src.to_string());
    let dir = if ep_chain.starts_with("fw_") {
        "egress"
    } else {
        "ingress"
    };
    let mut by = decider(h);
    if comment.contains("end of tier") {
        by = format!(
            "the end of the {dir} policy tier of {wl_name} (policies {} allow nothing that matches)",
            policies_of(t, &ep_chain).join(", ")
        );
    }
    let change = if comment.starts_with("policy ") {
        format!(
            "{by} denies {} from {src_name} ({comment}): change or delete that rule (weft get policy; weft apply -f FILE), or allow it in a policy applied before"
        , what(f))
    } else if comment.contains("end of tier") {
        let pols = policies_of(t, &ep_chain);
        format!(
            "the {dir} policies of {wl_name} ({}) allow nothing that matches {} from {src_name}: add an {dir} Allow rule for it to one of them, or a policy selecting {wl_name} that allows it",
            pols.join(", "),
            what(f)
        )
    } else if comment.starts_with("profile ") {
        let net = wl.map(|w| w.network.clone()).unwrap_or_default();
        format!(
            "network {net} admits only its own members: run the sender on {net}, create {net} with --isolation none, or apply a policy selecting {wl_name} that allows {} from {src_name}",
            what(f)
        )
    } else if comment.contains("anti-spoofing") {
        format!(
            "{wl_name} may send only from its own address, not {}",
            f.src
        )
    } else if comment.contains("fail closed") {
        "the interface is not a workload weft knows on this node: let the agent resync (weft doctor), or remove the stale interface".into()
    } else if comment.contains("its own host") {
        "workloads may reach their own node only for DNS (port 53); reach a service or another node instead".into()
    } else if comment.contains("invalid") {
        "conntrack finds the packet invalid (not part of any connection it knows): start a new connection".into()
    } else {
        format!(
            "look at chain {} of `nft list table inet weft` on {member}",
            h.chain
        )
    };
    let action = match o.verdict {
        Final::Reject(Reject::IcmpAdminProhibited | Reject::AdminProhibited) => "reject",
        Final::Reject(_) => "reject",
        _ => action,
    };
    Disposition::Denied(Box::new(Denial {
        member: member.into(),
        hook: hook.into(),
        chain: h.chain.clone(),
        rule: comment,
        by,
        action: action.into(),
        change,
    }))
}

/// One sentence for a hook the packet passed: which rule let it through.
pub fn passed(o: &Outcome) -> String {
    let deciding = o.hits.iter().rev().find(|h| h.comment.is_some()).map(|h| {
        let c = h.comment.as_deref().unwrap_or("");
        let by = decider(h);
        if c.starts_with(&by) {
            c.to_string()
        } else {
            format!("{by}: {c}")
        }
    });
    match deciding {
        Some(d) => format!("accepted ({d})"),
        None => "accepted (no rule of weft's table applies)".into(),
    }
}
