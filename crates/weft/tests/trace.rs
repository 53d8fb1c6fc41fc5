//! `weft trace` and `weft doctor` on real labs: the scenarios' paths predicted and verified with
//! a probe and captures (prediction must equal observation), and injected faults found at the
//! right hop with the right fix.

mod common;

use std::time::Duration;

use common::{can_run, wait_until, Lab};
use serde_json::Value;

/// `weft -o json trace ARGS...` (any exit code), parsed.
fn trace_json(lab: &Lab, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["-o", "json", "trace"];
    all.extend_from_slice(args);
    let r = lab.weft(&all);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("trace {args:?}: not JSON ({e}): {}{}", r.stdout, r.stderr));
    (r.code, v)
}

fn host_iface(lab: &Lab, name: &str) -> String {
    lab.inspect(name)["host_iface"]
        .as_str()
        .expect("host_iface")
        .to_string()
}

/// `member:ingress>egress` of every hop of one leg.
fn path(t: &Value, leg: &str) -> Vec<String> {
    t["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .filter(|h| h["leg"] == leg)
        .map(|h| {
            format!(
                "{}:{}>{}",
                h["member"].as_str().unwrap_or("?"),
                h["ingress"]["name"].as_str().unwrap_or("-"),
                h["egress"]["name"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

fn assert_verified(code: i32, t: &Value) {
    assert_eq!(
        t["verify"]["agrees"], true,
        "prediction != observation: {t:#}"
    );
    assert_eq!(code, 0, "--verify agreed but exited {code}");
}

/// Waits until the agents have planned the cross-node routes (the trace itself says so).
fn wait_delivered(lab: &Lab, from: &str, to: &str) {
    assert!(
        wait_until(Duration::from_secs(15), || {
            let (_, t) = trace_json(lab, &[from, to]);
            t["disposition"]["disposition"]["kind"] == "delivered"
        }),
        "{from} -> {to} never predicted delivered"
    );
}

/// S2 (and S3): same node, same network — the path uses the peer's cali route, passes
/// --verify both ways (ICMP and TCP); the node reaches its container without touching eth0.
#[test]
fn s2_s3_same_node_paths_verify() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("master", "web2", "net1");
    let (cali1, cali2) = (host_iface(&lab, "web1"), host_iface(&lab, "web2"));
    let ip2 = lab.ip("web2");

    // A healthy lab: doctor finds nothing (routes, interfaces, nftables table, agents, IPAM).
    let healthy = lab.ok(&["doctor"]);
    assert!(healthy.contains("no problems found"), "{healthy}");

    let text = lab.ok(&["trace", "web1", "web2", "--verify"]);
    assert!(
        text.contains(&format!(
            "route to {ip2}: {ip2} dev {cali2} proto 80 scope link"
        )),
        "{text}"
    );
    assert!(text.contains("prediction and observation agree"), "{text}");

    let (code, t) = trace_json(&lab, &["web1", "web2", "--verify"]);
    assert_verified(code, &t);
    assert_eq!(
        path(&t, "forward"),
        [
            "container/web1:->eth0".to_string(),
            format!("node/master:{cali1}>{cali2}"),
            "container/web2:eth0>-".to_string()
        ]
    );
    assert_eq!(t["forward"]["disposition"]["kind"], "delivered");
    assert_eq!(t["reply"]["disposition"]["kind"], "delivered");

    let (code, t) = trace_json(
        &lab,
        &["web1", "web2", "--proto", "tcp", "--port", "80", "--verify"],
    );
    assert_verified(code, &t);
    assert_eq!(
        t["verify"]["probe"]["answered"], true,
        "httpd answers: {t:#}"
    );

    // S3: node -> its own container goes straight out of the cali device.
    let (code, t) = trace_json(&lab, &["node:master", "web1", "--verify"]);
    assert_verified(code, &t);
    assert_eq!(
        path(&t, "forward"),
        [
            format!("node/master:->{cali1}"),
            "container/web1:eth0>-".to_string()
        ]
    );
    for h in t["hops"].as_array().unwrap() {
        if h["member"] == "node/master" {
            assert_ne!(h["ingress"]["name"], "eth0", "{h:#}");
            assert_ne!(h["egress"]["name"], "eth0", "{h:#}");
        }
    }
}

/// S5: across nodes the packet goes master eth0 -> fabric -> slave1 eth0 -> cali, with the
/// containers' own addresses on the underlay (no NAT), and passes --verify.
#[test]
fn s5_cross_node_path_verifies() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("slave1", "b-web1", "net1");
    let (cali1, calib) = (host_iface(&lab, "web1"), host_iface(&lab, "b-web1"));
    let (ip1, ipb) = (lab.ip("web1"), lab.ip("b-web1"));
    wait_delivered(&lab, "web1", "b-web1");

    let (code, t) = trace_json(&lab, &["web1", "b-web1", "--verify"]);
    assert_verified(code, &t);
    assert_eq!(
        path(&t, "forward"),
        [
            "container/web1:->eth0".to_string(),
            format!("node/master:{cali1}>eth0"),
            "fabric:node0>node1".to_string(),
            format!("node/slave1:eth0>{calib}"),
            "container/b-web1:eth0>-".to_string()
        ]
    );
    let fabric = t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["member"] == "fabric" && h["leg"] == "forward")
        .expect("a fabric hop");
    assert_eq!(fabric["rx"]["src"], ip1.as_str());
    assert_eq!(fabric["rx"]["dst"], ipb.as_str());
    let master = &t["hops"][1];
    assert!(
        master["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["kind"] == "route"
                && s["entry"]
                    .as_str()
                    .unwrap_or("")
                    .contains("via 198.51.100.12 dev eth0")),
        "{master:#}"
    );
    assert_eq!(t["reply"]["disposition"]["kind"], "delivered");
}

/// S2 fault: the /32 route of web2 deleted — the trace stops at master (blackholed by the
/// block's route), names the missing planned route and how to restore it; --verify agrees;
/// doctor finds it too.
#[test]
fn fault_deleted_workload_route() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("master", "web2", "net1");
    let ip2 = lab.ip("web2");
    lab.on("master", &["ip", "route", "del", &format!("{ip2}/32")]);

    let (code, t) = trace_json(&lab, &["web1", "web2", "--verify"]);
    assert_verified(code, &t);
    let v = &t["disposition"];
    assert_eq!(v["disposition"]["kind"], "blackholed", "{v:#}");
    assert_eq!(v["disposition"]["member"], "master");
    let hop = v["hop"].as_u64().unwrap() as usize;
    assert_eq!(t["hops"][hop]["member"], "node/master");
    let fix = v["fix"].as_str().unwrap_or("");
    assert!(
        fix.contains("agent resync") && fix.contains("re-add the route"),
        "{fix}"
    );
    assert!(
        fix.contains(&format!("ip route replace {ip2}/32 dev ")),
        "{fix}"
    );

    // The agent of master stops too: doctor says so (and nothing restores the route).
    let info: Value = serde_json::from_slice(
        &std::fs::read(format!(
            "{}/labs/{}/lab.json",
            common::test_root(),
            lab.name
        ))
        .expect("lab.json"),
    )
    .expect("lab.json is JSON");
    let pid = info["nodes"][0]["agent_pid"].as_i64().expect("agent pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("stop the agent this lab started");
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| c.is_empty())
    }));

    let r = lab.weft(&["doctor"]);
    assert_eq!(r.code, 1, "doctor must fail: {}", r.stdout);
    assert!(
        r.stdout.contains("the agent of master is not running"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("the route to workload web2 is missing on master"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("ip route replace {ip2}/32")),
        "{}",
        r.stdout
    );
}

