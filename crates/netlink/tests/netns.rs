//! Root-only: named namespaces, running code inside them, sysctls.

mod common;

use std::process::Command;

use common::{root_or_skip, unique, RootState, TestNs};
use weft_netlink::{run_in_netns, sysctl_get, sysctl_set, sysctls_set, Handle, Netns};

fn ip_netns_list() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap_or_else(|e| panic!("run ip netns list: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mounts() -> String {
    std::fs::read_to_string("/proc/mounts").unwrap_or_else(|e| panic!("read /proc/mounts: {e}"))
}

fn listed(list: &str, name: &str) -> bool {
    list.lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn create_list_delete_named() {
    if !root_or_skip("create_list_delete_named") {
        return;
    }
    let root = RootState::capture();
    let name = unique("life");
    let ns = Netns::create_named(&name).unwrap_or_else(|e| panic!("{e}"));
    let path = format!("/run/netns/{name}");
    assert_eq!(
        ns.path().map(|p| p.display().to_string()),
        Some(path.clone())
    );
    assert_eq!(ns.name(), Some(name.as_str()));
    assert!(Netns::list_named().unwrap_or_default().contains(&name));
    assert!(
        listed(&ip_netns_list(), &name),
        "ip netns list misses {name}"
    );
    assert!(mounts().contains(&path), "/proc/mounts misses {path}");

    // A second create fails and leaves the first in place.
    let again = Netns::create_named(&name).expect_err("duplicate must fail");
    assert!(again.is_exists(), "{again}");
    assert!(
        again.to_string().starts_with("create netns /run/netns/"),
        "{again}"
    );
    let named = Netns::named(&name).unwrap_or_else(|e| panic!("{e}"));
    assert!(named.same_as(&ns).unwrap_or(false));

    // A different namespace from ours, with lo up.
    let me = Netns::current().unwrap_or_else(|e| panic!("{e}"));
    assert!(!ns.same_as(&me).unwrap_or(true));
    let mut h = Handle::in_netns(&ns).unwrap_or_else(|e| panic!("{e}"));
    let links = h.links().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(links.len(), 1, "a fresh netns holds only lo: {links:?}");
    assert_eq!(links[0].name, "lo");
    assert!(links[0].up && links[0].oper_up, "lo is up: {:?}", links[0]);

    drop(h);
    drop(named);
    drop(ns);
    Netns::delete_named(&name).unwrap_or_else(|e| panic!("{e}"));
    assert!(!Netns::list_named().unwrap_or_default().contains(&name));
    assert!(
        !listed(&ip_netns_list(), &name),
        "ip netns list still has {name}"
    );
    assert!(!mounts().contains(&path), "/proc/mounts still has {path}");
    let gone = Netns::named(&name).expect_err("deleted netns cannot be opened");
    assert!(gone.is_not_found(), "{gone}");
    // Deleting again is fine.
    Netns::delete_named(&name).unwrap_or_else(|e| panic!("{e}"));
    root.assert_unchanged();
}

#[test]
fn run_in_netns_sees_the_namespace() {
    if !root_or_skip("run_in_netns_sees_the_namespace") {
        return;
    }
    let t = TestNs::new("run");
    let inside = run_in_netns(&t.ns, || Netns::current().and_then(|n| n.inode()))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(Some(inside), t.ns.inode().ok());
    // The calling thread did not move.
    let me = Netns::current().unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(me.inode().ok(), Some(inside));
    // Panics are propagated to the caller.
    let r = std::panic::catch_unwind(|| run_in_netns(&t.ns, || panic!("boom")));
    assert!(r.is_err());
}

#[test]
fn sysctls_stay_in_their_namespace() {
    if !root_or_skip("sysctls_stay_in_their_namespace") {
        return;
    }
    let root = RootState::capture();
    let root_fwd = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default();
    let t = TestNs::new("sysctl");
    let want = if root_fwd.trim() == "1" { "0" } else { "1" };
    sysctl_set(&t.ns, "net/ipv4/ip_forward", want).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sysctl_get(&t.ns, "net.ipv4.ip_forward").unwrap_or_else(|e| panic!("{e}")),
        want
    );
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap_or_default(),
        root_fwd,
        "root ip_forward must not change"
    );
    sysctls_set(
        &t.ns,
        &[
            ("net/ipv4/conf/lo/proxy_arp", "1"),
            ("net/ipv4/neigh/lo/proxy_delay", "0"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sysctl_get(&t.ns, "net/ipv4/conf/lo/proxy_arp")
            .ok()
            .as_deref(),
        Some("1")
    );
    assert_eq!(
        sysctl_get(&t.ns, "net/ipv4/neigh/lo/proxy_delay")
            .ok()
            .as_deref(),
        Some("0")
    );
    let missing = sysctl_set(&t.ns, "net/ipv4/conf/nosuchdev/proxy_arp", "1")
        .expect_err("unknown key must fail");
    assert!(missing.is_not_found(), "{missing}");
    assert!(
        missing.to_string().starts_with(&format!(
            "write sysctl net/ipv4/conf/nosuchdev/proxy_arp=1 in netns /run/netns/{}",
            t.name
        )),
        "{missing}"
    );
    root.assert_unchanged();
}
