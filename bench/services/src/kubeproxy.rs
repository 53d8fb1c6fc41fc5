//! The kube-proxy-iptables-shaped ruleset of the same services, as seed 002 section 7 writes
//! it by hand and kube-proxy's iptables mode generates it: a linear `KUBE-SERVICES` chain with
//! one rule per service port, jumping to a `KUBE-SVC-*` chain that picks an endpoint with
//! `-m statistic --mode random --probability`, each `KUBE-SEP-*` chain marking hairpin traffic
//! for masquerade and DNATing. Loaded with `iptables-restore` (the whole nat table, as
//! kube-proxy's full sync does).
//!
//! ```text
//! PREROUTING, OUTPUT:  -j KUBE-SERVICES
//! POSTROUTING:         -j KUBE-POSTROUTING
//! KUBE-SERVICES:       -d CLUSTER_IP/32 -p tcp -m tcp --dport P -j KUBE-SVC-N   (one per service)
//!                      -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS           (last)
//! KUBE-SVC-N:          -m statistic --mode random --probability 1/k -j KUBE-SEP-N-0 … ; -j KUBE-SEP-N-(k-1)
//! KUBE-SEP-N-E:        -s EP/32 -j KUBE-MARK-MASQ ; -p tcp -m tcp -j DNAT --to-destination EP:TP
//! KUBE-MARK-MASQ:      -j MARK --set-xmark 0x4000/0x4000
//! KUBE-POSTROUTING:    -m mark --mark 0x4000/0x4000 -j MASQUERADE
//! ```

use std::fmt::Write;
use std::net::Ipv4Addr;

use weft_dataplane::ClusterState;

/// Where the service under test (the last one in key order) sits in `KUBE-SERVICES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// Last: every new connection to it walks every other service's rule first.
    End,
    /// In the middle.
    Middle,
}

impl Place {
    pub fn name(self) -> &'static str {
        match self {
            Place::End => "end",
            Place::Middle => "middle",
        }
    }
}

/// One service port as the ruleset needs it.
struct Port {
    name: String,
    ip: Ipv4Addr,
    proto: &'static str,
    port: u16,
    target: u16,
    endpoints: Vec<Ipv4Addr>,
}

/// The nat table as `iptables-restore` input, and its number of rules.
pub fn ruleset(st: &ClusterState, place: Place) -> (String, usize) {
    let eps = weft_dataplane::rules::services_endpoints(&st.services, &st.workloads);
    let mut ports = vec![];
    for (s, eps) in st.services.iter().zip(eps) {
        let (Some(ip), Ok(resolved)) = (s.cluster_ip(), s.ports()) else {
            continue;
        };
        for p in resolved {
            ports.push(Port {
                name: format!("{}/{}:{}", s.metadata.namespace, s.metadata.name, p.port),
                ip,
                proto: match p.protocol {
                    17 => "udp",
                    132 => "sctp",
                    _ => "tcp",
                },
                port: p.port,
                target: p.target_port,
                endpoints: eps.clone(),
            });
        }
    }
    if place == Place::Middle && !ports.is_empty() {
        let test = ports.pop().expect("not empty");
        ports.insert(ports.len() / 2, test);
    }
    let mut chains = vec![
        "KUBE-SERVICES".to_string(),
        "KUBE-NODEPORTS".into(),
        "KUBE-MARK-MASQ".into(),
        "KUBE-POSTROUTING".into(),
    ];
    let mut rules: Vec<String> = vec![
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES".into(),
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES".into(),
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"
            .into(),
        "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000".into(),
        "-A KUBE-POSTROUTING -m mark --mark 0x4000/0x4000 -j MASQUERADE".into(),
    ];
    let mut services = vec![];
    let mut rest = vec![];
    for (n, p) in ports.iter().enumerate() {
        let c = format!("-m comment --comment \"{}\"", p.name);
        if p.endpoints.is_empty() {
            services.push(format!(
                "-A KUBE-SERVICES -d {}/32 -p {} {c} -m {} --dport {} -j REJECT",
                p.ip, p.proto, p.proto, p.port
            ));
            continue;
        }
        let svc = format!("KUBE-SVC-{n}");
        chains.push(svc.clone());
        services.push(format!(
            "-A KUBE-SERVICES -d {}/32 -p {} {c} -m {} --dport {} -j {svc}",
            p.ip, p.proto, p.proto, p.port
        ));
        let k = p.endpoints.len();
        for (e, ep) in p.endpoints.iter().enumerate() {
            let sep = format!("KUBE-SEP-{n}-{e}");
            chains.push(sep.clone());
            if e + 1 < k {
                rest.push(format!(
                    "-A {svc} {c} -m statistic --mode random --probability {:.11} -j {sep}",
                    1.0 / (k - e) as f64
                ));
            } else {
                rest.push(format!("-A {svc} {c} -j {sep}"));
            }
            rest.push(format!("-A {sep} -s {ep}/32 {c} -j KUBE-MARK-MASQ"));
            rest.push(format!(
                "-A {sep} -p {} {c} -m {} -j DNAT --to-destination {ep}:{}",
                p.proto, p.proto, p.target
            ));
        }
    }
    rules.extend(services);
    rules.push(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
            .into(),
    );
    rules.extend(rest);
    let mut out = String::with_capacity(rules.len() * 100);
    out.push_str(EMPTY_HEAD);
    for c in &chains {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    for r in &rules {
        out.push_str(r);
        out.push('\n');
    }
    out.push_str("COMMIT\n");
    (out, rules.len())
}

const EMPTY_HEAD: &str =
    "*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n";

/// The empty nat table (restoring it removes the bench's chains).
pub fn empty() -> String {
    format!("{EMPTY_HEAD}COMMIT\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{self, service, synthetic_ip, workload};

    fn state(n: usize) -> ClusterState {
        let mut st = ClusterState::default();
        for i in 0..n {
            st.services.push(service(i));
            for j in 0..2 {
                st.workloads.push(workload(
                    &format!("ep-{i}-{j}"),
                    "node-1",
                    "",
                    synthetic_ip(i, j),
                    &world::service_name(i),
                ));
            }
        }
        st
    }

    fn dispatch(text: &str) -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with("-A KUBE-SERVICES -d "))
            .collect()
    }

    #[test]
    fn one_rule_per_service_with_the_service_under_test_last_or_in_the_middle() {
        let st = state(5);
        let last = world::cluster_ip(4).to_string();
        let (end, rules) = ruleset(&st, Place::End);
        let d = dispatch(&end);
        assert_eq!(d.len(), 5, "{end}");
        assert!(d[4].contains(&last), "{d:?}");
        // 5 fixed rules, 5 dispatch rules + the NodePort one, 2 per service chain, 2 per
        // endpoint chain.
        assert_eq!(rules, 5 + 6 + 5 * (2 + 2 * 2));
        let (mid, _) = ruleset(&st, Place::Middle);
        let d = dispatch(&mid);
        assert!(d[2].contains(&last), "{d:?}");
        assert!(
            mid.contains("--probability 0.50000000000 -j KUBE-SEP-2-0"),
            "{mid}"
        );
        let ep = synthetic_ip(4, 1);
        assert!(
            mid.contains(&format!("-j DNAT --to-destination {ep}:8080")),
            "{mid}"
        );
        assert!(end.ends_with("COMMIT\n"));
    }
}
