//! Hand-made namespaces for unit tests (no root, no kernel).

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use weft_dataplane::ClusterState;
use weft_model::{Node, Workload};
use weft_netlink::{Address, Link, Route, RouteKind, RouteScope, TABLE_LOCAL};

use crate::model::MemberKind;
use crate::snapshot::NsSnapshot;
use crate::world::{Member, Source, World};

pub fn link(index: u32, name: &str, kind: Option<&str>, mac: [u8; 6]) -> Link {
    Link {
        index,
        name: name.into(),
        kind: kind.map(str::to_string),
        mac: Some(mac),
        mtu: if name == "lo" { 65536 } else { 1500 },
        up: true,
        oper_up: true,
        master: None,
        link: None,
        link_netnsid: None,
    }
}

/// A veth end whose peer is `peer` in the namespace with id `nsid` (as seen from here).
pub fn veth(index: u32, name: &str, mac: [u8; 6], peer: u32, nsid: i32) -> Link {
    let mut l = link(index, name, Some("veth"), mac);
    l.link = Some(peer);
    l.link_netnsid = Some(nsid);
    l
}

pub fn addr(index: u32, cidr: &str) -> Address {
    Address {
        index,
        addr: cidr.parse().expect("test CIDR"),
    }
}

pub fn route(cidr: &str) -> Route {
    Route::new(cidr.parse().expect("test CIDR"))
}

pub fn local(cidr: &str, dev: u32) -> Route {
    let mut r = route(cidr).dev(dev).table(TABLE_LOCAL);
    r.kind = RouteKind::Local;
    r.scope = RouteScope::Host;
    r
}

pub fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("test address")
}

/// Snapshots by member key; netns ids resolved through a table `(from, nsid) -> key`.
#[derive(Default)]
pub struct FakeSource {
    pub snaps: HashMap<String, NsSnapshot>,
    pub nsids: HashMap<(String, i32), String>,
}

impl Source for FakeSource {
    fn load(&mut self, m: &Member) -> anyhow::Result<NsSnapshot> {
        self.snaps
            .get(&m.key)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no snapshot of {}", m.key))
    }

    fn nsid_is(&mut self, from: &Member, nsid: i32, candidate: &Member) -> Option<bool> {
        self.nsids
            .get(&(from.key.clone(), nsid))
            .map(|k| *k == candidate.key)
    }
}

pub fn member(key: &str, kind: MemberKind) -> Member {
    let name = key.rsplit('/').next().unwrap_or(key).to_string();
    Member {
        key: key.into(),
        kind,
        name: name.clone(),
        label: format!("{kind:?} {name}").to_lowercase(),
        netns: format!("test-{name}"),
        node: None,
        host_iface: None,
    }
}

