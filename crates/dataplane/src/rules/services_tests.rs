use super::*;
use crate::rules::{ruleset, RulesInput};
use weft_model::policy::Service;
use weft_model::Workload;

pub(crate) fn workload(name: &str, ip: [u8; 4]) -> Workload {
    Workload {
        name: name.into(),
        id: format!("{name:0>64}"),
        node: "n1".into(),
        network: "net1".into(),
        ip: Some(ip.into()),
        host_iface: format!("cali{name:0>11}"),
        labels: [("app".to_string(), "dns".to_string())].into(),
        image: "toolbox".into(),
        command: vec![],
        net_of: None,
        created: 0,
    }
}

pub(crate) fn service(extra: &str) -> Service {
    let yaml = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: dns\nspec:\n  type: NodePort\n  clusterIP: 10.96.0.10\n  selector:\n    app: dns\n  ports:\n  - port: 53\n    protocol: UDP\n    nodePort: 30053\n{extra}"
    );
    match weft_model::policy::decode_documents(&yaml)
        .expect("a service")
        .remove(0)
    {
        weft_model::policy::Resource::Service(s) => s,
        other => panic!("not a service: {other:?}"),
    }
}

pub(crate) fn with<T>(
    services: &[Service],
    workloads: &[Workload],
    f: impl FnOnce(&RulesInput) -> T,
) -> T {
    let input = RulesInput {
        node: "n1",
        networks: &[],
        workloads,
        policies: &[],
        cluster_nets: vec![],
        services,
        node_addrs: vec![Ipv4Addr::new(198, 51, 100, 11)],
        deny_action: weft_model::DenyAction::Drop,
        blocks: &[],
        ports: &[],
    };
    f(&input)
}

#[test]
fn client_ip_affinity_is_consulted_before_the_random_choice() {
    let eps = [
        workload("a", [10, 244, 0, 5]),
        workload("b", [10, 244, 0, 6]),
    ];
    let svc = [service(
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 600\n",
    )];
    let t = with(&svc, &eps, ruleset);
    let set = affinity_set("default.dns_udp53", Ipv4Addr::new(10, 244, 0, 5));
    let s = t.set(&set).expect("a set per endpoint");
    assert!(s.flags.dynamic && s.flags.timeout == Some(600), "{s}");
    let chain = t.chain("svc_default.dns_udp53").expect("service chain");
    let lines: Vec<String> = chain.rules.iter().map(|r| r.to_string()).collect();
    assert!(
        lines[0].starts_with(&format!("ip saddr @{set} goto ep_default.dns_udp53_0")),
        "{lines:?}"
    );
    assert!(lines[2].contains("numgen random mod 2"), "{lines:?}");
    let ep = t.chain("ep_default.dns_udp53_0").expect("endpoint chain");
    assert!(
        ep.rules
            .iter()
            .any(|r| r.to_string() == format!("update @{set} {{ ip saddr }}")),
        "{ep}"
    );
    // The whole table compiles (the sets exist, are dynamic, have the right key).
    weft_nft::Summary::of(&t).expect("compiles");
}

#[test]
fn without_affinity_the_endpoints_are_map_elements_chosen_by_numgen() {
    let eps = [
        workload("a", [10, 244, 0, 5]),
        workload("b", [10, 244, 0, 6]),
    ];
    let t = with(&[service("")], &eps, ruleset);
    assert!(!t.sets.iter().any(|s| s.name.starts_with("aff_")));
    assert!(
        t.chain("svc_default.dns_udp53").is_none(),
        "no chain of its own"
    );
    let m = t
        .map("svc-eps-2")
        .expect("the map of two-endpoint services");
    let shown: Vec<String> = m
        .elements
        .iter()
        .map(|(k, d)| format!("{k} : {d}"))
        .collect();
    assert_eq!(
        shown,
        [
            "10.96.0.10 . udp . 53 . 0x00000000 : 10.244.0.5 . 53",
            "10.96.0.10 . udp . 53 . 0x00000001 : 10.244.0.6 . 53"
        ],
        "{shown:?}"
    );
    let dispatch = t.chain("services").expect("dispatch");
    assert!(
        dispatch.rules.iter().any(|r| {
            r.to_string().starts_with(
            "dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 2 map @svc-eps-2"
        )
        }),
        "{dispatch}"
    );
    // The NodePort: marked for masquerade, then the same choice by its own map.
    assert_eq!(t.map("np-eps-2").map(|m| m.elements.len()), Some(2));
    let ext = t.chain("ext_default.dns_udp53").expect("NodePort chain");
    assert!(
        ext.rules[0]
            .to_string()
            .contains("numgen random mod 2 map @np-eps-2"),
        "{ext}"
    );
    weft_nft::Summary::of(&t).expect("compiles");
    // More endpoints than the maps take: a chain with a numgen cascade of DNATs.
    let many: Vec<Workload> = (0..=MAP_ENDPOINTS as u8)
        .map(|i| workload(&format!("w{i}"), [10, 244, 1, i]))
        .collect();
    let t = with(&[service("")], &many, ruleset);
    let chain = t.chain("svc_default.dns_udp53").expect("service chain");
    assert_eq!(chain.rules.len(), MAP_ENDPOINTS + 1, "{chain}");
    assert!(
        chain.rules[0].to_string().contains("numgen random mod 9 0"),
        "{chain}"
    );
    assert!(
        chain.rules[8]
            .to_string()
            .contains("dnat ip to 10.244.1.8:53"),
        "{chain}"
    );
    weft_nft::Summary::of(&t).expect("compiles");
}

#[test]
fn the_label_index_finds_what_matching_every_workload_finds() {
    let mut ws = vec![
        workload("a", [10, 244, 0, 5]),
        workload("b", [10, 244, 0, 6]),
        workload("c", [10, 244, 0, 7]),
        workload("d", [10, 244, 0, 5]),
    ];
    ws[1].labels.insert("tier".into(), "front".into());
    ws[2].labels = [("app".to_string(), "web".to_string())].into();
    ws[3].ip = None;
    let mut two_keys = service("");
    two_keys.spec.selector.insert("tier".into(), "front".into());
    let mut nobody = service("");
    nobody.spec.selector = [("app".to_string(), "none".to_string())].into();
    let mut empty = service("");
    empty.spec.selector.clear();
    let all = [service(""), two_keys, nobody, empty];
    let found = endpoints_of(&all, &ws);
    assert_eq!(
        found,
        vec![
            vec![Ipv4Addr::new(10, 244, 0, 5), Ipv4Addr::new(10, 244, 0, 6)],
            vec![Ipv4Addr::new(10, 244, 0, 6)],
            vec![],
            vec![],
        ]
    );
    for (s, eps) in all.iter().zip(&found) {
        assert_eq!(&s.endpoints(&ws), eps, "{}", s.metadata.name);
    }
}
