//! Services, continued: ClientIP session affinity; stale UDP conntrack entries removed when
//! an endpoint goes away; scaling endpoints up and down without breaking an established
//! connection; S18 on routed networks (masquerade by mark, in the table and as the endpoint
//! sees it).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{can_run, wait_until, Lab};

fn service_ip(lab: &Lab, name: &str) -> String {
    let svc: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "svc", name])).unwrap();
    svc[0]["spec"]["clusterIP"]
        .as_str()
        .expect("a cluster IP")
        .to_string()
}

fn apply_ok(lab: &Lab, yaml: &str) {
    let r = lab.apply(yaml);
    assert!(r.ok(), "apply: {}{}", r.stdout, r.stderr);
}

/// The hostname that answered one `wget` from `client`, if any.
fn who_answers(lab: &Lab, client: &str, url: &str) -> Option<String> {
    let r = lab.weft(&["exec", client, "wget", "-qO-", "-T", "2", url]);
    r.ok()
        .then(|| r.stdout.lines().next().unwrap_or_default().to_string())
}

fn run_labeled(lab: &Lab, node: &str, name: &str, label: &str, cmd: &[&str]) {
    let mut args = vec![
        "--node", node, "run", "-d", "--name", name, "--net", "net1", "--label", label, "toolbox",
    ];
    args.extend_from_slice(cmd);
    lab.ok(&args);
}

#[test]
fn client_ip_affinity_keeps_a_client_on_one_endpoint() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    for name in ["web-a", "web-b"] {
        run_labeled(&lab, "master", name, "app=web", &["httpd"]);
    }
    lab.ok(&[
        "--node", "master", "run", "-d", "--name", "client", "--net", "net1", "toolbox", "sleep",
        "600",
    ]);
    let svc = |name: &str, port: u16, affinity: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector:\n    app: web\n  ports:\n  - port: {port}\n    targetPort: 80\n{affinity}"
        )
    };
    apply_ok(
        &lab,
        &svc(
            "sticky",
            8000,
            "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 600\n",
        ),
    );
    apply_ok(&lab, &svc("spread", 8001, ""));
    let sticky = format!("http://{}:8000/", service_ip(&lab, "sticky"));
    let spread = format!("http://{}:8001/", service_ip(&lab, "spread"));
    let mut first = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            first = who_answers(&lab, "client", &sticky);
            first.is_some()
        }),
        "the service never answered"
    );
    let first = first.unwrap();
    for i in 0..20 {
        let got = who_answers(&lab, "client", &sticky);
        assert_eq!(
            got.as_deref(),
            Some(first.as_str()),
            "request {i}: affinity keeps the client on {first}"
        );
    }
    let table = lab.on("master", &["nft", "list", "table", "inet", "weft"]);
    assert!(
        table.contains("flags dynamic,timeout") && table.contains("timeout 10m"),
        "an affinity set per endpoint with the service's timeout:\n{table}"
    );
    // Without affinity, the same client sees both endpoints.
    let mut seen = BTreeSet::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            seen.extend(who_answers(&lab, "client", &spread));
            seen.len() == 2
        }),
        "without affinity both endpoints answer: {seen:?}"
    );
}

fn logs(lab: &Lab, name: &str) -> String {
    lab.weft(&["logs", name]).stdout
}

#[test]
fn stale_udp_conntrack_entries_go_with_their_endpoint() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    let listen = ["nc", "-l", "-u", "-p", "5353"];
    run_labeled(&lab, "master", "udp-a", "app=udp", &listen);
    apply_ok(
        &lab,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: udp\nspec:\n  selector:\n    app: udp\n  ports:\n  - port: 53\n    protocol: UDP\n    targetPort: 5353\n",
    );
    let ip = service_ip(&lab, "udp");
    // One UDP flow (one socket, one source port), a datagram every 200 ms.
    let send = format!("while :; do echo ping; sleep 0.2; done | nc -u {ip} 53");
    lab.ok(&[
        "--node", "master", "run", "-d", "--name", "client", "--net", "net1", "toolbox", "sh",
        "-c", &send,
    ]);
    assert!(
        wait_until(Duration::from_secs(20), || logs(&lab, "udp-a")
            .contains("ping")),
        "the flow never reached udp-a"
    );
    // A second endpoint: the established flow stays where conntrack put it.
    run_labeled(&lab, "master", "udp-b", "app=udp", &listen);
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .ok(&["get", "endpoints", "udp"])
            .contains(&lab.ip("udp-b"))),
        "udp-b never became an endpoint"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !logs(&lab, "udp-b").contains("ping"),
        "the flow is pinned to its endpoint while that one lives"
    );
    // The endpoint goes away: its conntrack entry goes too, and the flow moves on.
    lab.ok(&["rm", "-f", "udp-a"]);
    assert!(
        wait_until(Duration::from_secs(15), || logs(&lab, "udp-b")
            .contains("ping")),
        "the flow stayed on the removed endpoint (stale conntrack entry)"
    );
}

