//! Doctor's per-node checks on the hand-made lab of `testkit`.
use super::*;
use crate::testkit::{two_node_cluster, two_node_lab};

fn view(w: &World) -> LabView {
    LabView {
        lab: "t".into(),
        cluster: two_node_cluster(),
        config: Default::default(),
        members: w.members.clone(),
        netns: Default::default(),
        not_running: vec![],
        lazy: None,
    }
}

/// Runs the per-node checks on `node` of the hand-made lab after `fault`.
fn findings(node: &str, fault: impl FnOnce(&mut NsSnapshot)) -> Vec<(String, String, String)> {
    let mut w = two_node_lab();
    let key = format!("node/{node}");
    let mut s = (*w.snapshot(&key).unwrap()).clone();
    fault(&mut s);
    w.replace_snapshot(&key, s.clone());
    let v = view(&w);
    let n = v.cluster.node(node).unwrap().clone();
    let mut out = Vec::new();
    let mut add = |c: &str, p: String, f: String| out.push((c.to_string(), p, f));
    check_forwarding(&n, &s, &mut add);
    check_routes(&v, &n, &s, &mut add);
    check_workloads(&v, &mut w, &n, &s, &mut add);
    out
}

#[test]
fn a_healthy_node_has_no_findings() {
    assert_eq!(findings("master", |_| {}), vec![]);
    assert_eq!(findings("slave1", |_| {}), vec![]);
}

#[test]
fn forwarding_off_is_found_with_the_sysctl_to_set() {
    let f = findings("slave1", |s| {
        s.sysctls.insert("ip_forward".into(), "0".into());
    });
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].0, "forwarding");
    assert!(f[0].1.contains("forwarding disabled on slave1"), "{f:?}");
    assert!(
        f[0].2.contains("echo 1 > /proc/sys/net/ipv4/ip_forward"),
        "{f:?}"
    );
}

#[test]
fn missing_workload_and_block_routes_are_found() {
    let f = findings("master", |s| {
        s.main.retain(|r| {
            let d = r.dst.to_string();
            d != "10.244.0.2/32" && d != "10.244.0.64/26"
        });
    });
    let routes: Vec<_> = f.iter().filter(|x| x.0 == "routes").collect();
    assert_eq!(routes.len(), 2, "{f:?}");
    assert!(routes
        .iter()
        .any(|x| x.1.contains("route to workload web2 is missing")));
    assert!(routes
        .iter()
        .any(|x| x.1.contains("route to a remote block")
            && x.2
                .contains("ip route replace 10.244.0.64/26 via 198.51.100.12 dev eth0")));
}

#[test]
fn stale_weft_route_is_found() {
    let f = findings("master", |s| {
        s.main.push(
            crate::testkit::route("10.244.9.0/26")
                .blackhole()
                .proto(ROUTE_PROTO),
        );
    });
    assert!(
        f.iter()
            .any(|x| x.1.contains("stale route") && x.2.contains("ip route del")),
        "{f:?}"
    );
}

#[test]
fn proxy_arp_off_and_mtu_mismatch_on_a_workload_interface() {
    let f = findings("master", |s| {
        s.sysctls.insert("conf/cali1/proxy_arp".into(), "0".into());
        for l in s.links.iter_mut().filter(|l| l.name == "cali2") {
            l.mtu = 1000;
        }
    });
    assert!(
        f.iter()
            .any(|x| x.0 == "proxy_arp" && x.1.contains("cali1")),
        "{f:?}"
    );
    assert!(
        f.iter().any(|x| x.0 == "mtu"
            && x.1.contains("MTU mismatch on workload web2")
            && x.2.contains("ip link set dev cali2 mtu 1500")),
        "{f:?}"
    );
}
