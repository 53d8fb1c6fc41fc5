use weft_ipam::Block;
use weft_model::{Network, PortProto, PublishedPort, Workload};

use super::*;
use crate::rules::{ruleset, RulesInput};

fn bridge_net(name: &str, cidr: &str, internal: bool) -> Network {
    Network {
        driver: Driver::Bridge,
        subnet: Some(cidr.parse().unwrap()),
        nat_outgoing: !internal,
        bridge: (name == "b2").then(|| "mydocker".to_string()),
        internal,
        deny_action: (name == "b2").then_some(DenyAction::Reject),
        ..Network::new(name, &format!("net-{name}"))
    }
}

fn block(cidr: &str, pool: &str, node: &str) -> Block {
    Block::claimed(cidr.parse().unwrap(), pool, node)
}

fn table() -> String {
    table_of("n1")
}

/// The table of `node` for two bridge networks and an internal one, with a port published on
/// n1 and one on n2.
fn table_of(node: &str) -> String {
    let networks = vec![
        bridge_net("b1", "10.10.0.0/16", false),
        bridge_net("b2", "10.20.0.0/16", false),
        bridge_net("inside", "10.30.0.0/16", true),
    ];
    let blocks = vec![
        block("10.10.0.0/24", "net-b1", "n1"),
        block("10.10.1.0/24", "net-b1", "n2"),
        block("10.20.0.0/24", "net-b2", "n1"),
        block("10.30.0.0/24", "net-inside", "n1"),
    ];
    let ports = vec![
        PublishedPort {
            node: "n1".into(),
            proto: PortProto::Tcp,
            host_port: 8080,
            workload: "web".into(),
            ip: Some(Ipv4Addr::new(10, 10, 0, 2)),
            container_port: 80,
        },
        PublishedPort {
            node: "n2".into(),
            proto: PortProto::Udp,
            host_port: 5353,
            workload: "elsewhere".into(),
            ip: Some(Ipv4Addr::new(10, 10, 1, 2)),
            container_port: 53,
        },
    ];
    let workloads: Vec<Workload> = vec![];
    let input = RulesInput {
        node,
        networks: &networks,
        workloads: &workloads,
        policies: &[],
        cluster_nets: vec![
            "10.10.0.0/16".parse().unwrap(),
            "10.20.0.0/16".parse().unwrap(),
            "10.30.0.0/16".parse().unwrap(),
        ],
        services: &[],
        node_addrs: vec![Ipv4Addr::new(198, 51, 100, 11)],
        deny_action: DenyAction::Drop,
        blocks: &blocks,
        ports: &ports,
    };
    ruleset(&input).to_string()
}

fn line_with<'a>(t: &'a str, needle: &str) -> &'a str {
    t.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{t}"))
}

#[test]
fn isolation_by_network_with_its_deny_action() {
    let t = table();
    let b1 = line_with(&t, "bridge b1: isolation from other networks");
    assert!(b1.contains("@cluster-nets") && b1.contains("drop"), "{b1}");
    let b2 = line_with(&t, "bridge b2: isolation from other networks");
    assert!(b2.contains("reject"), "the network's own deny action: {b2}");
    assert!(t.contains("\"mydocker\" : goto br_in_b2"), "{t}");
    let same = line_with(&t, "bridge b1: from the same network");
    assert!(
        same.contains("10.10.0.0/16") && same.contains("accept"),
        "{same}"
    );
    // Published ports get through before isolation.
    let chain = t.split("chain br_in_b1").nth(1).unwrap();
    let publ = chain.find("a published port").unwrap();
    let iso = chain.find("isolation from other networks").unwrap();
    assert!(publ < iso);
}

#[test]
fn internal_networks_keep_to_themselves() {
    let t = table();
    assert!(line_with(&t, "bridge inside: internal, nothing leaves it").contains("drop"));
    assert!(line_with(&t, "bridge inside: internal, nothing from outside it").contains("drop"));
    assert!(!t.contains("bridge inside: egress"), "no masquerade: {t}");
    assert!(!t.contains("bridge inside: a published port"));
}

#[test]
fn masquerade_like_seed_002() {
    let t = table();
    let ret = line_with(&t, "bridge b1: no NAT inside the network");
    assert!(
        ret.contains("ip saddr 10.10.0.0/16")
            && ret.contains("ip daddr 10.10.0.0/16")
            && ret.contains("return"),
        "{ret}"
    );
    let masq = line_with(&t, "bridge b1: egress leaves");
    assert!(
        masq.contains("ip daddr != @cluster-nets") && masq.contains("masquerade"),
        "{masq}"
    );
    let post = t.split("chain postrouting").nth(1).unwrap();
    assert!(
        post.find("hairpin").unwrap() < post.find("no NAT inside").unwrap(),
        "hairpin masquerade comes before the return"
    );
}

#[test]
fn published_ports_of_this_node_only() {
    let t = table();
    let dnat = line_with(&t, "published 0.0.0.0:8080->80/tcp of web");
    assert!(dnat.contains("dnat ip to 10.10.0.2:80"), "{dnat}");
    assert!(!t.contains("elsewhere"), "another node's port: {t}");
    let addrs = t.split("set published-addrs").nth(1).unwrap();
    let addrs = &addrs[..addrs.find('}').unwrap()];
    assert!(addrs.contains("198.51.100.11"), "{addrs}");
    assert!(addrs.contains("10.10.0.1"), "the bridge's gateway: {addrs}");
    assert!(
        !addrs.contains("10.10.1.1"),
        "not another node's gateway: {addrs}"
    );
}

#[test]
fn the_published_hooks_exist_only_where_a_port_is_published() {
    for node in ["n1", "n2"] {
        let t = table_of(node);
        for hook in ["chain pub-prerouting", "chain pub-output"] {
            assert!(t.contains(hook), "{node} publishes a port: {hook} in\n{t}");
        }
    }
    let t = table_of("n3");
    assert!(
        !t.contains("chain pub-prerouting") && !t.contains("chain pub-output"),
        "n3 publishes nothing: no NAT hook for it\n{t}"
    );
    assert!(t.contains("chain published"), "the dispatch is there: {t}");
}
