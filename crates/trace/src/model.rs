//! The trace as data: endpoints, hops, steps, packets and the verification report. Everything
//! here is serialised as the JSON schema documented in `SCHEMA.md` (field names are stable).

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::disposition::Verdict;
use crate::verify::VerifyReport;

/// Version tag of the JSON document (bumped on incompatible changes).
pub const SCHEMA: &str = "weft.trace/v1";

/// The transport protocol of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Icmp,
    Tcp,
    Udp,
}

impl Proto {
    /// IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Icmp => 1,
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

impl std::str::FromStr for Proto {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "icmp" => Ok(Proto::Icmp),
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => anyhow::bail!("protocol {s:?}: use icmp, tcp or udp"),
        }
    }
}

impl std::fmt::Display for Proto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proto::Icmp => "icmp",
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// What kind of thing a namespace of the lab is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberKind {
    Node,
    Container,
    Fabric,
    Gateway,
    External,
}

/// Which way the packet travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Leg {
    Forward,
    Reply,
}

impl std::fmt::Display for Leg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Leg::Forward => "forward",
            Leg::Reply => "reply",
        })
    }
}

/// FROM or TO as resolved against the lab.
#[derive(Clone, Debug, Serialize)]
pub struct Endpoint {
    /// What the user wrote.
    pub spec: String,
    /// `container`, `node`, `gw`, `ext` or `address` (an IP no lab member owns).
    pub kind: String,
    /// Human name: `container web1 (on master)`, `node master`, ...
    pub label: String,
    pub ip: Ipv4Addr,
    /// The network namespace holding it (`weft-LAB-master`, `/proc/PID/ns/net`), when known.
    pub netns: Option<String>,
}

/// One network interface as a hop shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Iface {
    pub name: String,
    pub index: u32,
    /// `veth`, `bridge`, `loopback`, ...
    pub kind: String,
    pub mac: Option<String>,
    pub mtu: u32,
}

/// The headers of the packet on one wire, as tcpdump -e would show them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Packet {
    pub src_mac: String,
    pub dst_mac: String,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: Proto,
    pub ttl: u8,
    /// IP total length.
    pub len: u16,
    /// TCP/UDP source port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// TCP/UDP destination port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    /// ICMP echo identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_id: Option<u16>,
    /// The transport part as tcpdump says it (`ICMP echo request, id 7, seq 1, length 64`,
    /// `VXLAN, vni 4096`).
    pub info: String,
    /// The fields this hop changed (`src_mac`, `dst_mac`, `ttl`, `encap`; later NAT'd
    /// addresses).
    pub rewritten: Vec<String>,
    /// The encapsulated frame, when this is a tunnel packet (outer and inner together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner: Option<Box<Packet>>,
    /// The tcpdump-like line, rewritten fields marked with `*`; an inner frame follows `|`.
    pub line: String,
}

/// One namespace the packet crosses.
#[derive(Clone, Debug, Serialize)]
pub struct Hop {
    pub index: usize,
    pub leg: Leg,
    /// Lab member key (`node/master`, `container/web1`, `fabric`, `gw`, `ext`).
    pub member: String,
    pub kind: MemberKind,
    pub label: String,
    pub netns: String,
    /// Where the packet came in (None: it was made here).
    pub ingress: Option<Iface>,
    /// Where the packet left (None: it stopped or was delivered here).
    pub egress: Option<Iface>,
    /// The frame as it arrived.
    pub rx: Option<Packet>,
    /// The frame as it left.
    pub tx: Option<Packet>,
    pub steps: Vec<Step>,
    /// Set on the last hop of a leg.
    pub disposition: Option<Verdict>,
}

/// One decision taken inside a hop; `text` says it for people.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub detail: StepDetail,
    pub text: String,
    /// False when this step is where the packet stops.
    pub ok: bool,
}

