//! Seed 000 on routed networks: S1, S2, S3, S5, S8 of SCENARIOS.md, each in its own lab.

mod common;

use std::time::Duration;

use common::{can_run, wait_until, Lab};

/// S1: the container's eth0 holds IP/32, the default route goes via 169.254.1.1 onlink, the host
/// end is `cali` + 11 hex chars with MAC ee:ee:ee:ee:ee:ee and proxy ARP, the host holds
/// `IP/32 dev caliX scope link`, and eth0's iflink is the host end's ifindex.
#[test]
fn s1_routed_workload_wiring() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    let ip = lab.ip("web1");
    let cali = lab.inspect("web1")["host_iface"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(cali.starts_with("cali") && cali.len() == 15, "{cali}");
    assert!(cali[4..].chars().all(|c| c.is_ascii_hexdigit()), "{cali}");

    let addr = lab.ok(&[
        "exec", "web1", "ip", "-o", "-4", "addr", "show", "dev", "eth0",
    ]);
    assert!(addr.contains(&format!("inet {ip}/32")), "{addr}");
    let routes = lab.ok(&["exec", "web1", "ip", "route"]);
    assert!(
        routes.contains("default via 169.254.1.1 dev eth0") && routes.contains("onlink"),
        "{routes}"
    );

    let host_routes = lab.on("master", &["ip", "route", "show", &format!("{ip}/32")]);
    assert!(
        host_routes.contains(&format!("{ip} dev {cali}")) && host_routes.contains("scope link"),
        "{host_routes}"
    );
    let link = lab.on("master", &["ip", "link", "show", &cali]);
    assert!(link.contains("ee:ee:ee:ee:ee:ee"), "{link}");
    let proxy_arp = lab.on(
        "master",
        &["cat", &format!("/proc/sys/net/ipv4/conf/{cali}/proxy_arp")],
    );
    assert_eq!(proxy_arp.trim(), "1");

    assert_eq!(lab.ok(&["exec", "web1", "hostname"]).trim(), "web1");
    assert_eq!(lab.on("master", &["hostname"]).trim(), "master");

    let iflink = lab.ok(&["exec", "web1", "cat", "/sys/class/net/eth0/iflink"]);
    let ifindex = lab.on(
        "master",
        &["cat", &format!("/sys/class/net/{cali}/ifindex")],
    );
    assert_eq!(
        iflink.trim(),
        ifindex.trim(),
        "eth0's iflink must be the cali device's ifindex"
    );

    // The gateway answers ARP with the host end's MAC (proxy ARP): reach a peer, then look.
    lab.run("master", "web2", "net1");
    let ip2 = lab.ip("web2");
    lab.ok(&["exec", "web1", "ping", "-c", "1", "-W", "2", &ip2]);
    let neigh = lab.ok(&["exec", "web1", "ip", "neigh"]);
    assert!(
        neigh.contains("169.254.1.1") && neigh.contains("ee:ee:ee:ee:ee:ee"),
        "{neigh}"
    );
}

/// S2: web1 <-> web2 on one node work through the peer's /32 route; deleting it breaks them.
#[test]
fn s2_same_node_same_network() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("master", "web2", "net1");
    let (ip1, ip2) = (lab.ip("web1"), lab.ip("web2"));
    lab.ok(&["exec", "web1", "ping", "-c", "2", "-W", "2", &ip2]);
    lab.ok(&["exec", "web2", "ping", "-c", "2", "-W", "2", &ip1]);
    let cali2 = lab.inspect("web2")["host_iface"]
        .as_str()
        .unwrap()
        .to_string();
    let get = lab.on("master", &["ip", "route", "get", &ip2]);
    assert!(
        get.contains(&format!("dev {cali2}")),
        "the path to web2 uses its cali device: {get}"
    );

    lab.on("master", &["ip", "route", "del", &format!("{ip2}/32")]);
    let r = lab.weft(&["exec", "web1", "ping", "-c", "1", "-W", "1", &ip2]);
    assert!(
        !r.ok(),
        "ping must fail without web2's /32 route: {}",
        r.stdout
    );
}

