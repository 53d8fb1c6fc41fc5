//! A lab on etcd (issue 8, items 1 and 4): `lab up --store etcd` runs etcd-server in its own
//! namespace on the underlay; the CLI reaches it from the machine's namespace and the agents
//! over the underlay. S1 works on it, and when etcd stops, running traffic is unaffected, `run`
//! fails in bounded time with a clear error, and everything recovers when etcd returns.

mod common;

use std::time::{Duration, Instant};

use common::{can_run, ping_counts, start_ping, test_root, wait_until, Lab};

fn etcd_installed() -> bool {
    let there = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .any(|p| std::path::Path::new(p).exists());
    if !there {
        eprintln!("skipped: etcd is not installed (apt-get install etcd-server)");
    }
    there
}

/// The lab's record as `lab ls -o json` shows it.
fn lab_record(lab: &Lab) -> serde_json::Value {
    let all: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "lab", "ls"])).expect("lab ls json");
    all.as_array()
        .expect("an array")
        .iter()
        .find(|l| l["name"] == lab.name.as_str())
        .cloned()
        .expect("our lab is listed")
}

fn pings(lab: &Lab, from: &str, to_ip: &str) -> bool {
    lab.weft(&["exec", from, "ping", "-c", "1", "-W", "1", to_ip])
        .ok()
}

