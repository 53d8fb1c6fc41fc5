//! Nodes on several underlay subnets, and VXLAN per pool: Calico's `vxlanMode: CrossSubnet`
//! encapsulates only towards nodes behind the router, `Never` does not reach them, and a pool's
//! own mode overrides the lab's default (`--encap`).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

use common::{can_run, wait_until, weft_cmd, Lab};

const SUBNET_B: &str = "198.51.101.0/24";

fn has_tcpdump() -> bool {
    std::process::Command::new("tcpdump")
        .arg("--version")
        .output()
        .is_ok()
}

/// The route weft programmed on `node` that covers `ip` (`ip route show proto 80 match IP`).
fn route_to(lab: &Lab, node: &str, ip: &str) -> String {
    lab.on(node, &["ip", "route", "show", "proto", "80", "match", ip])
        .trim()
        .to_string()
}

fn reaches(lab: &Lab, from: &str, to: &str) -> bool {
    let ip = lab.ip(to);
    wait_until(Duration::from_secs(10), || {
        lab.weft(&["exec", from, "ping", "-c", "1", "-W", "1", &ip])
            .ok()
    })
}

/// What tcpdump on `node`'s eth0 sees of `filter` while `during` runs (at most `count` packets,
/// at most 15 s).
fn capture(lab: &Lab, node: &str, filter: &str, count: u32, during: impl FnOnce()) -> String {
    let mut dump = weft_cmd()
        .args(["--lab", &lab.name, "lab", "exec", node, "--"])
        .args(["timeout", "15", "tcpdump", "-nn", "-l", "-i", "eth0", "-c"])
        .arg(count.to_string())
        .arg(filter)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcpdump");
    let mut err = BufReader::new(dump.stderr.take().expect("stderr"));
    let mut line = String::new();
    while err.read_line(&mut line).expect("tcpdump stderr") > 0 && !line.contains("listening on") {
        line.clear();
    }
    during();
    let mut out = String::new();
    dump.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("tcpdump output");
    dump.wait().expect("tcpdump ends");
    out
}

/// Two nodes on subnet A, one on subnet B, CrossSubnet by default: every container reaches
/// every other; a1 routes a2's block plainly on eth0 and b1's through weft.vxlan, and on the
/// wire only the cross-subnet path is VXLAN (UDP 4789).
#[test]
fn cross_subnet_encapsulates_only_between_subnets() {
    if !can_run() {
        return;
    }
    let lab = Lab::up_with(
        &["a1", "a2", "b1"],
        &[
            "--encap",
            "crosssubnet",
            "--subnet",
            &format!("b1={SUBNET_B}"),
        ],
    );
    // The node records carry their address with its prefix.
    let b1: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "node", "b1"])).unwrap();
    let b1 = if b1.is_array() { b1[0].clone() } else { b1 };
    assert_eq!(b1["address"], "198.51.101.11/24", "{b1}");
    // b1 sits behind the gateway: its default route is its own subnet's gateway.
    let default = lab.on("b1", &["ip", "route", "show", "default"]);
    assert!(default.contains("via 198.51.101.1 dev eth0"), "{default}");

    for n in ["a1", "a2", "b1"] {
        lab.run(n, &format!("c-{n}"), "default");
    }
    for from in ["c-a1", "c-a2", "c-b1"] {
        for to in ["c-a1", "c-a2", "c-b1"] {
            if from != to {
                assert!(reaches(&lab, from, to), "{from} -> {to} never worked");
            }
        }
    }

    let (ip_a2, ip_b1) = (lab.ip("c-a2"), lab.ip("c-b1"));
    let to_a2 = route_to(&lab, "a1", &ip_a2);
    assert!(
        to_a2.contains("via 198.51.100.12 dev eth0") && !to_a2.contains("vxlan"),
        "same subnet: a plain route via a2: {to_a2}"
    );
    let to_b1 = route_to(&lab, "a1", &ip_b1);
    assert!(
        to_b1.contains("dev weft.vxlan") && to_b1.contains("onlink"),
        "other subnet: through the tunnel: {to_b1}"
    );
    let back = route_to(&lab, "b1", &lab.ip("c-a1"));
    assert!(back.contains("dev weft.vxlan"), "and back: {back}");
    // Every workload may be encapsulated (CrossSubnet): all get the smaller MTU.
    let mtu = lab.ok(&["exec", "c-a2", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1450");

    if !has_tcpdump() {
        eprintln!("capture skipped: tcpdump is not installed (apt-get install tcpdump)");
        return;
    }
    // 2 pings to each: 4 plain ICMP packets to and from a2, 4 VXLAN packets to and from b1.
    let out = capture(&lab, "a1", "udp port 4789 or icmp", 8, || {
        lab.ok(&["exec", "c-a1", "ping", "-c", "2", "-W", "2", &ip_a2]);
        lab.ok(&["exec", "c-a1", "ping", "-c", "2", "-W", "2", &ip_b1]);
    });
    // tcpdump prints a packet per line, starting with its time; a VXLAN packet's inner packet
    // follows on a line of its own.
    let all: Vec<&str> = out.lines().collect();
    let lines: Vec<&str> = all
        .iter()
        .copied()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    let vxlan: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains(".4789: VXLAN"))
        .collect();
    assert!(!vxlan.is_empty(), "no VXLAN towards b1: {out}");
    assert!(
        vxlan
            .iter()
            .all(|l| l.contains("198.51.101.11.") && l.contains("198.51.100.11.")),
        "VXLAN only between a1 and b1: {out}"
    );
    assert!(
        all.iter()
            .any(|l| l.starts_with("IP ") && l.contains(&format!("> {ip_b1}: ICMP echo request"))),
        "inside the VXLAN packets, the containers' own: {out}"
    );
    assert!(
        !all.iter()
            .any(|l| l.starts_with("IP ") && l.contains(&ip_a2)),
        "nothing of a2's traffic is encapsulated: {out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("> {ip_a2}: ICMP echo request"))),
        "a2 is reached with the container's packet itself on the wire: {out}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(&format!("> {ip_b1}: ICMP"))),
        "nothing to b1 leaves unencapsulated: {out}"
    );
}

