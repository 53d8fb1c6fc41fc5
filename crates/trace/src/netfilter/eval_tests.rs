//! The interpreter against the table the dataplane really builds for a node: policies,
//! profiles, services, services without endpoints.

use serde_json::json;
use weft_dataplane::ClusterState;
use weft_model::policy::Resource;
use weft_nft::{ChainKind, CtStates, Hook};

use super::*;
use crate::disposition::Disposition;
use crate::flow::Flow;
use crate::model::Proto;
use crate::netfilter::explain::{self, refused};
use crate::netfilter::node_table;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn wl(name: &str, net: &str, addr: &str, iface: &str, label: (&str, &str)) -> serde_json::Value {
    json!({"name": name, "id": format!("id-{name}"), "node": "n1", "network": net, "ip": addr,
           "host_iface": iface, "labels": {label.0: label.1}, "image": "toolbox",
           "command": [], "created": 0})
}

fn resource(v: serde_json::Value) -> Resource {
    serde_json::from_value(v).expect("resource")
}

/// Seed 001's cast on one node: nginx (app=nginx), pod1, pod2 on net1; web3 on net2; the
/// allow-tcp-80 policy; service `web` (selects nginx) and `lonely` (selects nothing).
fn state() -> ClusterState {
    let mut st = ClusterState {
        nodes: vec![
            serde_json::from_value(json!({"name": "n1", "address": "198.51.100.11"})).unwrap(),
        ],
        ..Default::default()
    };
    for n in ["net1", "net2"] {
        st.networks
            .push(serde_json::from_value(json!({"name": n, "pool": "default"})).unwrap());
    }
    for w in [
        wl("nginx", "net1", "10.244.0.2", "caliaaaa", ("app", "nginx")),
        wl("pod1", "net1", "10.244.0.3", "calibbbb", ("role", "pod1")),
        wl("pod2", "net1", "10.244.0.4", "calicccc", ("role", "pod2")),
        wl("web3", "net2", "10.244.0.5", "calidddd", ("app", "other")),
    ] {
        st.workloads.push(serde_json::from_value(w).unwrap());
    }
    let pol = resource(
        json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
        "metadata": {"name": "allow-tcp-80", "namespace": "default"},
        "spec": {"selector": "app == 'nginx'", "ingress": [{"action": "Allow", "protocol": "TCP",
            "source": {"selector": "role == 'pod1'"}, "destination": {"ports": [80]}}]}}),
    );
    st.policies.push(pol.to_policy().unwrap().unwrap());
    for (name, sel, cip) in [
        ("web", "nginx", "10.96.0.10"),
        ("lonely", "nobody", "10.96.0.11"),
    ] {
        let Resource::Service(s) = resource(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": cip, "selector": {"app": sel}, "ports": [{"port": 80}]}}))
        else {
            panic!("not a service")
        };
        st.services.push(s);
    }
    st
}

fn tcp<'a>(src: &str, dst: &str, iif: Option<&'a str>, oif: Option<&'a str>) -> Pkt<'a> {
    Pkt {
        iif,
        oif,
        saddr: ip(src),
        daddr: ip(dst),
        proto: 6,
        sport: Some(40000),
        dport: Some(80),
        icmp: None,
        ct: CtStates::NEW,
    }
}

fn flow(p: &Pkt) -> Flow {
    Flow {
        src: p.saddr,
        dst: p.daddr,
        proto: Proto::Tcp,
        sport: p.sport,
        dport: p.dport,
        icmp_id: None,
        len: 60,
        ttl: 64,
        reply: false,
        vni: None,
    }
}

