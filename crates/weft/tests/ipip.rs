//! Calico's IPIP mode (`--encap ipip`, seed 001): on a kernel without the ipip module `lab up`
//! refuses with a clear message and leaves nothing behind; on a kernel with it, pods on two
//! nodes reach each other through tunl0.

mod common;

use std::time::Duration;

use common::{can_run, wait_until, Lab};

/// The named network namespaces whose names start with `prefix`.
fn netns_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn lab_up_with_ipip_works_or_says_clearly_that_the_kernel_lacks_it() {
    if !can_run() {
        return;
    }
    // The lab is owned (and removed on drop) whether `lab up` succeeds or not.
    let lab = Lab {
        name: format!("t{}-ipip", std::process::id()),
        nodes: vec!["master".into(), "slave1".into()],
    };
    let up = lab.weft(&["lab", "up", "--nodes", "master,slave1", "--encap", "ipip"]);
    if !up.ok() {
        // This kernel has no ipip (as the development machine's): the message says what is
        // missing and what to use instead, and nothing of the lab was made.
        assert!(
            up.stderr.contains("IPIP needs the ipip kernel module")
                && up.stderr.contains("use --encap vxlan"),
            "lab up --encap ipip failed without the clear message: {}{}",
            up.stdout,
            up.stderr
        );
        assert_eq!(netns_with_prefix(&lab.netns("")), Vec::<String>::new());
        assert_eq!(netns_with_prefix("weft.ipip-probe"), Vec::<String>::new());
        let labs = lab.ok(&["-o", "json", "lab", "ls"]);
        assert!(!labs.contains(&lab.name), "lab left behind: {labs}");
        return;
    }
    // The kernel has ipip. This branch cannot run on the development machine (no ipip module),
    // so it stays simple: S1 across nodes over tunl0, and the route as Calico makes it.
    lab.ok(&["network", "create", "net1"]);
    lab.run("master", "web1", "net1");
    lab.run("slave1", "b-web1", "net1");
    let ip2 = lab.ip("b-web1");
    assert!(
        wait_until(Duration::from_secs(10), || lab
            .weft(&["exec", "web1", "ping", "-c", "1", "-W", "1", &ip2])
            .ok()),
        "web1 -> b-web1 never worked over IPIP"
    );
    let routes = lab.on("master", &["ip", "route", "show"]);
    assert!(
        routes
            .lines()
            .any(|l| l.contains("via 198.51.100.12 dev tunl0") && l.contains("onlink")),
        "{routes}"
    );
    let mtu = lab.ok(&["exec", "web1", "cat", "/sys/class/net/eth0/mtu"]);
    assert_eq!(mtu.trim(), "1480", "workload MTU = underlay 1500 - 20");
}

/// An agent told to use IPIP (the cluster's default changed in the store) on a kernel without
/// it reports the clear message in its status and takes no tunnel address; on a kernel with
/// it (a branch the development machine cannot run), tunl0 gets the tunnel address.
#[test]
fn the_agent_reports_a_kernel_without_ipip_and_takes_no_address() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master"]);
    std::env::set_var("WEFT_ROOT", common::test_root());
    let location = weft_model::paths::lab_store_location(&lab.name).expect("the lab's store");
    let store = weft_store::open(&location).expect("open the lab's store");
    let s = store.as_ref();
    weft_store::update_json::<weft_model::ClusterConfig, _>(s, weft_model::keys::CONFIG, |c| {
        Ok(c.map(|mut c| {
            c.encap = weft_model::Encap::Ipip;
            c
        }))
    })
    .unwrap();
    let status = || {
        weft_store::get_json::<weft_model::AgentStatus>(
            s,
            &weft_model::keys::agent_status("master"),
        )
        .unwrap()
        .and_then(|(st, _)| st.error)
    };
    // tunl0 with the node's tunnel address from its block (the default pool, 10.244.0.0/16).
    let has_tunl0 = || {
        lab.weft(&[
            "lab", "exec", "master", "--", "ip", "-4", "addr", "show", "tunl0",
        ])
        .stdout
        .contains("inet 10.244.")
    };
    assert!(
        wait_until(Duration::from_secs(15), || status()
            .is_some_and(|e| e.contains("IPIP needs the ipip kernel module"))
            || has_tunl0()),
        "the agent neither made tunl0 nor said why not: {:?}",
        status()
    );
    let handle = weft_ipam::Ipam::new(s)
        .handle(&weft_model::ipip_tunnel_handle("master"))
        .unwrap();
    if !has_tunl0() {
        assert!(handle.is_none(), "a tunnel address was taken: {handle:?}");
    }
}
