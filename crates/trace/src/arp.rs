//! Who answers ARP for a next hop: a namespace on the segment that owns the address, or an
//! interface doing proxy ARP for it (Calico's 169.254.1.1: the host end of a workload's veth,
//! with proxy_arp and forwarding on and a route to the address through another interface).
//! A permanent neighbour entry is used without asking.

use std::net::Ipv4Addr;

use weft_netlink::{format_mac, Link, RouteKind, NUD_NOARP, NUD_PERMANENT};

use crate::lookup::{lookup, rp_filter_pass, Lookup};
use crate::world::{Attach, World};

/// How the MAC address was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum How {
    /// The owner of the address answered.
    Owner,
    /// An interface answered by proxy ARP.
    ProxyArp,
    /// A permanent (or noarp) neighbour entry.
    Permanent,
}

impl How {
    /// The JSON name.
    pub fn name(self) -> &'static str {
        match self {
            How::Owner => "owner",
            How::ProxyArp => "proxy_arp",
            How::Permanent => "permanent",
        }
    }
}

/// A resolved next hop.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub mac: [u8; 6],
    pub how: How,
    /// The interface that receives the frame.
    pub attach: Attach,
    /// For people: who answered and why.
    pub text: String,
    /// Remarks (a cached entry that disagrees, several answerers).
    pub notes: Vec<String>,
}

/// The outcome of resolving a next hop.
#[derive(Clone, Debug)]
pub enum Arp {
    Resolved(Box<Resolved>),
    /// Nobody answers; the reason says what was looked at.
    NoAnswer(String),
    /// The segment cannot be known (not a veth, or it leads out of what weft manages).
    Unknown(String),
}

