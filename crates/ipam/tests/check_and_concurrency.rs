//! `check` finds each kind of problem, `gc` repairs leaks, and many writers at once.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use std::time::Duration;

use common::abandon;
use weft_ipam::{keys, Block, GcOptions, Handle, IpPool, Ipam, Problem};
use weft_store::{put_json, SqliteStore, Store};

fn setup() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteStore::open(dir.path().join("ipam.db")).expect("open store");
    Ipam::new(&s)
        .ensure_pool(&IpPool::new("p", "10.244.0.0/16".parse().unwrap()))
        .unwrap();
    (dir, s)
}

fn nodes() -> Vec<String> {
    vec!["n1".into(), "n2".into()]
}

fn block(cidr: &str, pool: &str, node: &str, allocs: &[(u32, &str)]) -> Block {
    Block {
        cidr: cidr.parse().unwrap(),
        pool: pool.into(),
        affinity: Some(node.into()),
        allocations: allocs.iter().map(|(o, h)| (*o, h.to_string())).collect(),
        sequence: 1,
    }
}

fn write_block(s: &dyn Store, b: &Block) {
    put_json(s, &keys::block(b.cidr), b).unwrap();
}

fn write_handle(s: &dyn Store, id: &str, node: &str, addrs: &[&str]) {
    let h = Handle {
        id: id.into(),
        node: node.into(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        created: 0,
        creator: None,
    };
    put_json(s, &keys::handle(id), &h).unwrap();
}

fn gc_now(s: &dyn Store, live: &dyn Fn(&str) -> bool) -> Vec<String> {
    let opts = GcOptions {
        grace: Duration::ZERO,
        dry_run: false,
    };
    let live_set = || {
        Ok(["net.a", "net.b", "net.ghost"]
            .into_iter()
            .filter(|h| live(h))
            .map(String::from)
            .collect())
    };
    let report = Ipam::new(s).gc(&opts, &live_set).unwrap();
    report.released.into_iter().map(|e| e.handle).collect()
}

fn problems(s: &dyn Store, live: &dyn Fn(&str) -> bool) -> Vec<Problem> {
    Ipam::new(s).check(live, &nodes()).unwrap()
}

#[test]
fn clean_when_consistent() {
    let (_d, s) = setup();
    let ipam = Ipam::new(&s);
    ipam.allocate("net.a", "n1", "p", None).unwrap();
    ipam.allocate("net.b", "n2", "p", None).unwrap();
    assert_eq!(problems(&s, &|_| true), vec![]);
}

#[test]
fn finds_leaked_handles_and_gc_releases_them() {
    let (_d, s) = setup();
    let ipam = Ipam::new(&s);
    let a = ipam.allocate("net.a", "n1", "p", None).unwrap();
    ipam.allocate("net.b", "n1", "p", None).unwrap();
    let live = |h: &str| h != "net.a";
    // While its creator (this process) runs, net.a is a workload being created, not a leak.
    assert_eq!(problems(&s, &live), vec![]);
    assert!(gc_now(&s, &live).is_empty());
    abandon(&s, "net.a");
    let found = problems(&s, &live);
    assert_eq!(
        found,
        vec![Problem::LeakedHandle {
            handle: "net.a".into(),
            addresses: vec![a]
        }]
    );
    assert!(found[0].to_string().contains("weft ipam gc"));
    assert_eq!(gc_now(&s, &live), vec!["net.a".to_string()]);
    assert_eq!(problems(&s, &live), vec![]);
}

#[test]
fn finds_block_address_without_handle() {
    let (_d, s) = setup();
    write_block(&s, &block("10.244.0.0/26", "p", "n1", &[(5, "net.ghost")]));
    let found = problems(&s, &|_| true);
    assert!(
        matches!(found.as_slice(), [Problem::MissingHandle { handle, addr, .. }]
            if handle == "net.ghost" && *addr == Ipv4Addr::new(10, 244, 0, 5)),
        "{found:?}"
    );
    // gc keeps it while the handle is live, frees it when not.
    assert!(gc_now(&s, &|_| true).is_empty());
    assert_eq!(gc_now(&s, &|_| false), vec!["net.ghost"]);
    assert_eq!(problems(&s, &|_| true), vec![]);
}

#[test]
fn finds_handle_and_block_disagreeing() {
    let (_d, s) = setup();
    write_block(
        &s,
        &block("10.244.0.0/26", "p", "n1", &[(1, "net.a"), (2, "net.b")]),
    );
    write_handle(
        &s,
        "net.a",
        "n1",
        &["10.244.0.1", "10.244.0.2", "10.244.0.9"],
    );
    write_handle(&s, "net.b", "n1", &[]);
    let found = problems(&s, &|_| true);
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(found.contains(&Problem::HandleNotInBlock {
        handle: "net.a".into(),
        addr: "10.244.0.2".parse().unwrap(),
        block_holder: Some("net.b".into()),
    }));
    assert!(found.contains(&Problem::HandleNotInBlock {
        handle: "net.a".into(),
        addr: "10.244.0.9".parse().unwrap(),
        block_holder: None,
    }));
    assert!(found.contains(&Problem::BlockNotInHandle {
        handle: "net.b".into(),
        addr: "10.244.0.2".parse().unwrap(),
        block: "10.244.0.0/26".parse().unwrap(),
    }));
    assert_eq!(found.len(), 3, "{text:?}");
}

#[test]
fn finds_addresses_held_twice_and_overlapping_blocks() {
    let (_d, s) = setup();
    write_block(&s, &block("10.244.0.0/26", "p", "n1", &[(1, "net.a")]));
    write_block(&s, &block("10.244.0.0/27", "p", "n2", &[(1, "net.b")]));
    write_handle(&s, "net.a", "n1", &["10.244.0.1"]);
    write_handle(&s, "net.b", "n2", &["10.244.0.1"]);
    let found = problems(&s, &|_| true);
    assert!(found.contains(&Problem::OverlappingBlocks {
        a: "10.244.0.0/26".parse().unwrap(),
        b: "10.244.0.0/27".parse().unwrap(),
    }));
    let twice: Vec<_> = found
        .iter()
        .filter(|p| matches!(p, Problem::AddressHeldTwice { .. }))
        .collect();
    assert_eq!(twice.len(), 2, "{found:?}"); // by the blocks, and by the handles
}

#[test]
fn finds_orphan_blocks_and_blocks_outside_pools() {
    let (_d, s) = setup();
    write_block(&s, &block("10.244.1.0/26", "p", "gone", &[]));
    write_block(&s, &block("10.9.0.0/26", "p", "n1", &[]));
    write_block(&s, &block("10.244.2.0/26", "nopool", "n1", &[]));
    write_block(&s, &block("10.244.3.0/26", "p", "n1", &[(64, "net.x")]));
    write_handle(&s, "net.x", "n1", &[]);
    let found = problems(&s, &|_| true);
    assert!(found.contains(&Problem::OrphanBlock {
        block: "10.244.1.0/26".parse().unwrap(),
        node: "gone".into(),
    }));
    let outside: Vec<_> = found
        .iter()
        .filter_map(|p| match p {
            Problem::BlockOutsidePool { block, .. } => Some(block.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(outside, ["10.9.0.0/26", "10.244.2.0/26", "10.244.3.0/26"]);
    // A damaged record is reported, not fatal.
    put_json(&s, &keys::handle("net.bad"), &"garbage").unwrap();
    assert!(problems(&s, &|_| true)
        .iter()
        .any(|p| matches!(p, Problem::BadRecord { key, .. } if key.ends_with("net.bad"))));
}

#[test]
fn concurrent_allocations_from_many_connections() {
    let (dir, s) = setup();
    let path = dir.path().join("ipam.db");
    const THREADS: usize = 8;
    const EACH: usize = 25;
    let per_thread: Vec<Vec<(String, Ipv4Addr)>> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let path = path.clone();
                sc.spawn(move || {
                    let store = weft_store::open(path.to_str().unwrap()).expect("open");
                    let ipam = Ipam::new(&*store);
                    let node = format!("n{}", t % 3);
                    (0..EACH)
                        .map(|i| {
                            let h = format!("net.t{t}-{i}");
                            let a = ipam.allocate(&h, &node, "p", None).expect("allocate");
                            (h, a)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    });
    let all: Vec<(String, Ipv4Addr)> = per_thread.into_iter().flatten().collect();
    let distinct: BTreeSet<Ipv4Addr> = all.iter().map(|(_, a)| *a).collect();
    assert_eq!(distinct.len(), THREADS * EACH);
    let ipam = Ipam::new(&s);
    let names: Vec<String> = (0..3).map(|n| format!("n{n}")).collect();
    assert_eq!(ipam.check(&|_| true, &names).unwrap(), vec![]);
    // Each address lies in a block of the node that asked for it.
    let owner: BTreeMap<String, usize> = (0..THREADS)
        .flat_map(|t| (0..EACH).map(move |i| (format!("net.t{t}-{i}"), t % 3)))
        .collect();
    for b in ipam.blocks().unwrap() {
        for (_, h) in b.addresses() {
            assert_eq!(b.affinity, Some(format!("n{}", owner[h])));
        }
    }
    // Release all, in parallel too.
    std::thread::scope(|sc| {
        for chunk in all.chunks(50) {
            let path = path.clone();
            sc.spawn(move || {
                let store = weft_store::open(path.to_str().unwrap()).expect("open");
                let ipam = Ipam::new(&*store);
                for (h, a) in chunk {
                    assert_eq!(ipam.release(h).expect("release"), vec![*a]);
                }
            });
        }
    });
    assert!(ipam.handles().unwrap().is_empty());
    assert!(ipam
        .blocks()
        .unwrap()
        .iter()
        .all(|b| b.allocations.is_empty()));
    assert_eq!(ipam.usage().unwrap()[0].in_use, 0);
    assert_eq!(ipam.check(&|_| true, &names).unwrap(), vec![]);
}
