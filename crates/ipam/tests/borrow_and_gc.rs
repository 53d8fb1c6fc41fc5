//! Borrowing from other nodes' blocks, strict affinity, and gc with a grace period.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use common::{abandon, setup};
use weft_ipam::{keys, Creator, Error, GcOptions, GcReport, Handle, Ipam};
use weft_store::{get_json, put_json, Store};

fn gc(s: &dyn Store, grace: Duration, dry_run: bool, live: &[&str]) -> GcReport {
    let live: HashSet<String> = live.iter().map(|h| h.to_string()).collect();
    Ipam::new(s)
        .gc(&GcOptions { grace, dry_run }, &|| Ok(live.clone()))
        .unwrap()
}

fn handles(entries: &[weft_ipam::GcEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.handle.as_str()).collect()
}

#[test]
fn full_node_borrows_from_another_nodes_block_when_no_block_is_free() {
    // /29 pool, /30 blocks: two blocks; the pool's first address is reserved.
    let (_d, s) = setup("10.9.0.0/29", 30);
    let ipam = Ipam::new(&s);
    let a: Vec<Ipv4Addr> = (0..3)
        .map(|i| {
            ipam.allocate(&format!("net.a{i}"), "n1", "p", None)
                .unwrap()
        })
        .collect();
    let b0 = ipam.allocate("net.b0", "n2", "p", None).unwrap();
    assert_eq!(b0, "10.9.0.4".parse::<Ipv4Addr>().unwrap());
    // n1's block is full and no block is free: n1 borrows from n2's block.
    let borrowed = ipam.allocate("net.a3", "n1", "p", None).unwrap();
    let n2_block = ipam.blocks_of("n2").unwrap()[0].clone();
    assert!(n2_block.cidr.contains(&borrowed), "{borrowed}");
    assert!(!a.contains(&borrowed) && borrowed != b0);
    assert_eq!(ipam.handle("net.a3").unwrap().unwrap().node, "n1");
    let usage = &ipam.usage().unwrap()[0];
    assert_eq!((usage.in_use, usage.borrowed), (5, 1));
    assert!(!usage.strict_affinity);
    // Blocks keep their affinity; the borrowed address is released like any other.
    assert_eq!(ipam.blocks_of("n1").unwrap().len(), 1);
    assert_eq!(ipam.release("net.a3").unwrap(), vec![borrowed]);
    let nodes = vec!["n1".to_string(), "n2".to_string()];
    assert_eq!(ipam.check(&|_| true, &nodes).unwrap(), vec![]);
}

#[test]
fn strict_affinity_refuses_to_borrow_with_a_clear_error() {
    let (_d, s) = setup("10.9.0.0/29", 30);
    let ipam = Ipam::new(&s);
    for i in 0..3 {
        ipam.allocate(&format!("net.a{i}"), "n1", "p", None)
            .unwrap();
    }
    ipam.allocate("net.b0", "n2", "p", None).unwrap();
    ipam.set_strict_affinity(None, true).unwrap();
    assert!(ipam.config().unwrap().strict_affinity);
    assert!(ipam.usage().unwrap()[0].strict_affinity);
    let err = ipam.allocate("net.a3", "n1", "p", None).unwrap_err();
    assert!(
        matches!(err, Error::StrictAffinity { ref node, free_elsewhere: 3, .. } if node == "n1"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("strict affinity") && text.contains("--strict-affinity false"),
        "{text}"
    );
    // n2 still allocates from its own block.
    ipam.allocate("net.b1", "n2", "p", None).unwrap();
    // A pool's own setting overrides the cluster-wide one.
    ipam.set_strict_affinity(Some("p"), false).unwrap();
    assert!(!ipam.usage().unwrap()[0].strict_affinity);
    ipam.allocate("net.a3", "n1", "p", None).unwrap();
    ipam.set_strict_affinity(Some("p"), true).unwrap();
    ipam.set_strict_affinity(None, false).unwrap();
    assert!(matches!(
        ipam.allocate("net.a4", "n1", "p", None),
        Err(Error::StrictAffinity { .. })
    ));
    assert!(matches!(
        ipam.set_strict_affinity(Some("nope"), true),
        Err(Error::PoolNotFound(_))
    ));
}

#[test]
fn exhaustion_is_clear_once_every_address_is_taken() {
    let (_d, s) = setup("10.9.0.0/29", 30);
    let ipam = Ipam::new(&s);
    // 7 usable addresses (the pool's first is reserved), spread over two nodes.
    for i in 0..7 {
        let node = if i % 2 == 0 { "n1" } else { "n2" };
        ipam.allocate(&format!("net.x{i}"), node, "p", None)
            .unwrap();
    }
    let err = ipam.allocate("net.x7", "n3", "p", None).unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { .. }), "{err:?}");
    assert!(err.to_string().contains("every address is allocated"));
}

