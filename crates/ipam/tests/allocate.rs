//! Allocation, release and pools, on a temporary SQLite store.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use weft_ipam::{Error, IpPool, Ipam};
use weft_store::SqliteStore;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteStore::open(dir.path().join("ipam.db")).expect("open store");
    (dir, s)
}

fn pool(name: &str, cidr: &str, block: u8) -> IpPool {
    IpPool {
        block_size: block,
        ..IpPool::new(name, cidr.parse().unwrap())
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn sequential_allocations_are_distinct_and_in_the_node_block() {
    let (_d, s) = store();
    let ipam = Ipam::new(&s);
    ipam.ensure_pool(&pool("p", "10.244.0.0/16", 26)).unwrap();
    let addrs: Vec<_> = (0..10)
        .map(|i| {
            ipam.allocate(&format!("net.c{i}"), "n1", "p", None)
                .unwrap()
        })
        .collect();
    // The pool's network address is skipped; then lowest first.
    assert_eq!(addrs[0], ip("10.244.0.1"));
    assert_eq!(addrs[9], ip("10.244.0.10"));
    let blocks = ipam.blocks_of("n1").unwrap();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].cidr, "10.244.0.0/26".parse().unwrap());
    assert!(addrs.iter().all(|a| blocks[0].cidr.contains(a)));
    assert_eq!(addrs.iter().collect::<BTreeSet<_>>().len(), 10);
    let h = ipam.handle("net.c3").unwrap().unwrap();
    assert_eq!(
        (h.node.as_str(), h.addresses.as_slice()),
        ("n1", &[addrs[3]][..])
    );
    assert!(ipam.check(&|_| true, &["n1".into()]).unwrap().is_empty());
}

#[test]
fn two_nodes_get_different_blocks() {
    let (_d, s) = store();
    let ipam = Ipam::new(&s);
    ipam.ensure_pool(&pool("p", "10.244.0.0/16", 26)).unwrap();
    let a = ipam.allocate("net.a", "n1", "p", None).unwrap();
    let b = ipam.allocate("net.b", "n2", "p", None).unwrap();
    let b1 = &ipam.blocks_of("n1").unwrap()[0];
    let b2 = &ipam.blocks_of("n2").unwrap()[0];
    assert_ne!(b1.cidr, b2.cidr);
    assert!(b1.cidr.contains(&a) && b2.cidr.contains(&b));
    // A block that does not start the pool hands out its ordinal 0.
    assert_eq!(b, ip("10.244.0.64"));
}

#[test]
fn full_block_claims_another_and_pool_exhaustion_is_clear() {
    let (_d, s) = store();
    let ipam = Ipam::new(&s);
    // /28 pool, /30 blocks: 4 blocks of 4 addresses, the very first address reserved.
    ipam.ensure_pool(&pool("small", "10.9.0.0/28", 30)).unwrap();
    let mut got = Vec::new();
    for i in 0..5 {
        got.push(
            ipam.allocate(&format!("net.x{i}"), "n1", "small", None)
                .unwrap(),
        );
    }
    assert_eq!(ipam.blocks_of("n1").unwrap().len(), 2);
    assert_eq!(got[3], ip("10.9.0.4"));
    for i in 5..15 {
        ipam.allocate(&format!("net.x{i}"), "n1", "small", None)
            .unwrap();
    }
    let err = ipam.allocate("net.last", "n1", "small", None).unwrap_err();
    assert!(matches!(err, Error::PoolExhausted { ref pool, .. } if pool == "small"));
    let text = err.to_string();
    assert!(
        text.contains("small") && text.contains("exhausted"),
        "{text}"
    );
    // Another node finds no block at all.
    assert!(matches!(
        ipam.allocate("net.other", "n2", "small", None),
        Err(Error::PoolExhausted { .. })
    ));
    let usage = &ipam.usage().unwrap()[0];
    assert_eq!(
        (usage.size, usage.in_use, usage.blocks, usage.blocks_total),
        (16, 15, 4, 4)
    );
}