/// A pool with vxlanMode Never across subnets does not reach the other subnet (the route via
/// the other node's address is not on the link, as with Calico), and `weft doctor` says why;
/// switching the pool to CrossSubnet makes it reach. The other subnet's node joins a running
/// lab (`lab node add --subnet`).
#[test]
fn never_across_subnets_does_not_reach_and_doctor_says_why() {
    if !can_run() {
        return;
    }
    let lab = Lab::up_with(&["a1"], &["--encap", "crosssubnet"]);
    lab.ok(&["lab", "node", "add", "b1", "--subnet", SUBNET_B]);
    lab.ok(&[
        "network",
        "create",
        "nev",
        "--subnet",
        "10.50.0.0/16",
        "--vxlan-mode",
        "Never",
    ]);
    lab.run("a1", "n-a1", "nev");
    lab.run("b1", "n-b1", "nev");
    let ip_b1 = lab.ip("n-b1");
    // Once a1 routes b1's block (plainly, as Never says), the packets still do not arrive.
    assert!(
        wait_until(Duration::from_secs(10), || route_to(&lab, "a1", &ip_b1)
            .contains("via 198.51.101.11 dev eth0 onlink")),
        "a1 never routed b1's block: {}",
        route_to(&lab, "a1", &ip_b1)
    );
    let r = lab.weft(&["exec", "n-a1", "ping", "-c", "2", "-W", "1", &ip_b1]);
    assert!(!r.ok(), "Never across subnets must not reach: {}", r.stdout);
    // Workloads of a pool that never encapsulates keep the full MTU.
    let mtu = lab.ok(&["exec", "n-a1", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1500");

    let doctor = lab.weft(&["doctor"]);
    let text = format!("{}{}", doctor.stdout, doctor.stderr);
    assert!(
        text.contains("vxlanMode Never") && text.contains("outside a1's subnet 198.51.100.0/24"),
        "doctor explains the unreachable subnet: {text}"
    );

    lab.ok(&[
        "ipam",
        "configure",
        "--pool",
        "net-nev",
        "--vxlan-mode",
        "CrossSubnet",
    ]);
    assert!(
        reaches(&lab, "n-a1", "n-b1"),
        "CrossSubnet reaches the other subnet"
    );
    let route = route_to(&lab, "a1", &ip_b1);
    assert!(route.contains("dev weft.vxlan"), "{route}");
}

/// Two pools, two networks on one subnet: the lab's default (none) routes the default pool
/// plainly, a network whose pool says Always goes through the VXLAN device (made because that
/// pool needs it), and only its workloads get the smaller MTU.
#[test]
fn a_pools_mode_overrides_the_cluster_default() {
    if !can_run() {
        return;
    }
    let lab = Lab::up_with(&["n1", "n2"], &["--encap", "none"]);
    lab.ok(&[
        "network",
        "create",
        "vx",
        "--subnet",
        "10.60.0.0/16",
        "--vxlan-mode",
        "Always",
    ]);
    lab.ok(&["network", "create", "plain"]);
    for (node, net) in [("n1", "vx"), ("n2", "vx"), ("n1", "plain"), ("n2", "plain")] {
        lab.run(node, &format!("{net}-{node}"), net);
    }
    assert!(reaches(&lab, "vx-n1", "vx-n2"), "vx-n1 -> vx-n2");
    assert!(
        reaches(&lab, "plain-n1", "plain-n2"),
        "plain-n1 -> plain-n2"
    );

    let vx = route_to(&lab, "n1", &lab.ip("vx-n2"));
    assert!(
        vx.contains("dev weft.vxlan") && vx.contains("onlink"),
        "{vx}"
    );
    let plain = route_to(&lab, "n1", &lab.ip("plain-n2"));
    assert!(
        plain.contains("via 198.51.100.12 dev eth0") && !plain.contains("vxlan"),
        "{plain}"
    );
    let mtu = |c: &str| lab.ok(&["exec", c, "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu("vx-n1").trim(), "1450");
    assert_eq!(mtu("plain-n1").trim(), "1500");
}