#[test]
fn policy_allows_pod1_and_names_itself() {
    let st = state();
    let t = Indexed::new(node_table(&st, "n1", None));
    let p = tcp(
        "10.244.0.3",
        "10.244.0.2",
        Some("calibbbb"),
        Some("caliaaaa"),
    );
    let o = run_hook(&t, Hook::Forward, ChainKind::Filter, &p, 0, 0).unwrap();
    assert_eq!(o.verdict, Final::Accept, "{o:#?}");
    let by = o.decided_by.as_ref().map(explain::decider);
    assert_eq!(by.as_deref(), Some("policy default/allow-tcp-80"), "{o:#?}");
    // The established answer is accepted by conntrack before any policy.
    let mut back = tcp(
        "10.244.0.2",
        "10.244.0.3",
        Some("caliaaaa"),
        Some("calibbbb"),
    );
    back.ct = CtStates::ESTABLISHED;
    let o = run_hook(&t, Hook::Forward, ChainKind::Filter, &back, 0, 0).unwrap();
    assert_eq!(
        o.decided_by.unwrap().comment.as_deref(),
        Some("conntrack: established or related")
    );
}

#[test]
fn end_of_tier_denies_pod2_and_says_which_policy_to_change() {
    let st = state();
    let t = Indexed::new(node_table(&st, "n1", None));
    let p = tcp(
        "10.244.0.4",
        "10.244.0.2",
        Some("calicccc"),
        Some("caliaaaa"),
    );
    let o = run_hook(&t, Hook::Forward, ChainKind::Filter, &p, 0, 0).unwrap();
    assert_eq!(o.verdict, Final::Drop);
    let d = refused("n1", "forward", &o, &t, &st, &flow(&p));
    let Disposition::Denied(den) = &d else {
        panic!("{d:?}")
    };
    let (chain, change) = (&den.chain, &den.change);
    assert_eq!(chain, "tw_caliaaaa");
    assert!(
        change.contains("default/allow-tcp-80") && change.contains("pod2"),
        "{change}"
    );
    // Another port from pod1 is denied the same way.
    let mut other = tcp(
        "10.244.0.3",
        "10.244.0.2",
        Some("calibbbb"),
        Some("caliaaaa"),
    );
    other.dport = Some(8080);
    let o = run_hook(&t, Hook::Forward, ChainKind::Filter, &other, 0, 0).unwrap();
    assert_eq!(o.verdict, Final::Drop);
}

#[test]
fn profile_denies_another_network() {
    let st = state();
    let t = Indexed::new(node_table(&st, "n1", None));
    let p = tcp(
        "10.244.0.3",
        "10.244.0.5",
        Some("calibbbb"),
        Some("calidddd"),
    );
    let o = run_hook(&t, Hook::Forward, ChainKind::Filter, &p, 0, 0).unwrap();
    let d = refused("n1", "forward", &o, &t, &st, &flow(&p));
    let Disposition::Denied(den) = &d else {
        panic!("{d:?}")
    };
    let (by, change) = (&den.by, &den.change);
    assert_eq!(by, "profile net2");
    assert!(
        change.contains("--isolation none")
            && change.contains("network net2")
            && change.contains("web3"),
        "{change}"
    );
}

#[test]
fn service_dnat_and_service_without_endpoints() {
    let st = state();
    let t = Indexed::new(node_table(
        &st,
        "n1",
        Some(&[ip("10.96.0.10"), ip("10.96.0.11")]),
    ));
    let p = tcp("10.244.0.3", "10.96.0.10", Some("calibbbb"), None);
    let o = run_hook(&t, Hook::Prerouting, ChainKind::Nat, &p, 0, 0).unwrap();
    assert_eq!(
        o.nat,
        Some(NatAction::Dnat {
            addr: ip("10.244.0.2"),
            port: Some(80)
        })
    );
    assert!(o.choice.is_none(), "one endpoint: nothing to choose");
    let p = tcp("10.244.0.3", "10.96.0.11", Some("calibbbb"), Some("eth0"));
    let o = run_hook(&t, Hook::Forward, ChainKind::Filter, &p, 0, 0).unwrap();
    assert!(matches!(o.verdict, Final::Reject(_)), "{o:#?}");
    let d = refused("n1", "forward", &o, &t, &st, &flow(&p));
    assert_eq!(d.kind(), "no_endpoints", "{d:?}");
    assert!(
        d.reason().contains("service default.lonely"),
        "{}",
        d.reason()
    );
}
