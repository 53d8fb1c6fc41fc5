//! S21: names. `ping b-web1` from web1 resolves across nodes; names are scoped to the
//! networks the asker shares; services answer as NAME and NAME.NAMESPACE.svc.cluster.local.

mod common;

use std::time::Duration;

use common::{can_run, wait_until, Lab};

#[test]
fn s21_names_across_nodes_scoped_by_network() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&["network", "create", "net2"]);
    lab.run("master", "web1", "net1");
    lab.run("slave1", "b-web1", "net1");
    lab.run("master", "web3", "net2");
    let ip = lab.ip("b-web1");
    let mut out = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = lab.weft(&["exec", "web1", "ping", "-c", "1", "-W", "2", "b-web1"]);
            out = r.stdout.clone();
            r.ok()
        }),
        "ping b-web1 from web1: {out}"
    );
    assert!(out.contains(&format!("PING b-web1 ({ip})")), "{out}");
    let r = lab.weft(&["exec", "web3", "nslookup", "web1"]);
    assert!(
        !r.ok() && r.stdout.contains("NXDOMAIN"),
        "web3 (net2) does not see net1's names: {}",
        r.stdout
    );
    let rev = lab.ok(&["exec", "web1", "nslookup", &ip]);
    assert!(rev.contains("b-web1"), "reverse lookup: {rev}");

    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n";
    assert!(lab.apply(svc).ok());
    let v: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "svc", "web"])).unwrap();
    let cluster_ip = v[0]["spec"]["clusterIP"].as_str().unwrap().to_string();
    for name in ["web", "web.default.svc.cluster.local"] {
        let mut got = String::new();
        assert!(
            wait_until(Duration::from_secs(10), || {
                got = lab.weft(&["exec", "web3", "nslookup", name]).stdout;
                got.contains(&cluster_ip)
            }),
            "{name} -> {cluster_ip}: {got}"
        );
    }
}
