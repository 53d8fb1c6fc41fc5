//! How a leg of a trace ends, why, and what to change.

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::model::Leg;

/// The end of a leg. `member` is always the lab member where it happens (a node name, a
/// container name, `fabric`, `gw`, `ext`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Disposition {
    /// Delivered to a local address of `member`.
    Delivered { member: String, iface: String },
    /// No route matched the destination.
    NoRoute { member: String, dst: Ipv4Addr },
    /// A blackhole route matched. `missing` is the more specific route weft's plan has for
    /// this destination and the kernel lacks, when that is why.
    Blackholed {
        member: String,
        route: String,
        missing: Option<String>,
    },
    /// An unreachable or prohibit route matched (the sender gets an ICMP error).
    Unreachable {
        member: String,
        route: String,
        missing: Option<String>,
    },
    /// The ingress interface does not forward (net.ipv4.ip_forward / conf.IF.forwarding off).
    ForwardingDisabled {
        member: String,
        iface: String,
        ip_forward: Option<bool>,
    },
    /// Nobody answers ARP for the next hop on the egress interface.
    NoNeighbour {
        member: String,
        iface: String,
        ip: Ipv4Addr,
        reason: String,
    },
    /// The packet is larger than an MTU on the way. `on_receive`: dropped silently by the
    /// receiving end of a veth; otherwise refused on transmit (ICMP fragmentation needed).
    MtuExceeded {
        member: String,
        iface: String,
        mtu: u32,
        len: u16,
        on_receive: bool,
        /// The other end of the link, when the drop comes from a mismatch.
        peer_mtu: Option<u32>,
        /// The MTU is a path MTU the sender learned, not its device's.
        learned: bool,
    },
    /// An interface on the path is down.
    LinkDown { member: String, iface: String },
    /// Reverse path filtering drops the packet.
    RpFilter {
        member: String,
        iface: String,
        src: Ipv4Addr,
    },
    /// The TTL ran out.
    TtlExceeded { member: String },
    /// The frame's destination MAC is not the receiving interface's (a stale neighbour entry).
    WrongMac {
        member: String,
        iface: String,
        mac: String,
    },
    /// The packet leaves through an interface into a namespace weft does not manage (or whose
    /// state it cannot read): what happens beyond is not known.
    Unmanaged {
        member: String,
        iface: String,
        detail: String,
    },
    /// Something on the path this version does not model; nothing is guessed beyond it.
    Unsupported { member: String, what: String },
    /// The path loops or is longer than any lab path.
    TooManyHops { member: String },
    /// weft's nftables table drops or rejects the packet (see [`Denial`]).
    Denied(Box<Denial>),
    /// The destination is a service without endpoints: rejected at once (ICMP port
    /// unreachable).
    NoEndpoints {
        member: String,
        service: String,
        change: String,
    },
}

impl Disposition {
    /// True when the packet reaches its destination.
    pub fn delivered(&self) -> bool {
        matches!(self, Disposition::Delivered { .. })
    }

