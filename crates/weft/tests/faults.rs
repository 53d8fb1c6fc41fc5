//! Faults a cluster must ride through (issue 8, item 4), each with a probe running through the
//! fault that counts lost packets: an agent killed with SIGKILL (traffic and policy hold while
//! it is down; it is restarted and converges), a node removed (its blocks and routes go away on
//! every other node), and a node joining a running lab.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{can_run, ping_counts, start_ping, test_root, wait_until, Lab};
use ipnet::Ipv4Net;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// True when a TCP connection from container `from` to `ip:80` succeeds within 1 s.
fn connects(lab: &Lab, from: &str, ip: &str) -> bool {
    lab.weft(&["exec", from, "nc", "-z", "-w", "1", ip, "80"])
        .ok()
}

/// The /26 block holding `ip` (the lab's default block size).
fn block_of(ip: &str) -> String {
    let ip: Ipv4Addr = ip.parse().expect("an IPv4 address");
    Ipv4Net::new(ip, 26).expect("prefix").trunc().to_string()
}

/// Whether node `node`'s routing table has a route for `block`.
fn has_route(lab: &Lab, node: &str, block: &str) -> bool {
    lab.on(node, &["ip", "-4", "route", "show"])
        .lines()
        .any(|l| l.split_whitespace().next() == Some(block))
}

fn node_file(lab: &Lab, node: &str, file: &str) -> std::path::PathBuf {
    std::path::Path::new(&test_root())
        .join("labs")
        .join(&lab.name)
        .join("nodes")
        .join(node)
        .join(file)
}

/// Pid of the running agent worker of `node` (written by its supervisor).
fn worker_pid(lab: &Lab, node: &str) -> Option<i32> {
    std::fs::read_to_string(node_file(lab, node, "agent.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Pid of the agent supervisor of `node`, from the lab's record.
fn supervisor_pid(lab: &Lab, node: &str) -> i32 {
    let labs: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "lab", "ls"])).expect("lab ls json");
    labs.as_array()
        .expect("an array")
        .iter()
        .find(|l| l["name"] == lab.name.as_str())
        .and_then(|l| l["nodes"].as_array())
        .and_then(|ns| ns.iter().find(|n| n["name"] == node))
        .and_then(|n| n["agent_pid"].as_i64())
        .expect("the node's agent pid") as i32
}

/// Whether `pid` is gone or a zombie.
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Continues a stopped process when dropped (so a failing test leaves no stopped supervisor).
struct Stopped(Pid);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

const DENY_BLOCKED: &str = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: deny-blocked\nspec:\n  selector: app == 'web'\n  ingress:\n  - action: Deny\n    source:\n      selector: role == 'blocked'\n  - action: Allow\n";

/// The agent of master (where web and its ingress policy live) is killed with SIGKILL and kept
/// down (its supervisor stopped) while a ping from slave1 crosses to web: no packet is lost, the
/// denied flow stays denied, and changes made meanwhile (a container on a new node's block, the deny policy deleted) take effect once the
/// supervisor has restarted the agent, within seconds.
#[test]
fn agent_killed_traffic_and_policy_hold_then_it_converges() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1", "slave2"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&[
        "--node", "master", "run", "-d", "--name", "web", "--net", "net1", "--label", "app=web",
        "toolbox", "httpd",
    ]);
    for (name, role) in [("client", "role=client"), ("blocked", "role=blocked")] {
        lab.ok(&[
            "--node", "slave1", "run", "-d", "--name", name, "--net", "net1", "--label", role,
            "toolbox", "sleep", "600",
        ]);
    }
    let web = lab.ip("web");
    assert!(lab.apply(DENY_BLOCKED).ok());
    assert!(
        wait_until(Duration::from_secs(10), || connects(&lab, "client", &web)
            && !connects(&lab, "blocked", &web)),
        "before the fault: client must reach web, blocked must not"
    );

    let sup = supervisor_pid(&lab, "master");
    let worker = worker_pid(&lab, "master").expect("master's agent worker pid");
    assert_ne!(sup, worker, "the agent runs under a supervisor");
    let ping = start_ping(&lab, "client", &web, 75);
    std::thread::sleep(Duration::from_secs(1));

    // The fault: the supervisor held, the worker killed outright.
    let held = Stopped(Pid::from_raw(sup));
    kill(held.0, Signal::SIGSTOP).unwrap();
    kill(Pid::from_raw(worker), Signal::SIGKILL).unwrap();
    assert!(wait_until(Duration::from_secs(5), || dead(worker)));

    // While it is down: changes to the store, which master does not see yet.
    lab.ok(&[
        "--node", "slave2", "run", "-d", "--name", "late", "--net", "net1", "toolbox", "httpd",
    ]);
    let late = lab.ip("late");
    let late_block = block_of(&late);
    lab.ok(&["delete", "globalpolicy", "deny-blocked"]);
    for _ in 0..3 {
        assert!(
            !connects(&lab, "blocked", &web),
            "the deny policy must keep holding on master while its agent is down"
        );
    }
    assert!(connects(&lab, "client", &web));
    assert!(
        !has_route(&lab, "master", &late_block),
        "master learnt {late_block} without an agent?"
    );
    assert!(wait_until(Duration::from_secs(5), || has_route(
        &lab,
        "slave1",
        &late_block
    )));

    // Back: the supervisor restarts the agent, which converges from the store.
    let resumed = Instant::now();
    drop(held);
    let converged = wait_until(Duration::from_secs(10), || {
        has_route(&lab, "master", &late_block) && connects(&lab, "blocked", &web)
    });
    let took = resumed.elapsed();
    assert!(
        converged,
        "master did not converge within 10 s of its agent's restart"
    );
    eprintln!(
        "master converged {} ms after the supervisor resumed",
        took.as_millis()
    );
    let new_worker = worker_pid(&lab, "master").expect("a new worker pid");
    assert_ne!(new_worker, worker);
    let log = std::fs::read_to_string(node_file(&lab, "master", "agent.log")).unwrap();
    assert!(
        log.contains("killed by SIGKILL") && log.contains("restarting"),
        "the restart is logged: {log}"
    );
    lab.ok(&["exec", "client", "ping", "-c", "1", "-W", "2", &late]);

    let (sent, received) = ping_counts(ping);
    assert!(sent >= 70, "the probe ran through the fault ({sent} sent)");
    assert_eq!(
        received, sent,
        "established traffic lost packets while master's agent was down and restarted"
    );
}