#[test]
fn scaling_endpoints_keeps_an_established_connection() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    // The server talks every 200 ms and prints what it receives.
    let talk =
        |word: &str, tail: &str| format!("while :; do echo {word}; sleep 0.2; done | {tail}");
    run_labeled(
        &lab,
        "slave1",
        "server",
        "app=long",
        &["sh", "-c", &talk("from-server", "nc -l -p 7000")],
    );
    apply_ok(
        &lab,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: long\nspec:\n  selector:\n    app: long\n  ports:\n  - port: 7000\n",
    );
    let ip = service_ip(&lab, "long");
    lab.ok(&[
        "--node",
        "master",
        "run",
        "-d",
        "--name",
        "client",
        "--net",
        "net1",
        "toolbox",
        "sh",
        "-c",
        &talk("from-client", &format!("nc {ip} 7000")),
    ]);
    let count = |name: &str, word: &str| logs(&lab, name).matches(word).count();
    assert!(
        wait_until(Duration::from_secs(20), || count("server", "from-client")
            > 0
            && count("client", "from-server") > 0),
        "the connection never carried data both ways"
    );
    // Other endpoints come and go, on both nodes.
    for round in 0..3 {
        let extra = [
            ("master", format!("extra-m{round}")),
            ("slave1", format!("extra-s{round}")),
        ];
        for (node, name) in &extra {
            run_labeled(
                &lab,
                node,
                name,
                "app=long",
                &["nc", "-l", "-k", "-p", "7000"],
            );
        }
        let eps = lab.ok(&["get", "endpoints", "long"]);
        assert!(eps.contains(&lab.ip(&extra[0].1)), "{eps}");
        for (_, name) in &extra {
            lab.ok(&["rm", "-f", name]);
        }
    }
    // The connection still carries data both ways, long after the changes.
    std::thread::sleep(Duration::from_secs(1));
    let (to_server, to_client) = (
        count("server", "from-client"),
        count("client", "from-server"),
    );
    assert!(
        wait_until(Duration::from_secs(5), || count("server", "from-client")
            > to_server + 3
            && count("client", "from-server") > to_client + 3),
        "the established connection broke while endpoints changed"
    );
    let client: serde_json::Value = lab.inspect("client");
    assert_eq!(
        client["state"], "running",
        "the client's nc is still connected"
    );
}

#[test]
fn s18_routed_masquerade_by_mark() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    for (node, name) in [("master", "web-a"), ("slave1", "web-b")] {
        run_labeled(&lab, node, name, "app=web", &["httpd"]);
    }
    apply_ok(
        &lab,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector:\n    app: web\n  ports:\n  - port: 8000\n    targetPort: 80\n    nodePort: 30080\n",
    );
    // The table: NodePort traffic is marked, and postrouting masquerades on that mark.
    let mut table = String::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            table = lab.on("master", &["nft", "list", "table", "inet", "weft"]);
            table.contains("NodePort 30080")
        }),
        "the NodePort never reached the table:\n{table}"
    );
    let line = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{table}"))
            .trim()
            .to_string()
    };
    let mark = line("NodePort 30080 from anywhere is masqueraded");
    assert!(
        mark.starts_with("meta mark set meta mark | 0x00004000"),
        "{mark}"
    );
    let masq = line("masquerade marked traffic");
    assert!(
        masq.starts_with("meta mark & 0x00004000 == 0x00004000") && masq.contains("masquerade"),
        "{masq}"
    );
    // From outside through a NodePort: both endpoints answer (local and remote), and each
    // sees a masqueraded source (the node, or its tunnel address), never the outside client.
    let weft = env!("CARGO_BIN_EXE_weft");
    let url = "http://198.51.100.11:30080/";
    let mut seen = BTreeSet::new();
    assert!(
        wait_until(Duration::from_secs(30), || {
            let r = lab.weft(&[
                "lab", "exec", "ext", "--", weft, "tool", "wget", "-qO-", "-T", "2", url,
            ]);
            if r.ok() {
                let mut lines = r.stdout.lines();
                let host = lines.next().unwrap_or_default().to_string();
                let client = lines.next().unwrap_or_default();
                let client_ip = client.rsplit_once(':').map(|(a, _)| a).unwrap_or_default();
                if host == "web-a" {
                    assert_eq!(client_ip, "198.51.100.11", "local endpoint: {}", r.stdout);
                } else {
                    assert!(
                        client_ip == "198.51.100.11" || client_ip.starts_with("10.244."),
                        "remote endpoint: masqueraded to master: {}",
                        r.stdout
                    );
                }
                seen.insert(host);
            }
            seen.len() == 2
        }),
        "NodePort: both endpoints should answer, saw {seen:?}"
    );
}