    /// Short name of the outcome (the JSON `kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Disposition::Delivered { .. } => "delivered",
            Disposition::NoRoute { .. } => "no_route",
            Disposition::Blackholed { .. } => "blackholed",
            Disposition::Unreachable { .. } => "unreachable",
            Disposition::ForwardingDisabled { .. } => "forwarding_disabled",
            Disposition::NoNeighbour { .. } => "no_neighbour",
            Disposition::MtuExceeded { .. } => "mtu_exceeded",
            Disposition::LinkDown { .. } => "link_down",
            Disposition::RpFilter { .. } => "rp_filter",
            Disposition::TtlExceeded { .. } => "ttl_exceeded",
            Disposition::WrongMac { .. } => "wrong_mac",
            Disposition::Unmanaged { .. } => "unmanaged",
            Disposition::Unsupported { .. } => "unsupported",
            Disposition::TooManyHops { .. } => "too_many_hops",
            Disposition::Denied(_) => "denied",
            Disposition::NoEndpoints { .. } => "no_endpoints",
        }
    }

    /// One sentence: what happens and where.
    pub fn reason(&self) -> String {
        match self {
            Disposition::Delivered { member, iface } => format!("delivered to {member} ({iface})"),
            Disposition::NoRoute { member, dst } => format!("no route to {dst} on {member}"),
            Disposition::Blackholed { member, route, missing } => match missing {
                Some(m) => format!(
                    "blackholed on {member} by `{route}`: the route `{m}` of weft's plan is missing from the kernel"
                ),
                None => format!("blackholed on {member} by `{route}`"),
            },
            Disposition::Unreachable { member, route, missing } => match missing {
                Some(m) => format!(
                    "refused on {member} by `{route}` (ICMP unreachable): the route `{m}` of weft's plan is missing from the kernel"
                ),
                None => format!("refused on {member} by `{route}` (ICMP unreachable)"),
            },
            Disposition::ForwardingDisabled { member, iface, ip_forward } => format!(
                "forwarding disabled on {member}: {iface} does not forward{} (dropped silently)",
                match ip_forward {
                    Some(false) => " and net.ipv4.ip_forward=0",
                    _ => "",
                }
            ),
            Disposition::NoNeighbour { member, iface, ip, reason } => {
                format!("no neighbour on {member}: nobody answers ARP for {ip} on {iface} ({reason})")
            }
            Disposition::MtuExceeded { member, mtu, len, learned: true, .. } => format!(
                "MTU exceeded on {member}: it has learned a path MTU of {mtu} towards the destination, so the {len}-byte packet may not leave"
            ),
            Disposition::MtuExceeded { member, iface, mtu, len, on_receive, .. } => {
                if *on_receive {
                    format!("MTU exceeded: {member} drops the {len}-byte packet on receive, {iface} has MTU {mtu}")
                } else {
                    format!("MTU exceeded on {member}: the {len}-byte packet does not fit {iface} (MTU {mtu}) and may not be fragmented")
                }
            }
            Disposition::LinkDown { member, iface } => format!("{iface} on {member} is down"),
            Disposition::RpFilter { member, iface, src } => format!(
                "reverse path filter on {member} drops the packet from {src}: {src} is not routed back via {iface}"
            ),
            Disposition::TtlExceeded { member } => format!("TTL exceeded on {member}"),
            Disposition::WrongMac { member, iface, mac } => format!(
                "{member} drops the frame on {iface}: it is addressed to {mac}, not to {iface} (stale neighbour entry upstream)"
            ),
            Disposition::Unmanaged { member, iface, detail } => format!(
                "leaves {member} through {iface} into {detail}; the path beyond is not known"
            ),
            Disposition::Unsupported { member, what } => {
                format!("not modelled on {member}: {what}; the path beyond is not predicted")
            }
            Disposition::TooManyHops { member } => {
                format!("the path is longer than any lab path (a loop?) at {member}")
            }
            Disposition::Denied(d) => format!(
                "denied on {} at the {} hook by {} ({}: `{}`)",
                d.member,
                d.hook,
                d.by,
                if d.action == "reject" { "rejected, the sender is told" } else { "dropped silently" },
                d.rule
            ),
            Disposition::NoEndpoints { member, service, .. } => format!(
                "{service} has no endpoints: {member} rejects the packet at once (ICMP port unreachable)"
            ),
        }
    }

    /// What to change, when something can be changed.
    pub fn fix(&self) -> Option<String> {
        match self {
            Disposition::Delivered { .. } => None,
            Disposition::NoRoute { member, dst } => Some(format!(
                "add a route to {dst} on {member}, or check that the destination is on a network weft knows (weft ps, weft ipam show --show-blocks)"
            )),
            Disposition::Blackholed { member, missing: Some(m), .. }
            | Disposition::Unreachable { member, missing: Some(m), .. } => Some(format!(
                "let weft's agent resync (the agent of {member} restores planned routes on its next periodic resync) or re-add the route: weft lab exec {member} -- ip route replace {m}"
            )),
            Disposition::Blackholed { member, route, .. } => Some(format!(
                "the destination is in a block of {member} but no workload there holds it: check the address (weft ps), or remove `{route}` if it is not weft's"
            )),
            Disposition::Unreachable { member, route, .. } => Some(format!(
                "remove or replace `{route}` on {member} if the destination should be reachable"
            )),
            Disposition::ForwardingDisabled { member, iface, .. } => Some(format!(
                "enable forwarding on {member}: weft lab exec {member} -- sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward' (or only {iface}: echo 1 > /proc/sys/net/ipv4/conf/{iface}/forwarding)"
            )),
            Disposition::NoNeighbour { member, iface, ip, .. } => Some(format!(
                "make {ip} answer on the segment of {iface} of {member}: if it is a workload's gateway (169.254.1.1), enable proxy ARP and forwarding on the host end (echo 1 > /proc/sys/net/ipv4/conf/IFACE/proxy_arp) and keep a route to it on the node; otherwise check that the owner of {ip} is up and attached"
            )),
            Disposition::MtuExceeded { learned: true, .. } => Some(
                "a link further on has a smaller MTU: trace with --size below the learned MTU to see the path, and give that link the MTU of its peers; the learned value expires by itself (or: ip route flush cache)".into(),
            ),
            Disposition::MtuExceeded { member, iface, peer_mtu: Some(p), .. } => Some(format!(
                "give both ends of the link the same MTU: weft lab exec {member} -- ip link set dev {iface} mtu {p}"
            )),
            Disposition::MtuExceeded { member, iface, mtu, .. } => Some(format!(
                "send packets of at most {mtu} bytes, or raise the MTU of {iface} on {member} (ip link set dev {iface} mtu N) on every link of the path"
            )),
            Disposition::LinkDown { member, iface } => Some(format!(
                "bring it up: weft lab exec {member} -- ip link set dev {iface} up"
            )),
            Disposition::RpFilter { member, iface, .. } => Some(format!(
                "route the source back via {iface} on {member}, or relax the filter: echo 2 > /proc/sys/net/ipv4/conf/{iface}/rp_filter (and conf/all/rp_filter)"
            )),
            Disposition::TtlExceeded { .. } => Some("look for a routing loop on the path".into()),
            Disposition::WrongMac { .. } => Some(
                "flush the stale neighbour entry on the previous hop (ip neigh flush dev IFACE)"
                    .into(),
            ),
            Disposition::Unmanaged { .. } | Disposition::Unsupported { .. } => None,
            Disposition::TooManyHops { .. } => {
                Some("look for a routing loop between the hops listed".into())
            }
            Disposition::Denied(d) => Some(d.change.clone()),
            Disposition::NoEndpoints { change, .. } => Some(change.clone()),
        }
    }
}

