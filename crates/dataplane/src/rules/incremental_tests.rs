use std::collections::BTreeMap;

use super::*;
use crate::rules::services::tests::{service, workload};
use crate::rules::{ruleset, RulesInput};
use weft_model::{Network, Workload};

/// A table in a form where order does not count: chains by name, elements sorted.
fn norm(t: &Table) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let chains = t
        .chains
        .iter()
        .map(|c| (c.name.clone(), c.to_string()))
        .collect();
    let mut sets = BTreeMap::new();
    for s in &t.sets {
        let mut e: Vec<String> = s.elements.iter().map(|v| v.to_string()).collect();
        e.sort();
        sets.insert(s.name.clone(), e);
    }
    for m in &t.maps {
        let mut e: Vec<String> = m
            .elements
            .iter()
            .map(|(k, d)| format!("{k} : {d}"))
            .collect();
        e.sort();
        sets.insert(m.name.clone(), e);
    }
    (chains, sets)
}

fn input<'a>(nets: &'a [Network], ws: &'a [Workload], svcs: &'a [Service]) -> RulesInput<'a> {
    RulesInput {
        node: "n1",
        networks: nets,
        workloads: ws,
        policies: &[],
        cluster_nets: vec![],
        services: svcs,
        node_addrs: vec![Ipv4Addr::new(198, 51, 100, 11)],
        deny_action: weft_model::DenyAction::Drop,
        blocks: &[],
        ports: &[],
    }
}

fn remote(name: &str, ip: [u8; 4], app: &str) -> Workload {
    let mut w = workload(name, ip);
    w.node = "n2".into();
    w.host_iface = String::new();
    w.labels = [("app".to_string(), app.to_string())].into();
    w
}

fn named(name: &str, ip: &str, app: &str) -> Service {
    let mut s = service("");
    s.metadata.name = name.into();
    s.spec.cluster_ip = Some(ip.into());
    s.spec.selector = [("app".to_string(), app.to_string())].into();
    s.spec.ports[0].node_port = None;
    s
}

#[test]
fn steps_of_changes_end_where_a_full_computation_does() {
    let nets = [Network::new("net1", "pool")];
    let mut ws = vec![
        workload("local", [10, 244, 0, 2]),
        remote("a1", [10, 244, 1, 1], "a"),
        remote("a2", [10, 244, 1, 2], "a"),
        remote("b1", [10, 244, 1, 3], "b"),
    ];
    let mut svcs = vec![
        named("a", "10.96.0.10", "a"),
        named("b", "10.96.0.11", "b"),
        named("c", "10.96.0.12", "c"),
    ];
    let (mut prog, first) = Programmed::full(&input(&nets, &ws, &svcs));
    assert_eq!(norm(&first), norm(&ruleset(&input(&nets, &ws, &svcs))));

    // A remote endpoint joins a: only its service's elements and the address sets move.
    let before = ws.clone();
    ws.push(remote("a3", [10, 244, 1, 4], "a"));
    let changes = Changes {
        workloads: vec![(None, Some(ws[4].clone()))],
        ..Changes::default()
    };
    let step = prog
        .step(&input(&nets, &ws, &svcs), &changes)
        .expect("incremental");
    assert!(step.old.chains.is_empty() && step.new.chains.is_empty());
    assert_eq!(step.new.set("net_net1").unwrap().elements.len(), 1);
    assert_eq!(step.new.map("svc-eps-3").unwrap().elements.len(), 3);
    assert_eq!(step.old.map("svc-eps-2").unwrap().elements.len(), 2);
    prog.commit(step);
    assert_eq!(
        norm(&prog.table()),
        norm(&ruleset(&input(&nets, &ws, &svcs)))
    );
    assert_ne!(
        norm(&prog.table()),
        norm(&ruleset(&input(&nets, &before, &svcs)))
    );

    // b1 moves to c (a label change), c gets a NodePort, a goes away.
    let old_b1 = ws[3].clone();
    ws[3].labels = [("app".to_string(), "c".to_string())].into();
    svcs[2] = named("c", "10.96.0.12", "c");
    svcs[2].spec.ports[0].node_port = Some(30012);
    svcs.remove(0);
    let changes = Changes {
        workloads: vec![(Some(old_b1), Some(ws[3].clone()))],
        services: vec![
            ("default".into(), "a".into()),
            ("default".into(), "c".into()),
        ],
        ..Changes::default()
    };
    let step = prog
        .step(&input(&nets, &ws, &svcs), &changes)
        .expect("incremental");
    // The address stays in the network's set: no set change at all.
    assert!(step
        .old
        .set("net_net1")
        .is_none_or(|s| s.elements.is_empty()));
    prog.commit(step);
    assert_eq!(
        norm(&prog.table()),
        norm(&ruleset(&input(&nets, &ws, &svcs)))
    );

    // A local workload changes: the whole base is computed again, and still agrees.
    let old_local = ws[0].clone();
    ws[0].ip = Some(Ipv4Addr::new(10, 244, 0, 9));
    let changes = Changes {
        workloads: vec![(Some(old_local), Some(ws[0].clone()))],
        ..Changes::default()
    };
    let step = prog
        .step(&input(&nets, &ws, &svcs), &changes)
        .expect("incremental");
    assert!(!step.new.chains.is_empty(), "the base is in the step");
    prog.commit(step);
    assert_eq!(
        norm(&prog.table()),
        norm(&ruleset(&input(&nets, &ws, &svcs)))
    );

    // A fresh load: only a full pass.
    let all = Changes {
        all: true,
        ..Changes::default()
    };
    assert!(prog.step(&input(&nets, &ws, &svcs), &all).is_none());
}