#[test]
fn gc_waits_out_the_grace_recorded_at_the_first_sighting() {
    let (_d, s) = setup("10.244.0.0/16", 26);
    let ipam = Ipam::new(&s);
    let leaked = ipam.allocate("net.gone", "n1", "p", None).unwrap();
    let kept = ipam.allocate("net.live", "n1", "p", None).unwrap();
    abandon(&s, "net.gone");
    abandon(&s, "net.live");
    let grace = Duration::from_secs(900);

    // Dry run: reports, records nothing.
    let dry = gc(&s, Duration::ZERO, true, &["net.live"]);
    assert_eq!(handles(&dry.released), vec!["net.gone"]);
    assert!(s.list(keys::LEAKS).unwrap().0.is_empty());
    assert!(ipam.handle("net.gone").unwrap().is_some());

    // First sighting: pending, with (nearly) the whole grace left.
    let first = gc(&s, grace, false, &["net.live"]);
    assert!(first.released.is_empty());
    assert_eq!(handles(&first.pending), vec!["net.gone"]);
    let entry = &first.pending[0];
    assert_eq!(entry.addresses, vec![leaked]);
    assert!((899..=900).contains(&entry.remaining_secs), "{entry:?}");
    // A second run (another process could run it) counts from the same first sighting.
    std::thread::sleep(Duration::from_millis(2100));
    let second = gc(&s, grace, false, &["net.live"]);
    assert_eq!(second.pending[0].first_seen, entry.first_seen);
    assert!(second.pending[0].remaining_secs < entry.remaining_secs);
    // With a grace shorter than the time since that sighting, it goes; the live one stays.
    let third = gc(&s, Duration::from_secs(1), false, &["net.live"]);
    assert_eq!(handles(&third.released), vec!["net.gone"]);
    assert!(third.pending.is_empty());
    assert!(ipam.handle("net.gone").unwrap().is_none());
    let held: BTreeSet<Ipv4Addr> = ipam
        .blocks()
        .unwrap()
        .iter()
        .flat_map(|b| b.addresses().map(|(a, _)| a).collect::<Vec<_>>())
        .collect();
    assert_eq!(held, BTreeSet::from([kept]));
    assert!(s.list(keys::LEAKS).unwrap().0.is_empty());
}

#[test]
fn a_leak_that_comes_back_to_life_loses_its_sighting() {
    let (_d, s) = setup("10.244.0.0/16", 26);
    let ipam = Ipam::new(&s);
    ipam.allocate("net.w", "n1", "p", None).unwrap();
    abandon(&s, "net.w");
    let r = gc(&s, Duration::from_secs(60), false, &[]);
    assert_eq!(handles(&r.pending), vec!["net.w"]);
    assert_eq!(s.list(keys::LEAKS).unwrap().0.len(), 1);
    // Its workload shows up (e.g. the store was briefly behind): the sighting goes.
    let r = gc(&s, Duration::ZERO, false, &["net.w"]);
    assert!(r.released.is_empty() && r.pending.is_empty());
    assert!(s.list(keys::LEAKS).unwrap().0.is_empty());
    assert!(ipam.handle("net.w").unwrap().is_some());
}

#[test]
fn a_handle_in_creation_is_never_collected() {
    let (_d, s) = setup("10.244.0.0/16", 26);
    let ipam = Ipam::new(&s);
    // Allocated by this process, which still runs: a workload being created, no record yet.
    let ip = ipam.allocate("net.new", "n1", "p", None).unwrap();
    let h = ipam.handle("net.new").unwrap().unwrap();
    assert_eq!(h.creator, Creator::current());
    assert!(h.created > 0);
    let r = gc(&s, Duration::ZERO, false, &[]);
    assert!(r.released.is_empty() && r.pending.is_empty(), "{r:?}");
    assert_eq!(r.in_creation, vec!["net.new".to_string()]);
    assert!(s.list(keys::LEAKS).unwrap().0.is_empty());
    assert_eq!(ipam.handle("net.new").unwrap().unwrap().addresses, vec![ip]);
    // Created on another host (creator not visible from here): spared while recent.
    let (mut h, _) = get_json::<Handle>(&s, &keys::handle("net.new"))
        .unwrap()
        .unwrap();
    h.creator.as_mut().unwrap().boot_id = "another-host".into();
    put_json(&s, &keys::handle("net.new"), &h).unwrap();
    assert_eq!(
        gc(&s, Duration::ZERO, false, &[]).in_creation,
        vec!["net.new"]
    );
    // ...and collected once that creation window has long passed.
    h.created -= 3600;
    put_json(&s, &keys::handle("net.new"), &h).unwrap();
    assert_eq!(
        handles(&gc(&s, Duration::ZERO, false, &[]).released),
        vec!["net.new"]
    );
}

#[test]
fn liveness_is_read_after_the_records() {
    let (_d, s) = setup("10.244.0.0/16", 26);
    let ipam = Ipam::new(&s);
    ipam.allocate("net.w", "n1", "p", None).unwrap();
    abandon(&s, "net.w");
    let read = std::cell::Cell::new(false);
    let live = || {
        // The handle exists when liveness is asked for.
        assert!(Ipam::new(&s).handle("net.w").unwrap().is_some());
        read.set(true);
        Ok(HashSet::from(["net.w".to_string()]))
    };
    let opts = GcOptions {
        grace: Duration::ZERO,
        dry_run: false,
    };
    assert!(ipam.gc(&opts, &live).unwrap().released.is_empty());
    assert!(read.get());
    let failing = || Err("store down".to_string());
    assert!(matches!(ipam.gc(&opts, &failing), Err(Error::Liveness(_))));
    assert!(ipam.handle("net.w").unwrap().is_some());
}
