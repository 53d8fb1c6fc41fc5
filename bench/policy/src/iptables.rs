//! The iptables-shaped equivalent of weft's table for the same cluster state: what Calico's
//! iptables mode and seed 001's chains do, with one linear rule per source address instead of
//! a set lookup, and a linear dispatch per workload interface instead of a verdict map.
//! Loaded with `iptables-legacy-restore` in the node's namespace.
//!
//! ```text
//! FORWARD:   ct INVALID → DROP; RELATED,ESTABLISHED → ACCEPT; -i cali+ → wb-from; -o cali+ → wb-to
//! wb-from:   -i caliX -g wb-fw-N … ; DROP          (fail closed)
//! wb-to:     -o caliX -g wb-tw-N … ; DROP
//! wb-fw-N:   ! -s IP → DROP (anti-spoofing); RETURN (profile: egress open)
//! wb-tw-N:   clear mark; for each policy: -j wb-pi-K; mark ALLOW → ACCEPT; …; DROP (end of tier)
//!            (no policy: from the network's members, one rule each → ACCEPT; DROP)
//! wb-pi-K:   one rule per (source address, port): -s A/32 -p tcp --dport P -g wb-allow
//! wb-allow:  set mark ALLOW; RETURN
//!
//! nat POSTROUTING → wb-nat-outgoing: -d <cluster range> → RETURN …; -s <pool> → MASQUERADE
//! ```
//!
//! The nat part is Calico's `cali-nat-outgoing` for the networks with natOutgoing, as weft's
//! table masquerades them too: a node with a nat table pays NAT's work on every new
//! connection, so the equivalent must have it when weft's table does.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use weft_dataplane::rules::labels_of;
use weft_dataplane::ClusterState;
use weft_model::policy::{Action, NormalizedPolicy, PolicyType};
use weft_model::Workload;

const MARK: &str = "0x10000/0x10000";

