//! Bridge networks (seeds 002 and 004): S16 (a bridge per network per node, host-gw routes, no
//! NAT, MACs rewritten), S17 (egress masqueraded), isolation with drop or reject (S19), the same
//! network on three nodes, published ports, S18 services with bridge endpoints, and refusals.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{can_run, wait_until, Lab};

const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// A process started for a test (server, capture), killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// httpd in a lab member's namespace (it answers with the member's hostname).
fn server(lab: &Lab, member: &str, port: &str) -> Proc {
    let child = common::weft_cmd()
        .args(["--lab", &lab.name, "lab", "exec", member, "--"])
        .args([WEFT, "tool", "httpd", "-p", port])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start httpd");
    Proc(child)
}

fn run(lab: &Lab, node: &str, name: &str, net: &str, extra: &[&str]) -> String {
    let mut args = vec!["--node", node, "run", "-d", "--name", name, "--net", net];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["toolbox", "httpd"]);
    lab.ok(&args)
}

/// `wget` from a container; the body (hostname, then the client's IP:PORT) when it answered.
fn get(lab: &Lab, from: &str, url: &str) -> Option<String> {
    let r = lab.weft(&["exec", from, "wget", "-qO-", "-T", "2", url]);
    r.ok().then_some(r.stdout)
}

/// `wget` from a lab member's namespace (a node, ext, gw).
fn get_on(lab: &Lab, member: &str, url: &str) -> Option<String> {
    let r = lab.weft(&[
        "lab", "exec", member, "--", WEFT, "tool", "wget", "-qO-", "-T", "2", url,
    ]);
    r.ok().then_some(r.stdout)
}

/// Retries `get` a few seconds (an agent may still be programming its node).
fn reach(mut f: impl FnMut() -> Option<String>) -> String {
    let mut body = None;
    wait_until(Duration::from_secs(10), || {
        body = f();
        body.is_some()
    });
    body.expect("never answered")
}

fn client_of(body: &str) -> &str {
    body.lines().nth(1).unwrap_or_default()
}

fn subnet24(ip: &str) -> String {
    let mut o: Vec<&str> = ip.split('.').collect();
    o[3] = "0";
    format!("{}/24", o.join("."))
}

fn mac_of(lab: &Lab, member: &str, iface: &str) -> String {
    let out = lab.on(member, &["ip", "-o", "link", "show", iface]);
    out.split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no MAC in {out}"))
        .to_string()
}