/// A two-node lab: master (web1 .1, web2 .2 in 10.244.0.0/26) and slave1 (bweb1 .64 in
/// 10.244.0.64/26) on a fabric bridge, like `weft lab up` builds it.
pub fn two_node_lab() -> World<'static> {
    let mut src = FakeSource::default();
    let mac = |last: u8| [2, 0, 0, 0, 0, last];
    let ee = weft_model::HOST_IFACE_MAC;
    let mut nsid = |from: &str, id: i32, to: &str| {
        src.nsids.insert((from.to_string(), id), to.to_string());
    };
    nsid("node/master", 0, "fabric");
    nsid("node/master", 1, "container/web1");
    nsid("node/master", 2, "container/web2");
    nsid("node/slave1", 0, "fabric");
    nsid("node/slave1", 1, "container/bweb1");
    nsid("fabric", 0, "node/master");
    nsid("fabric", 1, "node/slave1");
    nsid("container/web1", 0, "node/master");
    nsid("container/web2", 0, "node/master");
    nsid("container/bweb1", 0, "node/slave1");

    let loopback = || link(1, "lo", None, [0; 6]);
    let node =
        |eth_mac: [u8; 6], peer_port: u32, me: &str, cidrs: &[(&str, u32, [u8; 6], u32, i32)]| {
            let mut links = vec![loopback(), veth(2, "eth0", eth_mac, peer_port, 0)];
            for (name, idx, m, peer, id) in cidrs {
                links.push(veth(*idx, name, *m, *peer, *id));
            }
            let mut s = NsSnapshot {
                links,
                addrs: vec![addr(1, "127.0.0.1/8"), addr(2, &format!("{me}/24"))],
                local: vec![local("127.0.0.0/8", 1), local(&format!("{me}/32"), 2)],
                ..Default::default()
            };
            s.sysctls.insert("ip_forward".into(), "1".into());
            for (name, ..) in cidrs {
                s.sysctls
                    .insert(format!("conf/{name}/proxy_arp"), "1".into());
                s.sysctls
                    .insert(format!("conf/{name}/forwarding"), "1".into());
            }
            s.sysctls.insert("conf/eth0/forwarding".into(), "1".into());
            s.main = vec![
                route("0.0.0.0/0").via(ip("198.51.100.1")).dev(2),
                route("198.51.100.0/24")
                    .dev(2)
                    .scope_link()
                    .proto(weft_netlink::RTPROT_KERNEL),
            ];
            s
        };
    let mut master = node(
        mac(11),
        5,
        "198.51.100.11",
        &[("cali1", 3, ee, 2, 1), ("cali2", 4, ee, 2, 2)],
    );
    master.main.extend([
        route("10.244.0.0/26").blackhole().proto(80),
        route("10.244.0.1/32").dev(3).scope_link().proto(80),
        route("10.244.0.2/32").dev(4).scope_link().proto(80),
        route("10.244.0.64/26")
            .via(ip("198.51.100.12"))
            .dev(2)
            .onlink()
            .proto(80),
    ]);
    let mut slave1 = node(mac(12), 6, "198.51.100.12", &[("cali3", 3, ee, 2, 1)]);
    slave1.main.extend([
        route("10.244.0.64/26").blackhole().proto(80),
        route("10.244.0.64/32").dev(3).scope_link().proto(80),
        route("10.244.0.0/26")
            .via(ip("198.51.100.11"))
            .dev(2)
            .onlink()
            .proto(80),
    ]);
    let container = |ip4: &str, m: [u8; 6], peer: u32| NsSnapshot {
        links: vec![loopback(), veth(2, "eth0", m, peer, 0)],
        addrs: vec![addr(1, "127.0.0.1/8"), addr(2, &format!("{ip4}/32"))],
        local: vec![local("127.0.0.0/8", 1), local(&format!("{ip4}/32"), 2)],
        main: vec![route("0.0.0.0/0")
            .via(weft_model::WORKLOAD_GATEWAY)
            .dev(2)
            .onlink()],
        ..Default::default()
    };
    let mut br = link(2, "br0", Some("bridge"), mac(99));
    br.master = None;
    let mut p0 = veth(5, "node0", mac(50), 2, 0);
    p0.master = Some(2);
    let mut p1 = veth(6, "node1", mac(51), 2, 1);
    p1.master = Some(2);
    let fabric = NsSnapshot {
        links: vec![loopback(), br, p0, p1],
        addrs: vec![addr(1, "127.0.0.1/8")],
        local: vec![local("127.0.0.0/8", 1)],
        ..Default::default()
    };
    src.snaps.insert("node/master".into(), master);
    src.snaps.insert("node/slave1".into(), slave1);
    src.snaps.insert("fabric".into(), fabric);
    src.snaps
        .insert("container/web1".into(), container("10.244.0.1", mac(1), 3));
    src.snaps
        .insert("container/web2".into(), container("10.244.0.2", mac(2), 4));
    src.snaps.insert(
        "container/bweb1".into(),
        container("10.244.0.64", mac(64), 3),
    );

    let mut members = vec![
        member("node/master", MemberKind::Node),
        member("node/slave1", MemberKind::Node),
        member("fabric", MemberKind::Fabric),
    ];
    for (name, node, cali) in [
        ("web1", "master", "cali1"),
        ("web2", "master", "cali2"),
        ("bweb1", "slave1", "cali3"),
    ] {
        let mut m = member(&format!("container/{name}"), MemberKind::Container);
        m.node = Some(node.into());
        m.host_iface = Some(cali.into());
        members.push(m);
    }
    World::new(members, Box::new(src))
}

/// The desired state matching [`two_node_lab`].
pub fn two_node_cluster() -> ClusterState {
    let node = |name: &str, a: &str| Node::new(name, ip(a));
    let wl = |name: &str, node: &str, a: &str, cali: &str| Workload {
        name: name.into(),
        id: format!("id-{name}"),
        node: node.into(),
        network: "net1".into(),
        ip: Some(ip(a)),
        host_iface: cali.into(),
        labels: BTreeMap::new(),
        image: "toolbox".into(),
        command: vec![],
        net_of: None,
        created: 0,
    };
    let block = |cidr: &str, node: &str| weft_ipam::Block {
        cidr: cidr.parse().unwrap(),
        pool: "default-ipv4-ippool".into(),
        affinity: Some(node.into()),
        allocations: BTreeMap::new(),
        sequence: 0,
    };
    ClusterState {
        revision: 1,
        nodes: vec![
            node("master", "198.51.100.11"),
            node("slave1", "198.51.100.12"),
        ],
        networks: vec![],
        workloads: vec![
            wl("web1", "master", "10.244.0.1", "cali1"),
            wl("web2", "master", "10.244.0.2", "cali2"),
            wl("bweb1", "slave1", "10.244.0.64", "cali3"),
        ],
        blocks: vec![
            block("10.244.0.0/26", "master"),
            block("10.244.0.64/26", "slave1"),
        ],
        ..Default::default()
    }
}