/// Who in weft's table refused a packet: `by` names the policy, profile or rule that decides,
/// `rule` is that rule, `change` what to change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub member: String,
    /// `forward`, `input`, `output`.
    pub hook: String,
    pub chain: String,
    pub rule: String,
    pub by: String,
    /// `drop` or `reject`.
    pub action: String,
    pub change: String,
}

/// A disposition placed on a hop of a leg, with its reason and fix spelled out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub leg: Leg,
    /// Index (in `Trace::hops`) of the hop where the leg ends.
    pub hop: usize,
    pub disposition: Disposition,
    pub reason: String,
    pub fix: Option<String>,
}

impl Verdict {
    /// Places `d` at hop `hop` of `leg`.
    pub fn new(leg: Leg, hop: usize, d: Disposition) -> Verdict {
        Verdict {
            leg,
            hop,
            reason: d.reason(),
            fix: d.fix(),
            disposition: d,
        }
    }

    /// True when the leg delivers.
    pub fn delivered(&self) -> bool {
        self.disposition.delivered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_fix_names_the_node_and_the_sysctl() {
        let d = Disposition::ForwardingDisabled {
            member: "slave1".into(),
            iface: "eth0".into(),
            ip_forward: Some(false),
        };
        assert!(d.reason().contains("forwarding disabled on slave1"));
        let fix = d.fix().unwrap_or_default();
        assert!(
            fix.contains("ip_forward") && fix.contains("slave1"),
            "{fix}"
        );
    }

    #[test]
    fn missing_planned_route_says_resync_or_re_add() {
        let d = Disposition::Blackholed {
            member: "master".into(),
            route: "blackhole 10.244.0.0/26 proto 80".into(),
            missing: Some("10.244.0.2/32 dev cali0 scope link proto 80".into()),
        };
        let fix = d.fix().unwrap_or_default();
        assert!(
            fix.contains("agent resync") && fix.contains("or re-add the route"),
            "{fix}"
        );
        assert!(
            fix.contains("ip route replace 10.244.0.2/32 dev cali0"),
            "{fix}"
        );
        let v = Verdict::new(Leg::Forward, 3, d);
        let j = serde_json::to_value(&v).unwrap_or_default();
        assert_eq!(j["disposition"]["kind"], "blackholed");
        assert_eq!(j["hop"], 3);
    }
}
