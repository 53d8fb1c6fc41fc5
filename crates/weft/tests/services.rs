//! Services (seeds 001 and 002): S10 pod -> ClusterIP, S11 node -> ClusterIP, S12 external host
//! -> NodePort on every node, a service without endpoints, and invalid Service YAML.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{can_run, wait_until, Lab};

const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 8000\n    targetPort: 80\n    nodePort: 30080\n";

/// Two endpoints (one per node) behind `web`, and a client pod on master.
fn cluster() -> (Lab, String) {
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    common::web_endpoints_and_client(&lab, "net1");
    let r = lab.apply(SVC);
    assert!(
        r.ok() && r.stdout.contains("service/web created"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    let svc: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "svc", "web"])).unwrap();
    let ip = svc[0]["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .to_string();
    assert!(ip.starts_with("10.96."), "from the service range: {ip}");
    (lab, ip)
}

/// Hostnames that answered `url` over `tries` requests made by `get`.
fn answered(tries: usize, mut get: impl FnMut() -> Option<String>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..tries {
        if let Some(body) = get() {
            if let Some(host) = body.lines().next() {
                seen.insert(host.to_string());
            }
        }
    }
    seen
}

#[test]
fn s10_s11_cluster_ip_from_pods_and_nodes() {
    if !can_run() {
        return;
    }
    let (lab, ip) = cluster();
    let url = format!("http://{ip}:8000/");
    let want: BTreeSet<String> = ["web-a", "web-b"].iter().map(|s| s.to_string()).collect();
    // S10: every endpoint answers, local and remote, chosen at random.
    let mut seen = BTreeSet::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            seen.extend(answered(5, || {
                let r = lab.weft(&["exec", "client", "wget", "-qO-", "-T", "2", &url]);
                r.ok().then_some(r.stdout)
            }));
            seen == want
        }),
        "pod -> ClusterIP reached {seen:?}"
    );
    // S11: the nodes reach the service too, both endpoints.
    let weft = env!("CARGO_BIN_EXE_weft");
    for node in ["master", "slave1"] {
        let mut seen = BTreeSet::new();
        assert!(
            wait_until(Duration::from_secs(20), || {
                seen.extend(answered(5, || {
                    let r = lab.weft(&[
                        "lab", "exec", node, "--", weft, "tool", "wget", "-qO-", "-T", "2", &url,
                    ]);
                    r.ok().then_some(r.stdout)
                }));
                seen == want
            }),
            "{node} -> ClusterIP reached {seen:?}"
        );
    }
    let eps = lab.ok(&["get", "endpoints", "web"]);
    assert!(
        eps.contains(&format!("{}:80", lab.ip("web-a")))
            && eps.contains(&format!("{}:80", lab.ip("web-b"))),
        "{eps}"
    );
}

#[test]
fn s12_nodeport_from_outside_on_every_node() {
    if !can_run() {
        return;
    }
    let (lab, _) = cluster();
    let weft = env!("CARGO_BIN_EXE_weft");
    for (node, addr) in [("master", "198.51.100.11"), ("slave1", "198.51.100.12")] {
        let url = format!("http://{addr}:30080/");
        let mut ok = 0;
        assert!(
            wait_until(Duration::from_secs(20), || {
                let r = lab.weft(&[
                    "lab", "exec", "ext", "--", weft, "tool", "wget", "-qO-", "-T", "2", &url,
                ]);
                if r.ok() {
                    let client = r.stdout.lines().nth(1).unwrap_or_default().to_string();
                    // The answering endpoint sees the node the request came through (masquerade),
                    // never the outside client.
                    assert!(
                        !client.starts_with("198.51.100.200:"),
                        "not masqueraded: {}",
                        r.stdout
                    );
                    assert!(client.starts_with("198.51.100."), "{}", r.stdout);
                    ok += 1;
                }
                ok >= 3
            }),
            "NodePort on {node} never answered"
        );
    }
}

#[test]
fn service_without_endpoints_is_refused_at_once() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&[
        "--node", "n1", "run", "-d", "--name", "client", "--net", "net1", "toolbox", "sleep", "600",
    ]);
    let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: lonely\nspec:\n  selector:\n    app: nobody\n  ports:\n  - port: 80\n";
    assert!(lab.apply(yaml).ok());
    let svc: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "svc", "lonely"])).unwrap();
    let url = format!("http://{}/", svc[0]["spec"]["clusterIP"].as_str().unwrap());
    let mut err = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let started = std::time::Instant::now();
            let r = lab.weft(&["exec", "client", "wget", "-qO-", "-T", "5", &url]);
            let failed = !r.ok();
            err = r.stderr;
            failed && err.contains("refused") && started.elapsed() < Duration::from_secs(3)
        }),
        "expected an immediate 'connection refused': {err}"
    );
}

#[test]
fn invalid_services_are_refused_with_the_reason() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    let bad_port = SVC.replace("port: 8000", "port: 70000");
    let r = lab.apply(&bad_port);
    assert!(
        !r.ok() && r.stderr.contains("70000") && r.stderr.contains("spec.ports[0].port"),
        "{}",
        r.stderr
    );
    let bad_proto = SVC.replace("- name: http", "- name: http\n    protocol: ICMP");
    let r = lab.apply(&bad_proto);
    assert!(!r.ok() && r.stderr.contains("protocol"), "{}", r.stderr);
    assert!(lab.apply(SVC).ok());
    let clash = SVC.replace("name: web\n", "name: web2\n");
    let r = lab.apply(&clash);
    assert!(
        !r.ok() && r.stderr.contains("30080") && r.stderr.contains("already used"),
        "{}",
        r.stderr
    );
    let svc: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "svc", "web"])).unwrap();
    let ip = svc[0]["spec"]["clusterIP"].as_str().unwrap();
    let clash_ip = "apiVersion: v1\nkind: Service\nmetadata:\n  name: other\nspec:\n  clusterIP: ADDR\n  ports:\n  - port: 1\n".replace("ADDR", ip);
    let r = lab.apply(&clash_ip);
    assert!(!r.ok() && r.stderr.contains("already used"), "{}", r.stderr);
    let names = lab.ok(&["get", "svc"]);
    assert!(
        !names.contains("web2") && !names.contains("other"),
        "nothing of a refused file is applied: {names}"
    );
}