/// S16 and S17: seed 002's `mydocker` on two nodes; an internal network beside it.
#[test]
fn s16_s17_bridge_across_two_nodes() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1", "n2"]);
    lab.ok(&[
        "network",
        "create",
        "mydocker",
        "--driver",
        "bridge",
        "--subnet",
        "10.10.0.0/16",
        "--bridge",
        "mydocker",
    ]);
    run(&lab, "n1", "c1", "mydocker", &[]);
    run(&lab, "n2", "c2", "mydocker", &[]);
    let (ip1, ip2) = (lab.ip("c1"), lab.ip("c2"));
    let (net1, net2) = (subnet24(&ip1), subnet24(&ip2));
    assert!(
        ip1.starts_with("10.10.") && ip2.starts_with("10.10."),
        "{ip1} {ip2}"
    );
    assert_ne!(net1, net2, "a subnet per node");
    // The bridge holds the gateway; the other node's subnet is routed via that node.
    let gw1 = net1.replace(".0/24", ".1");
    let addr = lab.on("n1", &["ip", "-o", "-4", "addr", "show", "mydocker"]);
    assert!(addr.contains(&format!("inet {gw1}/24")), "{addr}");
    let routes = lab.on("n1", &["ip", "route"]);
    assert!(
        routes.contains(&format!("{net2} via 198.51.100.12 dev eth0")),
        "{routes}"
    );
    let inside = lab.ok(&["exec", "c1", "ip", "route"]);
    assert!(inside.contains(&format!("default via {gw1}")), "{inside}");
    let port = lab.inspect("c1")["host_iface"]
        .as_str()
        .unwrap()
        .to_string();
    let link = lab.on("n1", &["ip", "-o", "link", "show", &port]);
    assert!(link.contains("master mydocker"), "{link}");

    // S16: cross-node, no NAT: c2 sees c1's own address.
    let body = reach(|| get(&lab, "c1", &format!("http://{ip2}/")));
    assert!(client_of(&body).starts_with(&format!("{ip1}:")), "{body}");
    // MACs rewritten at each routed hop: c2 receives c1's ping from n2's bridge MAC.
    let bridge_mac = mac_of(&lab, "n2", "mydocker");
    let pid = lab.inspect("c2")["pid"].as_i64().expect("pid").to_string();
    let cap = Command::new("timeout")
        .args([
            "10",
            "nsenter",
            &format!("--net=/proc/{pid}/ns/net"),
            "tcpdump",
        ])
        .args([
            "-l",
            "-n",
            "-e",
            "-c",
            "1",
            "-i",
            "eth0",
            "icmp[icmptype] == icmp-echo",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump");
    let mut cap = Proc(cap);
    std::thread::sleep(Duration::from_millis(700));
    lab.ok(&["exec", "c1", "ping", "-c", "3", "-W", "2", &ip2]);
    let out = {
        let child = std::mem::replace(&mut cap.0, Command::new("true").spawn().unwrap());
        child.wait_with_output().expect("capture")
    };
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        line.starts_with(&format!("{bridge_mac} > "))
            || line.contains(&format!(" {bridge_mac} > ")),
        "source MAC is n2's bridge {bridge_mac}: {line}"
    );
    assert!(line.contains(&format!("{ip1} > {ip2}")), "{line}");

    // S17: to the outside, the source is masqueraded to the node.
    let _internet = server(&lab, "gw", "80");
    let body = reach(|| get(&lab, "c1", "http://203.0.113.1/"));
    assert_eq!(body.lines().next(), Some("gw"));
    assert!(client_of(&body).starts_with("198.51.100.11:"), "{body}");

    // An internal network reaches itself across nodes, and nothing else.
    lab.ok(&[
        "network",
        "create",
        "inside",
        "--driver",
        "bridge",
        "--internal",
    ]);
    run(&lab, "n1", "i1", "inside", &[]);
    run(&lab, "n2", "i2", "inside", &[]);
    let body = reach(|| get(&lab, "i1", &format!("http://{}/", lab.ip("i2"))));
    assert!(
        client_of(&body).starts_with(&format!("{}:", lab.ip("i1"))),
        "{body}"
    );
    assert!(
        get(&lab, "i1", "http://203.0.113.1/").is_none(),
        "internal: no way out"
    );
}

/// Seed 004: containers of different bridge networks cannot reach each other; a network's
/// reject answers at once where drop leaves the sender to time out.
#[test]
fn two_networks_on_one_node_isolated_drop_or_reject() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    lab.ok(&[
        "network",
        "create",
        "quiet",
        "--driver",
        "bridge",
        "--subnet",
        "10.31.0.0/16",
    ]);
    lab.ok(&[
        "network",
        "create",
        "loud",
        "--driver",
        "bridge",
        "--subnet",
        "10.32.0.0/16",
        "--deny-action",
        "reject",
    ]);
    lab.ok(&[
        "network",
        "create",
        "other",
        "--driver",
        "bridge",
        "--subnet",
        "10.33.0.0/16",
    ]);
    run(&lab, "n1", "q1", "quiet", &[]);
    run(&lab, "n1", "l1", "loud", &[]);
    run(&lab, "n1", "o1", "other", &[]);
    run(&lab, "n1", "o2", "other", &[]);
    // The same network works (through the bridge).
    let body = reach(|| get(&lab, "o2", &format!("http://{}/", lab.ip("o1"))));
    assert_eq!(body.lines().next(), Some("o1"));
    let attempt = |to: &str| {
        let url = format!("http://{}/", lab.ip(to));
        let started = Instant::now();
        let r = lab.weft(&["exec", "o1", "wget", "-qO-", "-T", "3", &url]);
        (r.ok(), started.elapsed(), r.stderr)
    };
    let (ok, dropped_after, _) = attempt("q1");
    assert!(!ok, "other -> quiet is isolated");
    assert!(
        dropped_after >= Duration::from_millis(2500),
        "drop: the sender times out ({dropped_after:?})"
    );
    let (ok, rejected_after, err) = attempt("l1");
    assert!(!ok, "other -> loud is isolated");
    assert!(
        rejected_after < Duration::from_millis(1500),
        "reject answers at once ({rejected_after:?}): {err}"
    );
}

