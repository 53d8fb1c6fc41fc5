//! The namespaces a trace may cross and how they are wired: lab members, their snapshots
//! (read lazily, once per trace), veth peers (by peer index and netns id) and the segments
//! behind a bridge.

use std::collections::HashMap;
use std::rc::Rc;

use anyhow::Result;
use weft_dataplane::{plan, ClusterState, PlanInput};
use weft_model::Encap;
use weft_netlink::{Link, Route};

use crate::model::MemberKind;
use crate::snapshot::NsSnapshot;

/// A network namespace of the lab that weft manages.
#[derive(Clone, Debug)]
pub struct Member {
    /// Unique key: `node/NAME`, `container/NAME`, `fabric`, `gw`, `ext`.
    pub key: String,
    pub kind: MemberKind,
    /// Node or container name, or `fabric` / `gw` / `ext`.
    pub name: String,
    /// For people: `node master`, `container web1 (on master)`.
    pub label: String,
    /// Where the namespace is: `weft-LAB-master`, `/proc/PID/ns/net`.
    pub netns: String,
    /// Containers: the node they run on.
    pub node: Option<String>,
    /// Containers: the host end of their veth.
    pub host_iface: Option<String>,
}

/// Where snapshots come from: the kernel (see `live`) or a test's hand-made state.
pub trait Source {
    /// Reads a member's namespace.
    fn load(&mut self, m: &Member) -> Result<NsSnapshot>;
    /// Whether the netns id `nsid`, as seen from `from`, is `candidate`'s namespace; None
    /// when this cannot be told (then peers are matched by interface indexes alone).
    fn nsid_is(&mut self, from: &Member, nsid: i32, candidate: &Member) -> Option<bool>;
    /// The MTU the kernel of `m` applies to packets it makes for `dst` when smaller than the
    /// device's (a learned path MTU); None when none is known.
    fn route_mtu(&mut self, _m: &Member, _dst: std::net::Ipv4Addr) -> Option<u32> {
        None
    }
}

/// The other end of a veth.
#[derive(Clone, Debug)]
pub enum Peer {
    /// Found in a member's namespace.
    Found { member: String, link: Link },
    /// Not in any namespace weft manages (or none could be read).
    Unknown { detail: String },
}

/// A bridge switching a frame from one port to another (or up to its own device).
#[derive(Clone, Debug)]
pub struct BridgeTransit {
    pub member: String,
    pub bridge: Link,
    pub ingress: Link,
    pub egress: Link,
}

/// An interface reachable at layer 2 from a sending interface.
#[derive(Clone, Debug)]
pub struct Attach {
    pub member: String,
    pub link: Link,
    /// The bridge in between, if any.
    pub bridge: Option<BridgeTransit>,
}

/// The L2 segment behind an interface.
#[derive(Clone, Debug, Default)]
pub struct Segment {
    pub attached: Vec<Attach>,
    /// Ports whose far end is outside what weft manages.
    pub unknown: Vec<String>,
}

/// The lab as the simulation sees it.
pub struct World<'a> {
    pub members: Vec<Member>,
    source: Box<dyn Source + 'a>,
    cache: HashMap<String, Result<Rc<NsSnapshot>, String>>,
    cluster: Option<(ClusterState, Encap)>,
    plans: HashMap<String, Option<Rc<Vec<Route>>>>,
    /// Netfilter: node tables, conntrack and the random choice followed.
    pub nf: crate::netfilter::Netfilter,
}

impl<'a> World<'a> {
    /// A world of `members` read through `source`.
    pub fn new(members: Vec<Member>, source: Box<dyn Source + 'a>) -> World<'a> {
        World {
            members,
            source,
            cache: HashMap::new(),
            cluster: None,
            plans: HashMap::new(),
            nf: Default::default(),
        }
    }

    /// The cluster's desired state, when the world has it.
    pub fn cluster_state(&self) -> Option<&ClusterState> {
        self.cluster.as_ref().map(|(s, _)| s)
    }

    /// weft's table on a node member (None: not a node, or no cluster state).
    pub fn nf_table(&mut self, key: &str) -> Option<Rc<crate::netfilter::Indexed>> {
        let m = self.member(key)?;
        if m.kind != MemberKind::Node {
            return None;
        }
        let name = m.name.clone();
        let (state, _) = self.cluster.as_ref()?;
        self.nf.table(state, &name)
    }

    /// Gives the world the cluster's desired state, so node hops can be compared to the plan.
    pub fn with_plan(mut self, state: ClusterState, encap: Encap) -> World<'a> {
        self.cluster = Some((state, encap));
        self
    }