/// S19: forwarding off on slave1 — the trace stops at slave1's eth0 with "forwarding disabled
/// on slave1" and the sysctl to fix; --verify agrees; doctor names it.
#[test]
fn fault_forwarding_off_on_a_node() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("slave1", "b-web1", "net1");
    wait_delivered(&lab, "web1", "b-web1");
    lab.on(
        "slave1",
        &["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"],
    );

    let text = lab.weft(&["trace", "web1", "b-web1"]).stdout;
    assert!(text.contains("forwarding disabled on slave1"), "{text}");
    let (code, t) = trace_json(&lab, &["web1", "b-web1", "--verify"]);
    assert_verified(code, &t);
    let v = &t["disposition"];
    assert_eq!(v["disposition"]["kind"], "forwarding_disabled");
    let hop = &t["hops"][v["hop"].as_u64().unwrap() as usize];
    assert_eq!(hop["member"], "node/slave1");
    assert_eq!(hop["ingress"]["name"], "eth0");
    assert!(
        v["fix"].as_str().unwrap_or("").contains("ip_forward"),
        "{v:#}"
    );

    let r = lab.weft(&["doctor"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("forwarding disabled on slave1"),
        "{}",
        r.stdout
    );
    lab.on(
        "slave1",
        &["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
    );
    let (_, t) = trace_json(&lab, &["web1", "b-web1"]);
    assert_eq!(t["disposition"]["disposition"]["kind"], "delivered");
}

/// A lowered MTU on web2's host end: doctor finds the mismatch with its fix; big packets from
/// web2 are dropped on receive by the cali device, big packets to web2 are refused at master.
#[test]
fn fault_lowered_mtu_on_a_cali_interface() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("master", "web2", "net1");
    let cali2 = host_iface(&lab, "web2");
    lab.on(
        "master",
        &["ip", "link", "set", "dev", &cali2, "mtu", "1000"],
    );

    let r = lab.weft(&["doctor"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stdout.contains("MTU mismatch on workload web2"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("ip link set dev {cali2} mtu 1500")),
        "{}",
        r.stdout
    );

    let (code, t) = trace_json(&lab, &["web2", "web1", "--size", "1400", "--verify"]);
    assert_verified(code, &t);
    let v = &t["disposition"];
    assert_eq!(v["disposition"]["kind"], "mtu_exceeded", "{v:#}");
    assert_eq!(v["disposition"]["iface"], cali2.as_str());
    assert_eq!(v["disposition"]["on_receive"], true);
    assert!(
        v["fix"].as_str().unwrap_or("").contains("mtu 1500"),
        "{v:#}"
    );

    let (code, t) = trace_json(&lab, &["web1", "web2", "--size", "1400", "--verify"]);
    assert_verified(code, &t);
    let v = &t["disposition"];
    assert_eq!(v["disposition"]["kind"], "mtu_exceeded", "{v:#}");
    assert_eq!(v["disposition"]["member"], "master");
    assert_eq!(v["disposition"]["on_receive"], false);

    // Small packets still pass both ways.
    let (code, t) = trace_json(&lab, &["web2", "web1", "--verify"]);
    assert_verified(code, &t);
    assert_eq!(t["disposition"]["disposition"]["kind"], "delivered");
}

/// Unknown names and addresses: a clear answer of what is known, never a guess.
#[test]
fn unknown_names_and_addresses() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");

    let r = lab.weft(&["trace", "web1", "nosuch"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("\"nosuch\" is not a container, node or member"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("web1") && r.stderr.contains("master"),
        "{}",
        r.stderr
    );

    let r = lab.weft(&["trace", "10.9.9.9", "web1"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("holds 10.9.9.9"), "{}", r.stderr);

    // An address nobody owns: followed as far as it goes, and said so.
    let (_, t) = trace_json(&lab, &["web1", "10.77.0.1"]);
    let notes = t["notes"].to_string();
    assert!(
        notes.contains("belongs to no container, node or lab member"),
        "{notes}"
    );
    assert_ne!(t["disposition"]["disposition"]["kind"], "delivered");
}

/// S7 and S9 in VXLAN mode: the frame goes into weft.vxlan and crosses the underlay inside
/// UDP 4789 between the node addresses (outer and inner headers together), passing --verify;
/// the node reaches a remote container from its tunnel address.
#[test]
fn s7_s9_vxlan_paths_verify() {
    if !can_run() {
        return;
    }
    let lab = Lab::up_with(&["master", "slave1"], &["--encap", "vxlan"]);
    lab.ok(&["network", "create", "net1", "--isolation", "none"]);
    lab.run("master", "web1", "net1");
    lab.run("slave1", "b-web1", "net1");
    let (ip1, ipb) = (lab.ip("web1"), lab.ip("b-web1"));
    wait_delivered(&lab, "web1", "b-web1");

    let healthy = lab.ok(&["doctor"]);
    assert!(healthy.contains("no problems found"), "{healthy}");
    let (code, t) = trace_json(&lab, &["web1", "b-web1", "--verify"]);
    assert_verified(code, &t);
    let hops = t["hops"].as_array().unwrap();
    assert_eq!(
        hops[0]["egress"]["mtu"], 1450,
        "workload MTU leaves room for VXLAN"
    );
    let encap = hops
        .iter()
        .find(|h| h["leg"] == "forward" && h["steps"][0]["kind"] == "encap")
        .expect("an encapsulating hop");
    assert_eq!(encap["member"], "node/master");
    let tx = &encap["tx"];
    assert_eq!(tx["src"], "198.51.100.11");
    assert_eq!(tx["dst"], "198.51.100.12");
    assert_eq!(tx["dport"], 4789);
    assert_eq!(tx["inner"]["src"], ip1.as_str());
    assert_eq!(tx["inner"]["dst"], ipb.as_str());
    assert!(
        hops.iter().any(|h| h["member"] == "node/slave1"
            && h["ingress"]["name"] == "weft.vxlan"
            && h["leg"] == "forward"),
        "decapsulated on slave1's weft.vxlan: {t:#}"
    );

    // S9: the node's own packets to a remote container leave from its tunnel address.
    let node: Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "node", "master"])).expect("node json");
    let tunnel = node["tunnel_address"]
        .as_str()
        .expect("tunnel address")
        .to_string();
    let (code, t) = trace_json(&lab, &["node:master", "b-web1", "--verify"]);
    assert_verified(code, &t);
    assert_eq!(t["hops"][0]["tx"]["src"], tunnel.as_str(), "{t:#}");
}