/// One network on three nodes: three subnets, every pair reachable by its own address.
#[test]
fn same_network_on_three_nodes() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1", "n2", "n3"]);
    lab.ok(&["network", "create", "wide", "--driver", "bridge"]);
    let names = ["w1", "w2", "w3"];
    for (i, n) in names.iter().enumerate() {
        run(&lab, &format!("n{}", i + 1), n, "wide", &[]);
    }
    let ips: Vec<String> = names.iter().map(|n| lab.ip(n)).collect();
    let subnets: BTreeSet<String> = ips.iter().map(|ip| subnet24(ip)).collect();
    assert_eq!(subnets.len(), 3, "{ips:?}");
    for (i, from) in names.iter().enumerate() {
        for (j, to) in names.iter().enumerate() {
            if i != j {
                let body = reach(|| get(&lab, from, &format!("http://{}/", ips[j])));
                assert_eq!(body.lines().next(), Some(*to));
                assert!(
                    client_of(&body).starts_with(&format!("{}:", ips[i])),
                    "{body}"
                );
            }
        }
    }
    let routes = lab.on("n3", &["ip", "route"]);
    for (ip, via) in [(&ips[0], "198.51.100.11"), (&ips[1], "198.51.100.12")] {
        assert!(
            routes.contains(&format!("{} via {via}", subnet24(ip))),
            "{routes}"
        );
    }
}

/// `-p 8080:80` by DNAT: from ext, from the node, from a container on another node, from a
/// container of the same bridge (hairpin) and from the container itself; `ps` shows it; and
/// what is refused leaves nothing behind.
#[test]
fn published_port_and_refusals() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1", "n2"]);
    lab.ok(&[
        "network", "create", "web", "--driver", "bridge", "--bridge", "docker0",
    ]);
    run(&lab, "n1", "srv", "web", &["-p", "8080:80"]);
    run(&lab, "n1", "near", "web", &[]);
    run(&lab, "n2", "far", "web", &[]);
    let ps = lab.ok(&["ps"]);
    let row = ps.lines().find(|l| l.contains(" srv ")).expect("srv in ps");
    assert!(row.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    let url = "http://198.51.100.11:8080/";
    let body = reach(|| get_on(&lab, "ext", url));
    assert_eq!(body.lines().next(), Some("srv"));
    assert!(client_of(&body).starts_with("198.51.100.200:"), "{body}");
    assert_eq!(
        reach(|| get_on(&lab, "n1", url)).lines().next(),
        Some("srv")
    );
    assert_eq!(reach(|| get(&lab, "far", url)).lines().next(), Some("srv"));
    assert_eq!(reach(|| get(&lab, "near", url)).lines().next(), Some("srv"));
    assert_eq!(reach(|| get(&lab, "srv", url)).lines().next(), Some("srv"));
    // The same host port on another node is free.
    run(&lab, "n2", "srv2", "web", &["-p", "8080:80"]);

    // Refused, with nothing applied.
    let r = lab.weft(&[
        "--node", "n1", "run", "-d", "--name", "dup", "--net", "web", "-p", "8080:80", "toolbox",
        "httpd",
    ]);
    assert!(
        !r.ok() && r.stderr.contains("already published"),
        "{}",
        r.stderr
    );
    assert!(!lab.ok(&["ps", "-a"]).contains("dup"), "no container left");
    let links = lab.on("n1", &["ip", "-o", "link"]);
    assert_eq!(links.matches("master docker0").count(), 2, "{links}");
    let r = lab.weft(&[
        "network",
        "create",
        "overlap",
        "--driver",
        "bridge",
        "--subnet",
        "172.17.3.0/24",
    ]);
    assert!(!r.ok() && r.stderr.contains("overlaps"), "{}", r.stderr);
    let r = lab.weft(&[
        "network", "create", "clash", "--driver", "bridge", "--bridge", "docker0",
    ]);
    assert!(!r.ok() && r.stderr.contains("already used"), "{}", r.stderr);
    let nets = lab.ok(&["network", "ls"]);
    assert!(
        !nets.contains("overlap") && !nets.contains("clash"),
        "{nets}"
    );
    lab.ok(&["network", "create", "routed1"]);
    let r = lab.weft(&[
        "run", "-d", "--name", "r1", "--net", "routed1", "-p", "9090:80", "toolbox", "httpd",
    ]);
    assert!(!r.ok() && r.stderr.contains("bridge"), "{}", r.stderr);
    // Removing the container frees its port.
    lab.ok(&["rm", "-f", "srv"]);
    run(&lab, "n1", "srv3", "web", &["-p", "8080:80"]);
}

