//! Isolation and network policy (seeds 000 and 001): S4, S6, S13, S22, anti-spoofing, order,
//! Pass and Log, Kubernetes NetworkPolicy, and refusal of bad input.

mod common;

use std::time::Duration;

use common::{can_run, wait_until, Lab};

/// A lab with one network and the seed 001 cast: nginx (app=nginx), pod1 (role=pod1) and pod2
/// (role=pod2), all on node n1; nginx serves on 80 and 8080.
fn cast(isolation: &str) -> (Lab, String) {
    let lab = Lab::up(&["n1"]);
    lab.ok(&["network", "create", "net1", "--isolation", isolation]);
    common::seed001_cast(&lab, "n1", "net1");
    let ip = lab.ip("nginx");
    (lab, ip)
}

fn reaches(lab: &Lab, from: &str, ip: &str, port: u16) -> bool {
    lab.weft(&[
        "exec",
        from,
        "wget",
        "-qO-",
        "-T",
        "2",
        &format!("http://{ip}:{port}/"),
    ])
    .ok()
}

/// Applies and waits until the node's agent has programmed it (by polling a probe).
fn until(lab: &Lab, want: bool, mut probe: impl FnMut() -> bool) {
    let _ = lab;
    assert!(
        wait_until(Duration::from_secs(10), || probe() == want),
        "the dataplane never reached the expected state ({want})"
    );
}

/// S4: containers of two networks on one node cannot talk by default; the same network can.
#[test]
fn s4_two_networks_on_one_node_are_isolated() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&["network", "create", "net2"]);
    lab.run("master", "web1", "net1");
    lab.run("master", "web2", "net1");
    lab.run("master", "web3", "net2");
    lab.ok(&[
        "exec",
        "web1",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        &lab.ip("web2"),
    ]);
    let r = lab.weft(&[
        "exec",
        "web1",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &lab.ip("web3"),
    ]);
    assert!(
        !r.ok(),
        "web1 (net1) must not reach web3 (net2): {}",
        r.stdout
    );
    assert!(!reaches(&lab, "web1", &lab.ip("web3"), 80));
}

/// S6: another node's host may not reach a container of an isolated network; it may on a
/// network with isolation none; the container's own host always may.
#[test]
fn s6_other_host_to_container() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "closed"]);
    lab.ok(&["network", "create", "open", "--isolation", "none"]);
    lab.run("master", "c1", "closed");
    lab.run("master", "o1", "open");
    let weft = env!("CARGO_BIN_EXE_weft");
    let ping_from = |node: &str, ip: &str| {
        lab.weft(&[
            "lab", "exec", node, "--", weft, "tool", "ping", "-c", "1", "-W", "1", ip,
        ])
        .ok()
    };
    let (c1, o1) = (lab.ip("c1"), lab.ip("o1"));
    assert!(
        ping_from("master", &c1),
        "the local host reaches its workloads"
    );
    assert!(
        wait_until(Duration::from_secs(10), || ping_from("slave1", &o1)),
        "another host reaches a workload of an open network"
    );
    assert!(
        !ping_from("slave1", &c1),
        "another host must not reach an isolated network's workload"
    );
}