/// A namespace of this test's own, outside what weft manages, removed on drop.
struct Foreign {
    name: String,
}

impl Foreign {
    fn new() -> Foreign {
        let name = format!("weft-t{}-foreign", std::process::id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip")
            .success();
        assert!(ok, "ip netns add {name}");
        Foreign { name }
    }

    fn ip(&self, args: &[&str]) {
        let ok = std::process::Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .status()
            .expect("run ip")
            .success();
        assert!(ok, "ip -n {} {args:?}", self.name);
    }
}

impl Drop for Foreign {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A path into a namespace weft does not manage: the trace says where the packet leaves what
/// is known, and predicts nothing beyond.
#[test]
fn path_into_an_unmanaged_namespace() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    let foreign = Foreign::new();
    lab.on(
        "master",
        &[
            "ip",
            "link",
            "add",
            "vx0",
            "type",
            "veth",
            "peer",
            "name",
            "vy0",
            "netns",
            &foreign.name,
        ],
    );
    foreign.ip(&["link", "set", "vy0", "up"]);
    lab.on("master", &["ip", "link", "set", "vx0", "up"]);
    lab.on(
        "master",
        &["ip", "route", "add", "10.99.0.0/24", "dev", "vx0"],
    );

    let (_, t) = trace_json(&lab, &["node:master", "10.99.0.5"]);
    let v = &t["disposition"];
    assert_eq!(v["disposition"]["kind"], "unmanaged", "{t:#}");
    assert_eq!(v["disposition"]["member"], "master");
    assert_eq!(v["disposition"]["iface"], "vx0");
    let reason = v["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("does not manage") && reason.contains("not known"),
        "{reason}"
    );
}

/// The steps of kind `kind` of one hop.
fn steps<'a>(hop: &'a Value, kind: &str) -> Vec<&'a Value> {
    hop["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["kind"] == kind)
        .collect()
}