/// The decision itself. Netfilter hooks and NAT steps land here later.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepDetail {
    /// The packet is made here.
    Originate { src: Ipv4Addr, dst: Ipv4Addr },
    /// A routing decision, as `ip route get` would take it.
    Route {
        table: String,
        dst: Ipv4Addr,
        /// The table entry, in `ip route` form; None when nothing matched.
        entry: Option<String>,
        /// `unicast`, `local`, `blackhole`, `unreachable`, `prohibit`, `none`.
        result: String,
        src: Option<Ipv4Addr>,
        /// Whether weft's plan for this node has the entry (None: not a node, or no plan).
        planned: Option<bool>,
    },
    /// Resolution of the next hop's MAC address.
    Neighbour {
        ip: Ipv4Addr,
        iface: String,
        mac: Option<String>,
        /// `owner`, `proxy_arp`, `cache`, `permanent`, `none`.
        how: String,
        by: Option<String>,
    },
    /// The forwarding switch of the ingress interface.
    Forwarding { iface: String, enabled: bool },
    /// Reverse path filter on the ingress interface.
    RpFilter { iface: String, mode: u8, pass: bool },
    /// Packet size against an interface MTU.
    Mtu {
        iface: String,
        mtu: u32,
        len: u16,
        pass: bool,
    },
    /// TTL decrement of a routed hop.
    Ttl { before: u8, after: u8 },
    /// A bridge switching the frame between two of its ports.
    Bridge {
        bridge: String,
        ingress: String,
        egress: String,
        /// `fdb` when the MAC is learned on the egress port, `flood` otherwise.
        by: String,
    },
    /// The frame crosses a veth pair to the peer namespace.
    Wire {
        from: String,
        to: String,
        member: String,
    },
    /// Local delivery.
    Deliver { iface: String },
    /// The frame enters a tunnel device and is wrapped in an outer packet.
    Encap {
        device: String,
        /// `vxlan`.
        tunnel: String,
        vni: u32,
        outer_src: Option<Ipv4Addr>,
        outer_dst: Ipv4Addr,
        dport: u16,
    },
    /// The outer packet is delivered to the tunnel port and its frame comes out of `device`.
    Decap { device: String, vni: u32 },
    /// weft's nftables table at one hook: the chains walked and what decided.
    Netfilter {
        /// `prerouting`, `input`, `forward`, `output`, `postrouting`.
        hook: String,
        /// Base chains and chains entered, in order.
        chains: Vec<String>,
        /// `accept`, `drop`, `reject`.
        verdict: String,
        /// The deciding rule (its comment, else the rule as `nft list` prints it).
        rule: Option<String>,
        /// Who that rule stands for: `policy default/x`, `profile net1`, `service default.web`.
        by: Option<String>,
    },
    /// An address rewrite: a service's DNAT, masquerade, or conntrack undoing one for the
    /// answer.
    Nat {
        hook: String,
        /// `dnat`, `masquerade`, `un-dnat`, `un-masquerade`.
        nat: String,
        /// `ip[:port]` before and after.
        before: String,
        after: String,
        /// For a service: the endpoints chosen from (`ip:port`), and which one this trace follows.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        candidates: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        chosen: Option<usize>,
    },
    /// Anything else worth knowing (what is not known, a stale cache, ...).
    Note,
}

/// A whole trace: what was asked, the predicted hops of both legs, how each leg ends, and the
/// verification when asked for.
#[derive(Clone, Debug, Serialize)]
pub struct Trace {
    pub schema: String,
    pub lab: String,
    pub from: Endpoint,
    pub to: Endpoint,
    pub proto: Proto,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// IP total length of the probe.
    pub size: u16,
    pub hops: Vec<Hop>,
    /// How the forward leg ends.
    pub forward: Verdict,
    /// How the reply leg ends (None when the forward leg did not deliver).
    pub reply: Option<Verdict>,
    /// The overall outcome: the forward verdict unless it delivered, then the reply's.
    pub disposition: Verdict,
    /// What the trace could not know, said plainly.
    pub notes: Vec<String>,
    pub verify: Option<VerifyReport>,
}

impl Trace {
    /// Exit code for scripts: 1 when a verification ran and observation differed from the
    /// prediction, 0 otherwise.
    pub fn exit_code(&self) -> i32 {
        match &self.verify {
            Some(v) if !v.agrees => 1,
            _ => 0,
        }
    }
}
