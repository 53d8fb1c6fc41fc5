//! Seed 001 across nodes with encapsulation: S7 (VXLAN on the underlay, MTU lowered) and S9
//! (the node's source address towards local and remote pods).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use common::{can_run, wait_until, weft_cmd, Lab};

fn has_tcpdump() -> bool {
    std::process::Command::new("tcpdump")
        .arg("--version")
        .output()
        .is_ok()
}

/// S7: a ping between containers on two nodes crosses the underlay as VXLAN (UDP 4789, VNI 4096)
/// with the nodes' addresses outside and the containers' inside; workload MTUs leave room for it.
#[test]
fn s7_cross_node_vxlan() {
    if !can_run() {
        return;
    }
    if !has_tcpdump() {
        eprintln!("skipped: tcpdump is not installed (apt-get install tcpdump)");
        return;
    }
    let lab = Lab::up_with(&["master", "slave1"], &["--encap", "vxlan"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("slave1", "b-web1", "net1");
    let (ip1, ip2) = (lab.ip("web1"), lab.ip("b-web1"));
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .weft(&["exec", "web1", "ping", "-c", "1", "-W", "1", &ip2])
            .ok()),
        "web1 -> b-web1 never worked over VXLAN"
    );
    let mtu = lab.ok(&["exec", "web1", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1450", "workload MTU = underlay 1500 - 50");
    let vx = lab.on("master", &["ip", "-d", "link", "show", "weft.vxlan"]);
    assert!(
        vx.contains("vxlan id 4096") && vx.contains("dstport 4789"),
        "{vx}"
    );

    // Capture one encapsulated packet on master's eth0 while web1 pings b-web1.
    let mut dump = weft_cmd()
        .args(["--lab", &lab.name, "lab", "exec", "master", "--"])
        .args([
            "timeout",
            "10",
            "tcpdump",
            "-nn",
            "-l",
            "-c",
            "1",
            "-i",
            "eth0",
            "udp port 4789",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(dump.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("listening on") {
        line.clear();
    }
    lab.ok(&["exec", "web1", "ping", "-c", "2", "-W", "2", &ip2]);
    let mut out = String::new();
    dump.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    dump.wait().unwrap();
    assert!(
        out.contains("198.51.100.11.")
            && out.contains("> 198.51.100.12.4789: VXLAN")
            && out.contains("vni 4096"),
        "outer headers are the nodes': {out}"
    );
    assert!(
        out.contains(&format!("{ip1} > {ip2}: ICMP echo request")),
        "inner headers are the containers': {out}"
    );
}

/// S9: the node reaches a local pod from its own address and a remote pod from its tunnel
/// address (an address of its own block, on its VXLAN device).
#[test]
fn s9_node_to_pod_source_address() {
    if !can_run() {
        return;
    }
    let lab = Lab::up_with(&["master", "slave1"], &["--encap", "vxlan"]);
    // Seed 001 is Kubernetes: other hosts may reach pods (isolation none).
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    lab.run("master", "local", "net1");
    lab.run("slave1", "remote", "net1");
    let weft = env!("CARGO_BIN_EXE_weft");
    let nodes: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "nodes"])).unwrap();
    let tunnel = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "master")
        .and_then(|n| n["tunnel_address"].as_str())
        .expect("master has a tunnel address")
        .to_string();
    let blocks: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "ipam", "show", "--show-blocks"])).unwrap();
    let in_master_block = blocks.as_array().unwrap().iter().any(|b| {
        b["affinity"] == "master"
            && b["cidr"]
                .as_str()
                .unwrap()
                .parse::<ipnet::Ipv4Net>()
                .unwrap()
                .contains(&tunnel.parse::<std::net::Ipv4Addr>().unwrap())
    });
    assert!(
        in_master_block,
        "tunnel address {tunnel} is in master's block: {blocks}"
    );

    let client_seen = |target: &str| -> String {
        let url = format!("http://{}/", lab.ip(target));
        let mut body = String::new();
        wait_until(Duration::from_secs(10), || {
            let r = lab.weft(&[
                "lab", "exec", "master", "--", weft, "tool", "wget", "-qO-", "-T", "2", &url,
            ]);
            body = r.stdout;
            r.code == 0
        });
        body.lines().nth(1).unwrap_or_default().to_string()
    };
    assert!(
        client_seen("local").starts_with("198.51.100.11:"),
        "node -> local pod from the node's address"
    );
    assert!(
        client_seen("remote").starts_with(&format!("{tunnel}:")),
        "node -> remote pod from the tunnel address"
    );
}