/// S1, S8 and S6 as traces: the container's default route via 169.254.1.1 (onlink), answered
/// by proxy ARP with ee:ee:ee:ee:ee:ee; the remote block's route via its node, onlink, in
/// weft's plan; another node's host denied by the profile of an isolated network and let
/// through on a network with isolation none — each passing --verify.
#[test]
fn s1_s6_s8_wiring_block_routes_and_host_access_verify() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&["network", "create", "open", "--isolation", "none"]);
    lab.run("master", "web1", "net1");
    lab.run("master", "web3", "open");
    lab.run("slave1", "b-web1", "net1");
    wait_delivered(&lab, "web1", "b-web1");

    let (code, t) = trace_json(&lab, &["web1", "b-web1", "--verify"]);
    assert_verified(code, &t);
    // S1: the container's side of the wiring.
    let first = &t["hops"][0];
    assert_eq!(first["member"], "container/web1");
    assert!(
        steps(first, "route").iter().any(|s| {
            let e = s["entry"].as_str().unwrap_or("");
            e.contains("default via 169.254.1.1") && e.contains("onlink")
        }),
        "{first:#}"
    );
    assert!(
        steps(first, "neighbour")
            .iter()
            .any(|s| s["how"] == "proxy_arp" && s["mac"] == "ee:ee:ee:ee:ee:ee"),
        "{first:#}"
    );
    // S8: on master, b-web1's address goes by the remote block's route, planned by weft.
    let master = &t["hops"][1];
    let route = steps(master, "route");
    assert!(
        route.iter().any(|s| {
            let e = s["entry"].as_str().unwrap_or("");
            e.contains("/26 via 198.51.100.12 dev eth0")
                && e.contains("onlink")
                && s["planned"] == true
        }),
        "{master:#}"
    );

    // S6: slave1's host to web1 (isolated net1): denied by net1's profile on master.
    let (code, t) = trace_json(&lab, &["node:slave1", "web1", "--verify"]);
    assert_verified(code, &t);
    let d = &t["forward"]["disposition"];
    assert_eq!(d["kind"], "denied", "{t:#}");
    assert!(
        d["by"].as_str().unwrap_or("").contains("profile net1"),
        "{d:#}"
    );
    assert_eq!(d["member"], "master", "{d:#}");
    // ... and to web3 on a network with isolation none: delivered, and answered.
    let (code, t) = trace_json(&lab, &["node:slave1", "web3", "--verify"]);
    assert_verified(code, &t);
    assert_eq!(
        t["disposition"]["disposition"]["kind"], "delivered",
        "{t:#}"
    );
}