/// Resolves `next_hop` on `out` of member `from`, asked by `sender` (the ARP sender address).
pub fn resolve(w: &mut World, from: &str, out: &Link, next_hop: Ipv4Addr, sender: Ipv4Addr) -> Arp {
    let seg = match w.segment(from, out) {
        Ok(s) => s,
        Err(e) => return Arp::Unknown(e),
    };
    let own = match w.snapshot(from) {
        Ok(s) => s,
        Err(e) => return Arp::Unknown(e),
    };
    let mut notes = Vec::new();
    if !seg.unknown.is_empty() {
        notes.push(format!(
            "the segment also reaches interfaces weft does not manage: {}",
            seg.unknown.join("; ")
        ));
    }
    let cached = own.neighbour(out.index, next_hop).cloned();
    if let Some(n) = &cached {
        if n.state & (NUD_PERMANENT | NUD_NOARP) != 0 {
            if let Some(mac) = n.mac {
                let holder = seg.attached.iter().find(|a| a.link.mac == Some(mac));
                let attach = match (holder, seg.attached.as_slice()) {
                    (Some(a), _) => a.clone(),
                    (None, [only]) if only.bridge.is_none() => only.clone(),
                    _ => {
                        return Arp::NoAnswer(format!(
                            "the permanent neighbour entry {next_hop} lladdr {} on {} names a MAC no interface on the segment has",
                            format_mac(&mac),
                            out.name
                        ))
                    }
                };
                return Arp::Resolved(Box::new(Resolved {
                    mac,
                    how: How::Permanent,
                    text: format!(
                        "permanent neighbour entry {next_hop} lladdr {}",
                        format_mac(&mac)
                    ),
                    attach,
                    notes,
                }));
            }
        }
    }

    let mut owners = Vec::new();
    let mut proxies = Vec::new();
    let mut why_not = Vec::new();
    for a in &seg.attached {
        let s = match w.snapshot(&a.member) {
            Ok(s) => s,
            Err(e) => {
                why_not.push(e);
                continue;
            }
        };
        let label = w
            .member(&a.member)
            .map(|m| m.label.clone())
            .unwrap_or_else(|| a.member.clone());
        if !a.link.up {
            why_not.push(format!("{} of {label} is down", a.link.name));
            continue;
        }
        let rpf = s.rp_filter(&a.link.name);
        let rp_ok = rp_filter_pass(&s, rpf, a.link.index, sender);
        if s.is_local(next_hop) {
            let ignore = s.arp_ignore(&a.link.name);
            if ignore >= 1 && !s.has_addr_on(a.link.index, next_hop) {
                why_not.push(format!(
                    "{label} holds {next_hop} but not on {} and arp_ignore={ignore} there",
                    a.link.name
                ));
            } else if !rp_ok {
                why_not.push(format!(
                    "{label} holds {next_hop} but rp_filter on {} drops the request from {sender}",
                    a.link.name
                ));
            } else {
                owners.push((a.clone(), label));
            }
            continue;
        }
        if !s.proxy_arp(&a.link.name) {
            continue;
        }
        let fwd = s.forwarding(&a.link.name).unwrap_or(false);
        let route = lookup(&s, next_hop);
        let routed_elsewhere = matches!(&route,
            Lookup::Matched(r) if r.kind == RouteKind::Unicast && r.oif != Some(a.link.index));
        if !fwd {
            why_not.push(format!(
                "{} of {label} has proxy_arp on but forwarding off, so it does not answer",
                a.link.name
            ));
        } else if !routed_elsewhere {
            why_not.push(format!(
                "{} of {label} has proxy_arp on but {label} has no route to {next_hop} through another interface",
                a.link.name
            ));
        } else if !rp_ok {
            why_not.push(format!(
                "rp_filter on {} of {label} drops the request from {sender}",
                a.link.name
            ));
        } else {
            proxies.push((a.clone(), label));
        }
    }

    let (picked, how, rest) = if let Some((first, rest)) = owners.split_first() {
        (first.clone(), How::Owner, rest.to_vec())
    } else if let Some((first, rest)) = proxies.split_first() {
        (first.clone(), How::ProxyArp, rest.to_vec())
    } else {
        let mut reason = format!(
            "no interface on the segment of {} holds {next_hop} or proxies it",
            out.name
        );
        if !why_not.is_empty() {
            reason.push_str(&format!(": {}", why_not.join("; ")));
        }
        return Arp::NoAnswer(reason);
    };
    let (attach, label) = picked;
    let Some(mac) = attach.link.mac else {
        return Arp::Unknown(format!(
            "{} of {label} has no MAC address",
            attach.link.name
        ));
    };
    if !rest.is_empty() {
        let others: Vec<_> = rest
            .iter()
            .map(|(a, l)| format!("{} of {l}", a.link.name))
            .collect();
        notes.push(format!(
            "{} answer too; the first answer wins",
            others.join(", ")
        ));
    }
    if let Some(n) = &cached {
        if let Some(m) = n.mac.filter(|m| *m != mac) {
            notes.push(format!(
                "the neighbour cache holds {next_hop} lladdr {} (state {:#x}), not {}; the kernel re-resolves it",
                format_mac(&m),
                n.state,
                format_mac(&mac)
            ));
        }
    }
    let text = match how {
        How::Owner => format!(
            "{next_hop} is at {} ({} of {label})",
            format_mac(&mac),
            attach.link.name
        ),
        _ => format!(
            "{next_hop} is answered by proxy ARP with {} ({} of {label}, which routes {next_hop} elsewhere)",
            format_mac(&mac),
            attach.link.name
        ),
    };
    Arp::Resolved(Box::new(Resolved {
        mac,
        how,
        attach,
        text,
        notes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ip, two_node_lab};

    fn eth0_of(w: &mut World, key: &str) -> Link {
        w.snapshot(key)
            .unwrap()
            .link_by_name("eth0")
            .unwrap()
            .clone()
    }

    #[test]
    fn workload_gateway_is_answered_by_proxy_arp_on_the_host_end() {
        let mut w = two_node_lab();
        let eth0 = eth0_of(&mut w, "container/web1");
        let Arp::Resolved(r) = resolve(
            &mut w,
            "container/web1",
            &eth0,
            weft_model::WORKLOAD_GATEWAY,
            ip("10.244.0.1"),
        ) else {
            panic!("169.254.1.1 not resolved")
        };
        assert_eq!(r.how, How::ProxyArp);
        assert_eq!(r.mac, weft_model::HOST_IFACE_MAC);
        assert_eq!(r.attach.member, "node/master");
        assert_eq!(r.attach.link.name, "cali1");
    }

    #[test]
    fn no_proxy_without_forwarding_or_route() {
        let mut w = two_node_lab();
        let eth0 = eth0_of(&mut w, "container/web1");
        {
            // Forwarding off on the host end: the proxy stays silent.
            let mut s = (*w.snapshot("node/master").unwrap()).clone();
            s.sysctls.insert("conf/cali1/forwarding".into(), "0".into());
            w.replace_snapshot("node/master", s);
        }
        let Arp::NoAnswer(why) = resolve(
            &mut w,
            "container/web1",
            &eth0,
            weft_model::WORKLOAD_GATEWAY,
            ip("10.244.0.1"),
        ) else {
            panic!("answered without forwarding")
        };
        assert!(why.contains("forwarding off"), "{why}");

        let mut w = two_node_lab();
        {
            let mut s = (*w.snapshot("node/master").unwrap()).clone();
            s.main.retain(|r| r.dst.prefix_len() != 0);
            w.replace_snapshot("node/master", s);
        }
        let Arp::NoAnswer(why) = resolve(
            &mut w,
            "container/web1",
            &eth0,
            weft_model::WORKLOAD_GATEWAY,
            ip("10.244.0.1"),
        ) else {
            panic!("answered without a route to 169.254.1.1")
        };
        assert!(why.contains("no route to 169.254.1.1"), "{why}");
    }

    #[test]
    fn node_address_is_answered_by_its_owner_across_the_bridge() {
        let mut w = two_node_lab();
        let eth0 = eth0_of(&mut w, "node/master");
        let Arp::Resolved(r) = resolve(
            &mut w,
            "node/master",
            &eth0,
            ip("198.51.100.12"),
            ip("198.51.100.11"),
        ) else {
            panic!("not resolved")
        };
        assert_eq!(r.how, How::Owner);
        assert_eq!(r.attach.member, "node/slave1");
        assert_eq!(r.mac, [2, 0, 0, 0, 0, 12]);
        assert_eq!(r.attach.bridge.as_ref().unwrap().egress.name, "node1");
    }

    #[test]
    fn nobody_answers_for_an_unknown_address() {
        let mut w = two_node_lab();
        let eth0 = eth0_of(&mut w, "node/master");
        let Arp::NoAnswer(why) = resolve(
            &mut w,
            "node/master",
            &eth0,
            ip("198.51.100.77"),
            ip("198.51.100.11"),
        ) else {
            panic!("resolved an address nobody has")
        };
        assert!(why.contains("198.51.100.77"), "{why}");
    }

    #[test]
    fn permanent_entry_is_used_as_is() {
        let mut w = two_node_lab();
        let eth0 = eth0_of(&mut w, "node/master");
        {
            let mut s = (*w.snapshot("node/master").unwrap()).clone();
            s.neighbours.push(weft_netlink::Neighbour {
                index: 2,
                ip: ip("198.51.100.12"),
                mac: Some([2, 0, 0, 0, 0, 12]),
                state: NUD_PERMANENT,
            });
            w.replace_snapshot("node/master", s);
        }
        let Arp::Resolved(r) = resolve(
            &mut w,
            "node/master",
            &eth0,
            ip("198.51.100.12"),
            ip("198.51.100.11"),
        ) else {
            panic!("not resolved")
        };
        assert_eq!(r.how, How::Permanent);
        assert_eq!(r.attach.member, "node/slave1");
    }
}