/// S18 on a bridge network: a ClusterIP with two bridge endpoints (one per node), chosen at
/// random, and a NodePort from outside.
#[test]
fn s18_service_with_bridge_endpoints() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1", "n2"]);
    lab.ok(&["network", "create", "svcnet", "--driver", "bridge"]);
    run(&lab, "n1", "web-a", "svcnet", &["--label", "app=web"]);
    run(&lab, "n2", "web-b", "svcnet", &["--label", "app=web"]);
    run(&lab, "n1", "client", "svcnet", &[]);
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector:\n    app: web\n  ports:\n  - name: http\n    port: 8000\n    targetPort: 80\n    nodePort: 30080\n";
    let r = lab.apply(svc);
    assert!(r.ok(), "{}{}", r.stdout, r.stderr);
    let svc: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "get", "svc", "web"])).unwrap();
    let ip = svc[0]["spec"]["clusterIP"]
        .as_str()
        .expect("cluster IP")
        .to_string();
    let want: BTreeSet<String> = ["web-a", "web-b"].iter().map(|s| s.to_string()).collect();
    let hosts = |f: &dyn Fn() -> Option<String>| {
        let mut seen = BTreeSet::new();
        wait_until(Duration::from_secs(20), || {
            for _ in 0..5 {
                if let Some(b) = f() {
                    seen.insert(b.lines().next().unwrap_or_default().to_string());
                }
            }
            seen == want
        });
        seen
    };
    let url = format!("http://{ip}:8000/");
    assert_eq!(
        hosts(&|| get(&lab, "client", &url)),
        want,
        "pod -> ClusterIP"
    );
    let url = "http://198.51.100.12:30080/";
    assert_eq!(hosts(&|| get_on(&lab, "ext", url)), want, "ext -> NodePort");
}

/// Policies govern bridge endpoints too: a NetworkPolicy selecting a bridge container lets
/// only the allowed client in from another node; without a policy, Docker's rules decide.
#[test]
fn policies_govern_bridge_endpoints() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["p1", "p2"]);
    lab.ok(&["network", "create", "pbr", "--driver", "bridge"]);
    run(&lab, "p1", "pweb", "pbr", &["--label", "app=web"]);
    run(&lab, "p2", "pclient", "pbr", &["--label", "role=client"]);
    run(&lab, "p2", "pother", "pbr", &[]);
    let web = format!("http://{}/", lab.ip("pweb"));
    // No policy yet: both reach it.
    reach(|| get(&lab, "pclient", &web));
    reach(|| get(&lab, "pother", &web));

    let policy = "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: web-from-clients
  namespace: default
spec:
  selector: app == 'web'
  types: [Ingress]
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == 'client'
    destination:
      ports: [80]
";
    let r = lab.apply(policy);
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        wait_until(Duration::from_secs(10), || get(&lab, "pother", &web)
            .is_none()),
        "pother still reaches pweb under a policy that allows only role == 'client'"
    );
    let body = reach(|| get(&lab, "pclient", &web));
    assert_eq!(body.lines().next(), Some("pweb"), "{body}");
    assert!(get(&lab, "pother", &web).is_none(), "denied twice");
    let table = lab.on("p1", &["nft", "list", "table", "inet", "weft"]);
    assert!(
        table.contains("allowed by policy default/web-from-clients"),
        "{table}"
    );

    // Deleting the policy gives the bridge's own rules back.
    lab.ok(&["delete", "networkpolicy", "web-from-clients"]);
    reach(|| get(&lab, "pother", &web));
}