    /// The member with this key.
    pub fn member(&self, key: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.key == key)
    }

    /// The member's snapshot, read on first use. The error says why it could not be read.
    pub fn snapshot(&mut self, key: &str) -> Result<Rc<NsSnapshot>, String> {
        if let Some(r) = self.cache.get(key) {
            return r.clone();
        }
        let r = match self.members.iter().find(|m| m.key == key) {
            None => Err(format!("{key} is not a member of the lab")),
            Some(m) => self
                .source
                .load(m)
                .map(Rc::new)
                .map_err(|e| format!("cannot read {}: {e:#}", m.label)),
        };
        self.cache.insert(key.to_string(), r.clone());
        r
    }

    /// The route MTU for packets `key` makes to `dst` (see [`Source::route_mtu`]).
    pub fn route_mtu(&mut self, key: &str, dst: std::net::Ipv4Addr) -> Option<u32> {
        let m = self.member(key)?.clone();
        self.source.route_mtu(&m, dst)
    }

    /// Replaces a member's snapshot (tests build faults this way).
    #[cfg(test)]
    pub fn replace_snapshot(&mut self, key: &str, s: NsSnapshot) {
        self.cache.insert(key.to_string(), Ok(Rc::new(s)));
        self.plans.remove(key);
    }

    /// Weft's planned routes for a node member (None: not a node, or no cluster state).
    pub fn planned_routes(&mut self, key: &str) -> Option<Rc<Vec<Route>>> {
        if let Some(p) = self.plans.get(key) {
            return p.clone();
        }
        let m = self.member(key)?.clone();
        let snap = match (&self.cluster, m.kind) {
            (Some(_), MemberKind::Node) => self.snapshot(key).ok(),
            _ => None,
        };
        let p = match (&self.cluster, snap) {
            (Some((state, encap)), Some(s)) => Some(s).map(|s| {
                let ifindex = |n: &str| s.link_by_name(n).map(|l| l.index);
                Rc::new(
                    plan(&PlanInput {
                        node: &m.name,
                        state,
                        encap: *encap,
                        ifindex: &ifindex,
                    })
                    .routes,
                )
            }),
            _ => None,
        };
        self.plans.insert(key.to_string(), p.clone());
        p
    }

    /// Members to search for the peer of `link` in `from`, most likely first.
    fn candidates(&self, from: &Member, link: &Link) -> Vec<String> {
        let mut first: Vec<String> = Vec::new();
        match from.kind {
            MemberKind::Container => {
                if let Some(n) = &from.node {
                    first.push(format!("node/{n}"));
                }
            }
            MemberKind::Node => {
                for m in &self.members {
                    if m.host_iface.as_deref() == Some(link.name.as_str())
                        && m.node.as_deref() == Some(from.name.as_str())
                    {
                        first.push(m.key.clone());
                    }
                }
                first.push("fabric".into());
            }
            MemberKind::Fabric => {
                first.push(link.name.clone());
            }
            MemberKind::Gateway | MemberKind::External => first.push("fabric".into()),
        }
        let mut all = first;
        for m in &self.members {
            if !all.contains(&m.key) {
                all.push(m.key.clone());
            }
        }
        all
    }

    /// The other end of veth `link` of member `from`.
    pub fn peer(&mut self, from: &str, link: &Link) -> Peer {
        let Some(fm) = self.member(from).cloned() else {
            return Peer::Unknown {
                detail: format!("{from} is not a member of the lab"),
            };
        };
        let Some(peer_index) = link.link else {
            return Peer::Unknown {
                detail: format!("{} reports no peer interface", link.name),
            };
        };
        let mut unreadable = Vec::new();
        for key in self.candidates(&fm, link) {
            let Some(cand) = self.member(&key).cloned() else {
                continue;
            };
            match link.link_netnsid {
                // No netns id: the peer is in the same namespace.
                None if key != fm.key => continue,
                None => {}
                Some(_) if key == fm.key => continue,
                Some(id) if self.source.nsid_is(&fm, id, &cand) == Some(false) => continue,
                Some(_) => {}
            }
            let snap = match self.snapshot(&key) {
                Ok(s) => s,
                Err(e) => {
                    unreadable.push(e);
                    continue;
                }
            };
            if let Some(p) = snap.link(peer_index) {
                if p.kind.as_deref() == Some("veth") && p.link == Some(link.index) {
                    return Peer::Found {
                        member: key,
                        link: p.clone(),
                    };
                }
            }
        }
        let mut detail = format!(
            "a namespace weft does not manage (the peer of {} is ifindex {peer_index}{})",
            link.name,
            link.link_netnsid
                .map(|n| format!(" in netns id {n} as seen from {}", fm.label))
                .unwrap_or_default()
        );
        if !unreadable.is_empty() {
            detail.push_str(&format!("; unreadable: {}", unreadable.join("; ")));
        }
        Peer::Unknown { detail }
    }

    /// Everything reachable at layer 2 from `link` of `from`: the veth peer, or, when the peer
    /// is a bridge port, the far ends of the bridge's other ports and the bridge itself.
    /// Err says why the segment cannot be known (not a veth, peer not managed).
    pub fn segment(&mut self, from: &str, link: &Link) -> Result<Segment, String> {
        if link.kind.as_deref() != Some("veth") {
            return Err(format!(
                "{} is a {} device; only veth pairs and bridges are modelled",
                link.name,
                crate::snapshot::link_kind(link)
            ));
        }
        let (pm, plink) = match self.peer(from, link) {
            Peer::Found { member, link } => (member, link),
            Peer::Unknown { detail } => return Err(detail),
        };
        let snap = self.snapshot(&pm)?;
        let bridge = plink
            .master
            .and_then(|b| snap.link(b))
            .filter(|b| b.kind.as_deref() == Some("bridge"))
            .cloned();
        let Some(bridge) = bridge else {
            return Ok(Segment {
                attached: vec![Attach {
                    member: pm,
                    link: plink,
                    bridge: None,
                }],
                unknown: vec![],
            });
        };
        let mut seg = Segment::default();
        let transit = |egress: &Link| BridgeTransit {
            member: pm.clone(),
            bridge: bridge.clone(),
            ingress: plink.clone(),
            egress: egress.clone(),
        };
        seg.attached.push(Attach {
            member: pm.clone(),
            link: bridge.clone(),
            bridge: Some(transit(&bridge)),
        });
        let ports: Vec<Link> = snap
            .bridge_ports(bridge.index)
            .filter(|p| p.index != plink.index)
            .cloned()
            .collect();
        for port in ports {
            if port.kind.as_deref() != Some("veth") {
                seg.unknown.push(format!(
                    "{} (a {} port)",
                    port.name,
                    crate::snapshot::link_kind(&port)
                ));
                continue;
            }
            match self.peer(&pm, &port) {
                Peer::Found { member, link } => seg.attached.push(Attach {
                    member,
                    link,
                    bridge: Some(transit(&port)),
                }),
                Peer::Unknown { detail } => seg.unknown.push(format!("{}: {detail}", port.name)),
            }
        }
        Ok(seg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::two_node_lab;

    #[test]
    fn veth_peers_are_found_by_index_and_netns_id() {
        let mut w = two_node_lab();
        let web1 = w.snapshot("container/web1").unwrap();
        let eth0 = web1.link_by_name("eth0").unwrap().clone();
        // Index 3 also exists in slave1 (its cali) pointing back at index 2: the netns id
        // tells them apart.
        let Peer::Found { member, link } = w.peer("container/web1", &eth0) else {
            panic!("peer not found")
        };
        assert_eq!(member, "node/master");
        assert_eq!(link.name, "cali1");
    }

    #[test]
    fn segment_behind_the_fabric_lists_the_other_nodes_and_the_bridge() {
        let mut w = two_node_lab();
        let m = w.snapshot("node/master").unwrap();
        let eth0 = m.link_by_name("eth0").unwrap().clone();
        let seg = w.segment("node/master", &eth0).unwrap();
        let names: Vec<_> = seg
            .attached
            .iter()
            .map(|a| format!("{}:{}", a.member, a.link.name))
            .collect();
        assert_eq!(names, ["fabric:br0", "node/slave1:eth0"]);
        let t = seg.attached[1].bridge.as_ref().unwrap();
        assert_eq!(
            (t.ingress.name.as_str(), t.egress.name.as_str()),
            ("node0", "node1")
        );
    }

    #[test]
    fn unknown_peer_says_so() {
        let mut w = two_node_lab();
        let mut l = crate::testkit::veth(9, "vethX", [1; 6], 42, 7);
        l.link_netnsid = Some(7);
        let Peer::Unknown { detail } = w.peer("node/master", &l) else {
            panic!("found a peer that does not exist")
        };
        assert!(detail.contains("does not manage"), "{detail}");
        assert!(w.segment("node/master", &l).is_err());
    }
}