#[test]
fn nat_hooks_come_with_the_first_service_and_go_with_the_last() {
    let nets = [Network::new("net1", "pool")];
    let ws = vec![
        workload("local", [10, 244, 0, 2]),
        remote("a1", [10, 244, 1, 1], "a"),
    ];
    let hooks = |t: &Table| -> Vec<String> {
        let mut v: Vec<String> = t
            .chains
            .iter()
            .filter(|c| c.base.is_some() && c.name.starts_with("nat-"))
            .map(|c| c.name.clone())
            .collect();
        v.sort();
        v
    };
    let (mut prog, first) = Programmed::full(&input(&nets, &ws, &[]));
    assert!(hooks(&first).is_empty(), "no service, no NAT hook");
    assert!(first.chain("services").is_some(), "the dispatch is there");

    // The first service: only a full pass, whose table hooks the dispatch.
    let svcs = vec![named("a", "10.96.0.10", "a")];
    let changes = Changes {
        services: vec![("default".into(), "a".into())],
        ..Changes::default()
    };
    assert!(prog.step(&input(&nets, &ws, &svcs), &changes).is_none());
    let (p, with) = Programmed::full(&input(&nets, &ws, &svcs));
    assert_eq!(hooks(&with), ["nat-output", "nat-prerouting"]);
    prog = p;

    // A second service is a step as before; the hooks stay.
    let more = vec![svcs[0].clone(), named("b", "10.96.0.11", "b")];
    let changes = Changes {
        services: vec![("default".into(), "b".into())],
        ..Changes::default()
    };
    let step = prog
        .step(&input(&nets, &ws, &more), &changes)
        .expect("incremental");
    prog.commit(step);
    assert_eq!(hooks(&prog.table()), ["nat-output", "nat-prerouting"]);

    // The last service gone: a full pass again, without the hooks.
    let (mut prog, _) = Programmed::full(&input(&nets, &ws, &svcs));
    let changes = Changes {
        services: vec![("default".into(), "a".into())],
        ..Changes::default()
    };
    assert!(prog.step(&input(&nets, &ws, &[]), &changes).is_none());
    let (p, _) = Programmed::full(&input(&nets, &ws, &[]));
    prog = p;
    assert!(hooks(&prog.table()).is_empty());
}