#[test]
fn s1_on_etcd_agents_over_the_underlay() {
    if !can_run() || !etcd_installed() {
        return;
    }
    let lab = Lab::up_with(&["n1", "n2"], &["--store", "etcd"]);
    let rec = lab_record(&lab);
    assert_eq!(rec["etcd"]["address"], "198.51.100.2", "{rec}");
    let etcd_pid = rec["etcd"]["pid"].as_i64().expect("etcd pid recorded") as i32;
    assert!(lab.ok(&["lab", "ls"]).contains("etcd(198.51.100.2)"));

    lab.run("n1", "a", "default");
    lab.run("n2", "b", "default");
    let (ip_a, ip_b) = (lab.ip("a"), lab.ip("b"));
    assert!(
        wait_until(Duration::from_secs(15), || pings(&lab, "a", &ip_b)),
        "a (n1) cannot reach b (n2) on etcd"
    );
    assert!(pings(&lab, "b", &ip_a), "b (n2) cannot reach a (n1)");

    let nodes = lab.ok(&["get", "node"]);
    assert!(nodes.contains("n1") && nodes.contains("n2"), "{nodes}");
    let ps: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "ps"])).expect("ps json");
    let mut seen: Vec<(String, String)> = ps
        .as_array()
        .expect("ps array")
        .iter()
        .map(|w| {
            (
                w["name"].as_str().unwrap().into(),
                w["node"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [("a".into(), "n1".into()), ("b".into(), "n2".into())]);

    // Each agent talks to etcd from its own node, over the underlay.
    for node in ["n1", "n2"] {
        let conns = lab.on(node, &["ss", "-tn", "state", "established"]);
        assert!(conns.contains("198.51.100.2:2379"), "{node}: {conns}");
    }

    // Nor does an agent see the other nodes' files or the lab's: of the lab's directory, only
    // its own node's.
    let lab_dir = std::path::Path::new(&test_root())
        .join("labs")
        .join(&lab.name);
    for node in ["n1", "n2"] {
        let pid_file = lab_dir.join("nodes").join(node).join("agent.pid");
        let pid = std::fs::read_to_string(&pid_file).expect("agent worker pid");
        let view = |sub: &str| -> Vec<String> {
            let dir = format!("/proc/{}/root{}{sub}", pid.trim(), lab_dir.display());
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("{dir}: {e}"))
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(view(""), ["nodes"], "{node}'s agent sees the lab's files");
        assert_eq!(view("/nodes"), [node], "{node}'s agent sees other nodes");
        assert!(view(&format!("/nodes/{node}")).contains(&"agent.log".to_string()));
    }

    // `lab down` stops etcd (by its pid) with everything else.
    lab.ok(&["lab", "down"]);
    assert!(
        wait_until(Duration::from_secs(5), || !std::path::Path::new(&format!(
            "/proc/{etcd_pid}"
        ))
        .exists()),
        "etcd {etcd_pid} survived lab down"
    );
    let left: Vec<String> = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip netns list")
            .stdout,
    )
    .lines()
    .filter(|l| l.starts_with(&lab.netns("")))
    .map(String::from)
    .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn etcd_stopped_traffic_flows_run_fails_clearly_and_all_recovers() {
    if !can_run() || !etcd_installed() {
        return;
    }
    let lab = Lab::up_with(&["n1", "n2"], &["--store", "etcd"]);
    lab.run("n1", "a", "default");
    lab.run("n2", "b", "default");
    let ip_b = lab.ip("b");
    assert!(
        wait_until(Duration::from_secs(15), || pings(&lab, "a", &ip_b)),
        "a cannot reach b before the fault"
    );

    // 40 packets over 8 s; etcd is down for about 4 s of them.
    let probe = start_ping(&lab, "a", &ip_b, 40);
    std::thread::sleep(Duration::from_secs(1));
    lab.ok(&["lab", "etcd", "stop"]);
    assert!(lab.ok(&["lab", "ls"]).contains("stopped"));

    let t = Instant::now();
    let r = lab.weft(&[
        "--node", "n2", "run", "-d", "--name", "c", "toolbox", "httpd",
    ]);
    let took = t.elapsed();
    assert!(!r.ok(), "run succeeded with etcd stopped: {}", r.stdout);
    assert!(took < Duration::from_secs(15), "run took {took:?} to fail");
    assert!(
        r.stderr.contains("is etcd running") && r.stderr.contains("198.51.100.2:2379"),
        "unclear error: {}",
        r.stderr
    );

    std::thread::sleep(Duration::from_secs(2));
    lab.ok(&["lab", "etcd", "start"]);
    let (sent, received) = ping_counts(probe);
    assert_eq!(sent, 40);
    assert_eq!(received, sent, "packets lost while etcd was down");

    // Back: the failed run left nothing behind, a new run works, and the agents converge.
    lab.ok(&[
        "--node", "n2", "run", "-d", "--name", "c", "toolbox", "httpd",
    ]);
    let ip_c = lab.ip("c");
    assert!(
        wait_until(Duration::from_secs(20), || pings(&lab, "a", &ip_c)),
        "a (n1) cannot reach the new c (n2) after etcd returned"
    );
    let ps = lab.ok(&["ps"]);
    assert_eq!(ps.lines().count(), 4, "{ps}");
}

/// `weft agent` takes its store, cluster and node from a configuration file when the command
/// line does not say, and refuses a missing file or an unknown key by name.
#[test]
fn agent_configuration_file_is_read_and_checked() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.yaml");
    let r = common::weft_cmd()
        .args(["agent", "--no-supervise", "--config"])
        .arg(&missing)
        .output()
        .expect("run weft agent");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("missing.yaml"), "{err}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "stor: etcd://127.0.0.1:1\n").unwrap();
    let r = common::weft_cmd()
        .args(["agent", "--no-supervise", "--config"])
        .arg(&bad)
        .output()
        .expect("run weft agent");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("unknown field `stor`"),
        "{err}"
    );

    // The file's store is used: an etcd that is not there is named in the error.
    let good = dir.path().join("agent.yaml");
    std::fs::write(
        &good,
        "store: etcd://127.0.0.1:9\ncluster: nowhere\nnode: n1\nresync: 5\n",
    )
    .unwrap();
    let r = common::weft_cmd()
        .args(["agent", "--no-supervise", "--config"])
        .arg(&good)
        .env_remove("WEFT_STORE")
        .output()
        .expect("run weft agent");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("etcd://127.0.0.1:9"),
        "{err}"
    );
}
