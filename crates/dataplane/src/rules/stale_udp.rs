//! Stale UDP conntrack entries of services, found as kube-proxy finds them: a UDP flow to a
//! service is DNATed once, by its first datagram, and its entry lives as long as the client
//! keeps sending; when the endpoint goes away the entry must go too, or the flow keeps
//! going to the missing endpoint. The agent keeps [`UdpBackends`] between passes and
//! deletes what [`UdpBackends::stale`] picks after each change is programmed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use weft_model::policy::Service;
use weft_nft::conntrack::Filter;

use super::RulesInput;

/// Where UDP traffic to a service port is sent: `(ClusterIP, port, NodePort)` to the
/// endpoints' addresses. Kept by the agent between passes to find stale conntrack entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UdpBackends(BTreeMap<(Ipv4Addr, u16, Option<u16>), BTreeSet<Ipv4Addr>>);

impl UdpBackends {
    /// The UDP service ports of `input` and their endpoints.
    pub fn of(input: &RulesInput) -> UdpBackends {
        // Only the services with a UDP port: finding endpoints is the costly part.
        let udp: Vec<Service> = input
            .services
            .iter()
            .filter(|s| {
                s.ports()
                    .is_ok_and(|ps| ps.iter().any(|p| p.protocol == weft_nft::PROTO_UDP))
            })
            .cloned()
            .collect();
        let endpoints = super::services::endpoints_of(&udp, input.workloads);
        UdpBackends::from_endpoints(udp.iter().zip(endpoints.iter().map(Vec::as_slice)))
    }

    /// The UDP service ports of `services` (each with its endpoints).
    pub fn from_endpoints<'a>(
        services: impl IntoIterator<Item = (&'a Service, &'a [Ipv4Addr])>,
    ) -> UdpBackends {
        let mut m = BTreeMap::new();
        for (s, eps) in services {
            let (Some(ip), Ok(ports)) = (s.cluster_ip(), s.ports()) else {
                continue;
            };
            let eps: BTreeSet<Ipv4Addr> = eps.iter().copied().collect();
            for p in ports.iter().filter(|p| p.protocol == weft_nft::PROTO_UDP) {
                m.insert((ip, p.port, p.node_port), eps.clone());
            }
        }
        UdpBackends(m)
    }

    /// The conntrack entries that going from `self` to `new` leaves stale, as kube-proxy
    /// finds them: for an endpoint that went away, the entries DNATed to it (through the
    /// ClusterIP or the NodePort); for a port that had no endpoint and now has some, every
    /// entry to it (made while its packets were refused).
    pub fn stale(&self, new: &UdpBackends) -> Vec<Filter> {
        let none = BTreeSet::new();
        let mut out = vec![];
        for (&(ip, port, node_port), before) in &self.0 {
            let after = new.0.get(&(ip, port, node_port)).unwrap_or(&none);
            for &ep in before.difference(after) {
                out.push(Filter {
                    orig_dst: Some(ip),
                    orig_dport: Some(port),
                    reply_src: Some(ep),
                    ..Filter::udp()
                });
                if let Some(np) = node_port {
                    out.push(Filter {
                        orig_dport: Some(np),
                        reply_src: Some(ep),
                        ..Filter::udp()
                    });
                }
            }
        }
        for (&(ip, port, node_port), after) in &new.0 {
            let before = self.0.get(&(ip, port, node_port)).unwrap_or(&none);
            if before.is_empty() && !after.is_empty() {
                out.push(Filter {
                    orig_dst: Some(ip),
                    orig_dport: Some(port),
                    ..Filter::udp()
                });
                if let Some(np) = node_port {
                    out.push(Filter {
                        orig_dport: Some(np),
                        ..Filter::udp()
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::services::tests::{service, with, workload};

    #[test]
    fn stale_udp_entries_of_removed_endpoints() {
        let a = workload("a", [10, 244, 0, 5]);
        let b = workload("b", [10, 244, 0, 6]);
        let svc = [service("")];
        let both = with(&svc, &[a.clone(), b.clone()], UdpBackends::of);
        let only_b = with(&svc, &[b], UdpBackends::of);
        let none = with(&svc, &[], UdpBackends::of);
        let ip = Ipv4Addr::new(10, 96, 0, 10);
        assert_eq!(both.stale(&both), vec![], "no change, nothing stale");
        assert_eq!(
            both.stale(&only_b),
            vec![
                Filter {
                    orig_dst: Some(ip),
                    orig_dport: Some(53),
                    reply_src: a.ip,
                    ..Filter::udp()
                },
                Filter {
                    orig_dport: Some(30053),
                    reply_src: a.ip,
                    ..Filter::udp()
                },
            ]
        );
        assert_eq!(
            only_b.stale(&both),
            vec![],
            "an endpoint added leaves nothing stale"
        );
        let from_none = none.stale(&only_b);
        assert!(
            from_none.contains(&Filter {
                orig_dst: Some(ip),
                orig_dport: Some(53),
                ..Filter::udp()
            }),
            "a port that had no endpoint: everything to it {from_none:?}"
        );
        let tcp = service("").spec;
        let mut tcp_svc = service("");
        tcp_svc.spec = tcp;
        tcp_svc.spec.ports[0].protocol = None;
        let tcp_only = with(&[tcp_svc], &[a], UdpBackends::of);
        assert_eq!(tcp_only, UdpBackends::default(), "TCP is not tracked");
    }
}