/// S13: seed 001's policy, as written: pod1 reaches nginx:80, other pods do not, and pod1
/// reaches no other port.
#[test]
fn s13_allow_tcp_80() {
    if !can_run() {
        return;
    }
    let (lab, ip) = cast("none");
    assert!(
        reaches(&lab, "pod2", &ip, 80),
        "before the policy, everyone may"
    );
    // Seed 001's YAML (its line breaks were lost in the seed's text; restored here).
    let yaml = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: allow-tcp-80\n  namespace: default\nspec:\n  selector: app == 'nginx'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source:\n      selector: role == 'pod1'\n    destination:\n      ports:\n      - 80\n";
    let r = lab.apply(yaml);
    assert!(r.ok(), "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("allow-tcp-80 created"), "{}", r.stdout);
    until(&lab, false, || reaches(&lab, "pod2", &ip, 80));
    assert!(reaches(&lab, "pod1", &ip, 80), "pod1 reaches nginx:80");
    assert!(
        !reaches(&lab, "pod1", &ip, 8080),
        "pod1 reaches no other port"
    );
    let table = lab.on("n1", &["nft", "list", "table", "inet", "weft"]);
    assert!(
        table.contains("policy default/allow-tcp-80 ingress rule 0"),
        "{table}"
    );
    lab.ok(&["delete", "policy", "allow-tcp-80"]);
    until(&lab, true, || reaches(&lab, "pod2", &ip, 80));
}

/// S22: conntrack: established flows are not judged again; only NEW packets meet policy;
/// INVALID is dropped.
#[test]
fn s22_only_new_connections_are_judged() {
    if !can_run() {
        return;
    }
    let (lab, ip) = cast("none");
    let deny_icmp = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: deny-icmp\nspec:\n  selector: app == 'nginx'\n  ingress:\n  - action: Deny\n    protocol: ICMP\n  - action: Allow\n";
    // A ping flow that is running when the deny lands keeps going (same ICMP id: established).
    std::thread::scope(|s| {
        let flow = s.spawn(|| {
            lab.weft(&[
                "exec", "pod1", "ping", "-c", "20", "-i", "0.2", "-W", "1", &ip,
            ])
        });
        std::thread::sleep(Duration::from_millis(1000));
        assert!(lab.apply(deny_icmp).ok());
        let r = flow.join().unwrap();
        assert!(
            r.stdout.contains("20 received"),
            "the established flow kept flowing: {}",
            r.stdout
        );
    });
    // A new flow is judged, and denied.
    let r = lab.weft(&["exec", "pod2", "ping", "-c", "1", "-W", "1", &ip]);
    assert!(!r.ok(), "a new flow meets the deny: {}", r.stdout);
    assert!(
        reaches(&lab, "pod2", &ip, 80),
        "other traffic is still allowed"
    );
    let table = lab.on("n1", &["nft", "list", "chain", "inet", "weft", "forward"]);
    assert!(
        table.contains("ct state invalid") && table.contains("drop"),
        "{table}"
    );
    assert!(
        table.contains("ct state established,related accept"),
        "{table}"
    );
}

/// A workload sends only from its own address.
#[test]
fn anti_spoofing() {
    if !can_run() {
        return;
    }
    let (lab, ip) = cast("none");
    let pid = lab.inspect("pod1")["pid"].as_i64().unwrap().to_string();
    let weft = env!("CARGO_BIN_EXE_weft");
    let nsenter = |args: &[&str]| {
        let out = std::process::Command::new("nsenter")
            .args(["-t", &pid, "-n", "--"])
            .args(args)
            .output()
            .unwrap();
        out.status.success()
    };
    assert!(
        nsenter(&[weft, "tool", "nc", "-z", "-w", "2", &ip, "80"]),
        "from its own address"
    );
    let own: std::net::Ipv4Addr = lab.ip("pod1").parse().unwrap();
    let spoof = std::net::Ipv4Addr::from(u32::from(own) + 40).to_string();
    assert!(nsenter(&[
        "ip",
        "addr",
        "add",
        &format!("{spoof}/32"),
        "dev",
        "eth0"
    ]));
    assert!(
        !nsenter(&[weft, "tool", "nc", "-z", "-w", "2", "-s", &spoof, &ip, "80"]),
        "a spoofed source address is dropped"
    );
}

/// Order decides between policies; Pass hands over to the profile; Log logs and goes on.
#[test]
fn order_pass_and_log() {
    if !can_run() {
        return;
    }
    let (lab, ip) = cast("network");
    let yaml = |allow_order: u32, deny_order: u32| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: log-all\nspec:\n  order: 1\n  selector: app == 'nginx'\n  ingress:\n  - action: Log\n---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: allow-pod1\nspec:\n  order: {allow_order}\n  selector: app == 'nginx'\n  ingress:\n  - action: Allow\n    source:\n      selector: role == 'pod1'\n  - action: Pass\n    source:\n      selector: role == 'pod2'\n---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  name: deny-all\nspec:\n  order: {deny_order}\n  selector: app == 'nginx'\n  ingress:\n  - action: Deny\n"
        )
    };
    assert!(lab.apply(&yaml(10, 20)).ok());
    // pod1 and pod2 reach nginx before the policies too (the profile allows the network):
    // first wait for the agent to program them, seen by the Log rule in the kernel.
    let log_rule = || {
        lab.on("n1", &["nft", "list", "table", "inet", "weft"])
            .contains("log prefix \"weft log-all \"")
    };
    assert!(
        wait_until(Duration::from_secs(10), log_rule),
        "log-all's Log rule is programmed"
    );
    until(&lab, true, || reaches(&lab, "pod1", &ip, 80));
    assert!(
        reaches(&lab, "pod2", &ip, 80),
        "Pass skips deny-all: the profile allows the same network"
    );
    // deny-all first: pod1's allow comes too late.
    assert!(lab.apply(&yaml(30, 20)).ok());
    until(&lab, false, || reaches(&lab, "pod1", &ip, 80));
    assert!(!reaches(&lab, "pod2", &ip, 80));
}