/// S3: the node reaches its own container, and the packets never touch the node's eth0.
#[test]
fn s3_host_to_local_container() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    let ip = lab.ip("web1");
    let cali = lab.inspect("web1")["host_iface"]
        .as_str()
        .unwrap()
        .to_string();
    let get = lab.on("master", &["ip", "route", "get", &ip]);
    assert!(get.contains(&format!("dev {cali}")), "{get}");
    let counter = |dev: &str, what: &str| -> u64 {
        lab.on(
            "master",
            &["cat", &format!("/sys/class/net/{dev}/statistics/{what}")],
        )
        .trim()
        .parse()
        .unwrap()
    };
    let (eth0_tx, cali_tx) = (counter("eth0", "tx_packets"), counter(&cali, "tx_packets"));
    let weft = env!("CARGO_BIN_EXE_weft");
    let out = lab.on(
        "master",
        &[weft, "tool", "ping", "-c", "3", "-i", "0.2", "-W", "2", &ip],
    );
    assert!(out.contains("3 received"), "{out}");
    assert!(
        counter(&cali, "tx_packets") >= cali_tx + 3,
        "the pings went out through {cali}"
    );
    assert_eq!(
        counter("eth0", "tx_packets"),
        eth0_tx,
        "nothing was sent on the node's eth0"
    );
}

/// S5: containers of one network on two nodes reach each other without NAT; addresses are
/// unique across nodes; the node routes the peer's block via the peer node.
#[test]
fn s5_cross_node_same_network() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("slave1", "b-web1", "net1");
    let (ip1, ip2) = (lab.ip("web1"), lab.ip("b-web1"));
    assert_ne!(ip1, ip2);
    // The agents install the block routes; wait for them rather than assume.
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .weft(&["exec", "web1", "ping", "-c", "1", "-W", "1", &ip2])
            .ok()),
        "web1 -> b-web1 never worked"
    );
    lab.ok(&["exec", "b-web1", "ping", "-c", "2", "-W", "2", &ip1]);
    let get = lab.on("master", &["ip", "route", "get", &ip2]);
    assert!(get.contains("via 198.51.100.12 dev eth0"), "{get}");
    // No NAT: b-web1's httpd sees web1's own address as the client.
    let body = lab.ok(&["exec", "web1", "wget", "-qO-", &format!("http://{ip2}/")]);
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("b-web1"), "{body}");
    let client = lines.next().unwrap_or_default();
    assert!(
        client.starts_with(&format!("{ip1}:")),
        "client seen as {client}, want {ip1}"
    );
}

/// S8: each node blackholes its own blocks and routes every remote block via its node (onlink).
#[test]
fn s8_block_routes() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1", "n2", "n3"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("n1", "a", "net1");
    lab.run("n2", "b", "net1");
    let blocks: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "ipam", "show", "--show-blocks"])).unwrap();
    let block_of = |node: &str| -> String {
        blocks
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["affinity"] == node)
            .unwrap_or_else(|| panic!("no block for {node}: {blocks}"))["cidr"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (b1, b2) = (block_of("n1"), block_of("n2"));
    let has = |node: &str, want: &str| {
        wait_until(Duration::from_secs(10), || {
            lab.on(node, &["ip", "route"])
                .lines()
                .any(|l| l.trim_end().starts_with(want) || l.contains(want))
        })
    };
    assert!(has("n1", &format!("blackhole {b1} proto 80")));
    assert!(has(
        "n1",
        &format!("{b2} via 198.51.100.12 dev eth0 proto 80 onlink")
    ));
    assert!(has("n2", &format!("blackhole {b2} proto 80")));
    assert!(has(
        "n2",
        &format!("{b1} via 198.51.100.11 dev eth0 proto 80 onlink")
    ));
    // n3 has no block of its own but routes to both.
    assert!(has(
        "n3",
        &format!("{b1} via 198.51.100.11 dev eth0 proto 80 onlink")
    ));
    assert!(has(
        "n3",
        &format!("{b2} via 198.51.100.12 dev eth0 proto 80 onlink")
    ));
    assert!(!lab.on("n3", &["ip", "route"]).contains("blackhole"));
}