/// The ruleset as `iptables-restore` input, and its number of rules.
pub fn ruleset(st: &ClusterState, node: &str) -> Result<(String, usize)> {
    let mut policies: Vec<&NormalizedPolicy> = st.policies.iter().collect();
    policies.sort_by(|a, b| a.cmp_order(b));
    let local: Vec<&Workload> = st
        .workloads
        .iter()
        .filter(|w| w.node == node && w.ip.is_some() && !w.host_iface.is_empty())
        .collect();
    let labels: Vec<_> = st.workloads.iter().map(labels_of).collect();
    let mut chains: Vec<String> = vec!["wb-from".into(), "wb-to".into(), "wb-allow".into()];
    let mut rules: Vec<String> = vec![
        "-A FORWARD -m conntrack --ctstate INVALID -j DROP".into(),
        "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".into(),
        "-A FORWARD -i cali+ -j wb-from".into(),
        "-A FORWARD -o cali+ -j wb-to".into(),
        format!("-A wb-allow -j MARK --set-xmark {MARK}"),
        "-A wb-allow -j RETURN".into(),
    ];
    let mut used: BTreeSet<usize> = BTreeSet::new();
    for (n, w) in local.iter().enumerate() {
        let ip = w.ip.expect("filtered");
        let wl = labels_of(w);
        chains.push(format!("wb-fw-{n}"));
        chains.push(format!("wb-tw-{n}"));
        rules.push(format!("-A wb-from -i {} -g wb-fw-{n}", w.host_iface));
        rules.push(format!("-A wb-to -o {} -g wb-tw-{n}", w.host_iface));
        rules.push(format!("-A wb-fw-{n} ! -s {ip}/32 -j DROP"));
        rules.push(format!("-A wb-fw-{n} -j RETURN"));
        rules.push(format!("-A wb-tw-{n} -j MARK --set-xmark 0x0/0x30000"));
        let mine: Vec<(usize, &&NormalizedPolicy)> = policies
            .iter()
            .enumerate()
            .filter(|(_, p)| p.governs(PolicyType::Ingress) && p.selector.matches(&wl))
            .collect();
        for (k, _) in &mine {
            used.insert(*k);
            rules.push(format!("-A wb-tw-{n} -j wb-pi-{k}"));
            rules.push(format!("-A wb-tw-{n} -m mark --mark {MARK} -j ACCEPT"));
        }
        if mine.is_empty() {
            // The network's profile: from its members, one rule each.
            for m in st.workloads.iter().filter(|m| m.network == w.network) {
                if let Some(a) = m.ip {
                    rules.push(format!("-A wb-tw-{n} -s {a}/32 -j ACCEPT"));
                }
            }
        }
        rules.push(format!("-A wb-tw-{n} -j DROP"));
    }
    rules.push("-A wb-from -j DROP".into());
    rules.push("-A wb-to -j DROP".into());
    for k in used {
        let p = policies[k];
        chains.push(format!("wb-pi-{k}"));
        for r in &p.ingress {
            if r.action != Action::Allow
                || r.not_protocol.is_some()
                || r.icmp.is_some()
                || r.not_icmp.is_some()
                || r.src.not_selector.is_some()
                || !r.src.not_nets.is_empty()
                || !r.src.ports.is_empty()
                || r.dst.selector.is_some()
                || !r.dst.nets.is_empty()
            {
                bail!(
                    "policy {}: the iptables-shaped rendering covers Allow rules with a protocol, \
                     a source selector or nets and destination ports only",
                    p.key()
                );
            }
            let proto = match r.protocol {
                Some(6) => "-p tcp ",
                Some(17) => "-p udp ",
                None => "",
                Some(n) => bail!("policy {}: protocol {n} not rendered", p.key()),
            };
            let sources: Vec<String> = match &r.src.selector {
                Some(sel) => st
                    .workloads
                    .iter()
                    .zip(&labels)
                    .filter(|(_, l)| sel.matches(l))
                    .filter_map(|(w, _)| w.ip)
                    .collect::<BTreeSet<Ipv4Addr>>()
                    .into_iter()
                    .map(|a| format!("-s {a}/32 "))
                    .collect(),
                None if r.src.nets.is_empty() => vec![String::new()],
                None => r.src.nets.iter().map(|n| format!("-s {n} ")).collect(),
            };
            let ports: Vec<String> = if r.dst.ports.is_empty() {
                vec![String::new()]
            } else {
                r.dst
                    .ports
                    .iter()
                    .map(|&(a, b)| {
                        if a == b {
                            format!("--dport {a} ")
                        } else {
                            format!("--dport {a}:{b} ")
                        }
                    })
                    .collect()
            };
            for s in &sources {
                for port in &ports {
                    rules.push(format!("-A wb-pi-{k} {s}{proto}{port}-g wb-allow"));
                }
            }
        }
    }
    let mut out =
        String::from("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n");
    for c in &chains {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for r in &rules {
        out.push_str(r);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
    let nat = nat_outgoing(st);
    let n = rules.len() + nat.len();
    if !nat.is_empty() {
        out.push_str(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:wb-nat-outgoing - [0:0]\n",
        );
        for r in &nat {
            out.push_str(r);
            out.push('\n');
        }
        out.push_str("COMMIT\n");
    }
    Ok((out, n))
}

/// Calico's natOutgoing: from the pools of the networks that want it, to anything outside the
/// cluster's ranges (the pools and the service range), masquerade. No rules when no network
/// wants it.
fn nat_outgoing(st: &ClusterState) -> Vec<String> {
    let sources: BTreeSet<String> = st
        .networks
        .iter()
        .filter(|n| n.nat_outgoing && n.driver == weft_model::Driver::Routed)
        .filter_map(|n| st.pools.iter().find(|p| p.name == n.pool))
        .map(|p| p.cidr.to_string())
        .collect();
    if sources.is_empty() {
        return vec![];
    }
    let mut cluster: BTreeSet<String> = st.pools.iter().map(|p| p.cidr.to_string()).collect();
    cluster.insert(st.config.service_cidr.to_string());
    let mut rules = vec!["-A POSTROUTING -j wb-nat-outgoing".to_string()];
    rules.extend(
        cluster
            .iter()
            .map(|c| format!("-A wb-nat-outgoing -d {c} -j RETURN")),
    );
    rules.extend(
        sources
            .iter()
            .map(|s| format!("-A wb-nat-outgoing -s {s} -j MASQUERADE")),
    );
    rules
}

/// The empty filter and nat tables (restoring them removes the bench's chains).
pub const EMPTY: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n";

pub use weft_bench_common::iptables::Flavor;