/// Kubernetes NetworkPolicy: ingress by pod selector and port; egress to an ipBlock.
#[test]
fn kubernetes_network_policy_ingress_and_egress() {
    if !can_run() {
        return;
    }
    let (lab, ip) = cast("none");
    let pod2 = lab.ip("pod2");
    lab.ok(&[
        "--node", "n1", "run", "-d", "--name", "web", "--net", "net1", "toolbox", "httpd",
    ]);
    let web = lab.ip("web");
    let yaml = format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: nginx-in\nspec:\n  podSelector:\n    matchLabels:\n      app: nginx\n  ingress:\n  - from:\n    - podSelector:\n        matchLabels:\n          role: pod1\n    ports:\n    - protocol: TCP\n      port: 80\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: pod2-out\nspec:\n  podSelector:\n    matchLabels:\n      role: pod2\n  policyTypes: [Egress]\n  egress:\n  - to:\n    - ipBlock:\n        cidr: {web}/32\n    ports:\n    - protocol: TCP\n      port: 80\n"
    );
    let r = lab.apply(&yaml);
    assert!(r.ok(), "{}{}", r.stdout, r.stderr);
    until(&lab, false, || reaches(&lab, "pod2", &ip, 80));
    assert!(
        reaches(&lab, "pod1", &ip, 80),
        "ingress allowed from pod1 on 80"
    );
    assert!(!reaches(&lab, "pod1", &ip, 8080), "not on other ports");
    assert!(
        reaches(&lab, "pod2", &web, 80),
        "pod2's egress to the ipBlock is allowed"
    );
    assert!(
        !reaches(&lab, "pod2", &lab.ip("pod1"), 80) || pod2.is_empty(),
        "and nothing else"
    );
}

/// A bad selector or resource is refused with its position and reason; nothing is applied.
#[test]
fn bad_policy_is_refused_whole() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    let yaml = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: good\nspec:\n  selector: app == 'a'\n---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: bad\nspec:\n  selector: app == 'a' &&\n";
    let r = lab.apply(yaml);
    assert!(!r.ok());
    assert!(
        r.stderr.contains("spec.selector") && r.stderr.contains("position"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("document 2"), "{}", r.stderr);
    assert!(
        !lab.ok(&["get", "policy"]).contains("good"),
        "nothing of the file was applied"
    );
}

/// Deny as drop (the sender waits for its timeout) or, with `--deny-action reject`, as an ICMP
/// admin-prohibited answer (the sender fails at once).
#[test]
fn deny_action_drop_or_reject() {
    if !can_run() {
        return;
    }
    let attempt = |extra: &[&str]| -> (bool, Duration, String) {
        let lab = Lab::up_with(&["n1"], extra);
        lab.ok(&["network", "create", "net1"]);
        lab.ok(&["network", "create", "net2"]);
        lab.run("n1", "web1", "net1");
        lab.run("n1", "web3", "net2");
        let url = format!("http://{}/", lab.ip("web3"));
        let started = std::time::Instant::now();
        let r = lab.weft(&["exec", "web1", "wget", "-qO-", "-T", "3", &url]);
        (r.ok(), started.elapsed(), r.stderr)
    };
    let (ok, dropped_after, _) = attempt(&[]);
    assert!(!ok);
    assert!(
        dropped_after >= Duration::from_millis(2500),
        "drop: the sender times out ({dropped_after:?})"
    );
    let (ok, rejected_after, err) = attempt(&["--deny-action", "reject"]);
    assert!(!ok);
    assert!(
        rejected_after < Duration::from_millis(1500),
        "reject answers at once ({rejected_after:?}): {err}"
    );
    assert!(
        err.to_lowercase().contains("unreachable") || err.contains("No route"),
        "{err}"
    );
}