#[test]
fn release_returns_the_address() {
    let (_d, s) = store();
    let ipam = Ipam::new(&s);
    ipam.ensure_pool(&pool("p", "10.244.0.0/16", 26)).unwrap();
    let a = ipam.allocate("net.a", "n1", "p", None).unwrap();
    let b = ipam.allocate("net.b", "n1", "p", None).unwrap();
    assert_eq!(ipam.release("net.a").unwrap(), vec![a]);
    assert!(ipam.handle("net.a").unwrap().is_none());
    assert!(ipam.release("net.a").unwrap().is_empty());
    // The freed address is the lowest free one again.
    assert_eq!(ipam.allocate("net.c", "n1", "p", None).unwrap(), a);
    assert_ne!(a, b);
    // Empty blocks go back to the pool, used ones stay.
    ipam.release_block_affinity("n1").unwrap();
    assert_eq!(ipam.blocks_of("n1").unwrap().len(), 1);
    ipam.release("net.b").unwrap();
    ipam.release("net.c").unwrap();
    ipam.release_block_affinity("n1").unwrap();
    assert!(ipam.blocks().unwrap().is_empty());
    assert!(ipam.handles().unwrap().is_empty());
}

#[test]
fn requested_addresses() {
    let (_d, s) = store();
    let ipam = Ipam::new(&s);
    ipam.ensure_pool(&pool("p", "10.244.0.0/16", 26)).unwrap();
    let want = ip("10.244.3.7");
    assert_eq!(ipam.allocate("net.a", "n1", "p", Some(want)).unwrap(), want);
    // Idempotent for the same handle.
    assert_eq!(ipam.allocate("net.a", "n1", "p", Some(want)).unwrap(), want);
    let blocks = ipam.blocks_of("n1").unwrap();
    assert_eq!(blocks[0].cidr, "10.244.3.0/26".parse().unwrap());
    assert!(matches!(
        ipam.allocate("net.b", "n1", "p", Some(want)),
        Err(Error::AddressInUse { ref handle, .. }) if handle == "net.a"
    ));
    assert!(matches!(
        ipam.allocate("net.b", "n1", "p", Some(ip("10.245.0.1"))),
        Err(Error::AddressOutsidePool { .. })
    ));
    assert!(matches!(
        ipam.allocate("net.b", "n2", "p", Some(ip("10.244.3.8"))),
        Err(Error::AddressNotHere { .. })
    ));
    assert!(matches!(
        ipam.allocate("net.b", "n1", "p", Some(ip("10.244.0.0"))),
        Err(Error::AddressReserved { .. })
    ));
    // A second address for the same handle, then both are released together.
    let second = ipam.allocate("net.a", "n1", "p", None).unwrap();
    assert_eq!(second, ip("10.244.3.0"));
    assert_eq!(ipam.release("net.a").unwrap(), vec![second, want]);
    assert!(matches!(
        ipam.allocate("net.a", "n1", "nopool", None),
        Err(Error::PoolNotFound(_))
    ));
}

#[test]
fn pools_validate_overlap_and_deletion() {
    let (_d, s) = store();
    let ipam = Ipam::new(&s);
    let p = pool("p", "10.244.0.0/16", 26);
    ipam.ensure_pool(&p).unwrap();
    ipam.ensure_pool(&p).unwrap(); // idempotent
    assert!(matches!(
        ipam.ensure_pool(&pool("q", "10.244.128.0/17", 26)),
        Err(Error::PoolOverlap { .. })
    ));
    assert!(matches!(
        ipam.ensure_pool(&pool("p", "10.245.0.0/16", 26)),
        Err(Error::PoolExists { .. })
    ));
    assert!(matches!(
        ipam.ensure_pool(&pool("bad", "10.1.0.1/16", 26)),
        Err(Error::InvalidPool { .. })
    ));
    assert!(matches!(
        ipam.ensure_pool(&pool("bad", "10.1.0.0/28", 26)),
        Err(Error::InvalidPool { .. })
    ));
    ipam.ensure_pool(&pool("q", "10.96.0.0/24", 28)).unwrap();
    assert_eq!(ipam.pools().unwrap().len(), 2);
    ipam.allocate("net.a", "n1", "q", None).unwrap();
    assert!(matches!(
        ipam.delete_pool("q"),
        Err(Error::PoolInUse { in_use: 1, .. })
    ));
    ipam.release("net.a").unwrap();
    ipam.delete_pool("q").unwrap();
    assert!(ipam.blocks().unwrap().is_empty());
    assert!(matches!(ipam.delete_pool("q"), Err(Error::PoolNotFound(_))));
    // Disabled pools refuse automatic allocation.
    ipam.ensure_pool(&IpPool {
        disabled: true,
        ..pool("off", "10.50.0.0/24", 26)
    })
    .unwrap();
    assert!(matches!(
        ipam.allocate("net.z", "n1", "off", None),
        Err(Error::PoolDisabled(_))
    ));
    assert!(matches!(
        ipam.allocate("bad/handle", "n1", "p", None),
        Err(Error::InvalidHandle { .. })
    ));
}