/// slave2 is removed from the lab: refused while it has containers, then with --force its
/// blocks are released and master and slave1 drop their routes to them, while a ping between
/// master and slave1 loses nothing.
#[test]
fn node_removed_its_blocks_and_routes_go_away_everywhere() {
    node_removed(&[]);
}

/// The same in VXLAN mode, where the others also drop their tunnel peer (FDB entry) to it.
#[test]
fn node_removed_in_vxlan_mode_its_tunnel_peer_goes_away() {
    node_removed(&["--encap", "vxlan"]);
}

/// slave2's underlay address as a VXLAN peer in `node`'s forwarding database.
fn has_vxlan_peer(lab: &Lab, node: &str) -> bool {
    lab.on(node, &["bridge", "fdb", "show", "dev", "weft.vxlan"])
        .contains("dst 198.51.100.13 ")
}

fn node_removed(extra: &[&str]) {
    if !can_run() {
        return;
    }
    let vxlan = extra.contains(&"vxlan");
    let lab = Lab::up_with(&["master", "slave1", "slave2"], extra);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "a", "net1");
    lab.run("slave1", "b", "net1");
    lab.run("slave2", "gone", "net1");
    let gone_block = block_of(&lab.ip("gone"));
    assert!(
        wait_until(Duration::from_secs(10), || has_route(
            &lab,
            "master",
            &gone_block
        ) && has_route(
            &lab,
            "slave1",
            &gone_block
        )),
        "the others never learnt {gone_block}"
    );
    if vxlan {
        assert!(wait_until(Duration::from_secs(5), || has_vxlan_peer(
            &lab, "master"
        )));
    }
    let ping = start_ping(&lab, "a", &lab.ip("b"), 40);

    let r = lab.weft(&["lab", "node", "rm", "slave2"]);
    assert!(!r.ok(), "removing a node with containers must be refused");
    assert!(
        r.stderr.contains("gone") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert!(lab.inspect("gone")["state"] == "running");

    lab.ok(&["lab", "node", "rm", "slave2", "--force"]);
    assert!(
        wait_until(Duration::from_secs(5), || !has_route(
            &lab,
            "master",
            &gone_block
        ) && !has_route(
            &lab,
            "slave1",
            &gone_block
        )),
        "routes to the removed node's block {gone_block} remain"
    );
    if vxlan {
        assert!(
            wait_until(Duration::from_secs(5), || !has_vxlan_peer(&lab, "master")
                && !has_vxlan_peer(&lab, "slave1")),
            "the removed node is still a VXLAN peer"
        );
    }
    let blocks = lab.ok(&["ipam", "show", "--show-blocks"]);
    assert!(
        !blocks.contains(&gone_block) && !blocks.contains("slave2"),
        "{blocks}"
    );
    let nodes = lab.ok(&["get", "node"]);
    assert!(!nodes.contains("slave2"), "{nodes}");
    assert!(!lab.ok(&["ps", "-a"]).contains("gone"));
    assert!(!std::path::Path::new(&format!("/run/netns/{}", lab.netns("slave2"))).exists());
    assert!(!lab.weft(&["lab", "exec", "slave2", "--", "true"]).ok());

    let (sent, received) = ping_counts(ping);
    assert_eq!(
        (sent, received),
        (40, 40),
        "traffic between the remaining nodes lost packets"
    );
}

/// A node joins a running lab: its agent starts, and a container on it is reached from a
/// container on an older node once that node has the route to the new block.
#[test]
fn node_joins_a_running_lab() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "a", "net1");
    let r = lab.weft(&["lab", "node", "add", "master"]);
    assert!(!r.ok() && r.stderr.contains("already"), "{}", r.stderr);

    lab.ok(&["lab", "node", "add", "slave1"]);
    assert!(
        wait_until(Duration::from_secs(5), || worker_pid(&lab, "slave1")
            .is_some_and(|p| !dead(p))),
        "the new node's agent is not running"
    );
    lab.run("slave1", "b", "net1");
    let b = lab.ip("b");
    let block = block_of(&b);
    assert!(
        wait_until(Duration::from_secs(5), || has_route(&lab, "master", &block)),
        "master never learnt the new node's block {block}"
    );
    lab.ok(&["exec", "a", "ping", "-c", "2", "-W", "2", &b]);
    let out = lab.on("slave1", &["ip", "-4", "addr", "show", "eth0"]);
    assert!(out.contains("198.51.100.12/24"), "{out}");
}
