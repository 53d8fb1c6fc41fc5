//! The Store contract, checked against every backend (SQLite, memory, and etcd when installed).

use std::time::Duration;

use weft_store::{Compare, Error, EventKind, Op, SqliteStore, Store};

mod support;

fn put(s: &dyn Store, k: &str, v: &str) -> i64 {
    let r = s
        .txn(&[], &[Op::Put(k.into(), v.as_bytes().to_vec())])
        .expect("put");
    assert!(r.succeeded);
    r.revision
}

#[test]
fn crud_and_revisions() {
    for b in support::all() {
        eprintln!("backend {}", b.name);
        let s = &*b.store;
        assert_eq!(s.revision().unwrap(), 0);
        assert!(s.get("/a/x").unwrap().is_none());
        assert_eq!(put(s, "/a/x", "1"), 1);
        assert_eq!(put(s, "/a/x", "2"), 2);
        let kv = s.get("/a/x").unwrap().unwrap();
        assert_eq!(kv.value, b"2");
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (1, 2, 2));
        // Several ops share one revision.
        let r = s
            .txn(
                &[],
                &[
                    Op::Put("/a/y".into(), b"y".to_vec()),
                    Op::Put("/b/z".into(), b"z".to_vec()),
                ],
            )
            .unwrap();
        assert_eq!(r.revision, 3);
        assert_eq!(s.get("/a/y").unwrap().unwrap().mod_revision, 3);
        assert_eq!(s.get("/b/z").unwrap().unwrap().mod_revision, 3);
        // Deleting an absent key changes nothing and keeps the revision.
        let r = s.txn(&[], &[Op::Delete("/nope".into())]).unwrap();
        assert!(r.succeeded);
        assert_eq!(r.revision, 3);
        let r = s.txn(&[], &[Op::Delete("/a/x".into())]).unwrap();
        assert_eq!(r.revision, 4);
        assert!(s.get("/a/x").unwrap().is_none());
        // Recreated: version and create revision start over.
        assert_eq!(put(s, "/a/x", "3"), 5);
        let kv = s.get("/a/x").unwrap().unwrap();
        assert_eq!((kv.create_revision, kv.version), (5, 1));
        assert_eq!(s.revision().unwrap(), 5);
    }
}

#[test]
fn list_by_prefix_sorted() {
    for b in support::all() {
        eprintln!("backend {}", b.name);
        let s = &*b.store;
        for k in ["/a/c", "/a/a", "/ab", "/a/b", "/b/a", "/a", "/a/\u{e9}"] {
            put(s, k, k);
        }
        let (kvs, rev) = s.list("/a/").unwrap();
        let keys: Vec<_> = kvs.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["/a/a", "/a/b", "/a/c", "/a/\u{e9}"]);
        assert_eq!(rev, 7);
        // Plain string prefix, like etcd.
        let (kvs, _) = s.list("/a").unwrap();
        assert_eq!(kvs.len(), 6);
        let (all, _) = s.list("").unwrap();
        assert_eq!(all.len(), 7);
        let r = s.txn(&[], &[Op::DeletePrefix("/a/".into())]).unwrap();
        assert_eq!(r.revision, 8);
        let (kvs, _) = s.list("").unwrap();
        let keys: Vec<_> = kvs.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["/a", "/ab", "/b/a"]);
    }
}

#[test]
fn compare_and_swap() {
    for b in support::all() {
        eprintln!("backend {}", b.name);
        let s = &*b.store;
        let k = "/cas".to_string();
        // Absent: mod revision 0 and version 0 hold, value never does.
        assert!(
            !s.txn(
                &[Compare::Value(k.clone(), vec![])],
                &[Op::Put(k.clone(), vec![1])]
            )
            .unwrap()
            .succeeded
        );
        let r = s
            .txn(
                &[
                    Compare::ModRevision(k.clone(), 0),
                    Compare::Version(k.clone(), 0),
                ],
                &[Op::Put(k.clone(), b"v1".to_vec())],
            )
            .unwrap();
        assert!(r.succeeded);
        // Create again fails and leaves the revision alone.
        let r2 = s
            .txn(
                &[Compare::ModRevision(k.clone(), 0)],
                &[Op::Put(k.clone(), b"x".to_vec())],
            )
            .unwrap();
        assert!(!r2.succeeded);
        assert_eq!(r2.revision, r.revision);
        assert_eq!(s.get(&k).unwrap().unwrap().value, b"v1");
        // All compares must hold.
        let r3 = s
            .txn(
                &[
                    Compare::ModRevision(k.clone(), r.revision),
                    Compare::Value(k.clone(), b"other".to_vec()),
                ],
                &[Op::Delete(k.clone())],
            )
            .unwrap();
        assert!(!r3.succeeded);
        let r4 = s
            .txn(
                &[
                    Compare::ModRevision(k.clone(), r.revision),
                    Compare::Version(k.clone(), 1),
                    Compare::Value(k.clone(), b"v1".to_vec()),
                ],
                &[Op::Put(k.clone(), b"v2".to_vec())],
            )
            .unwrap();
        assert!(r4.succeeded);
        assert_eq!(s.get(&k).unwrap().unwrap().value, b"v2");
    }
}

#[test]
fn watch_sees_puts_and_deletes_in_order() {
    for b in support::all() {
        eprintln!("backend {}", b.name);
        let s = &*b.store;
        put(s, "/w/a", "0"); // rev 1
        let start = s.revision().unwrap();
        put(s, "/w/a", "1"); // 2
        put(s, "/other", "x"); // 3
        put(s, "/w/b", "2"); // 4
        s.txn(&[], &[Op::Delete("/w/a".into())]).unwrap(); // 5
        let mut w = s.watch("/w/", start).unwrap();
        let evs = w.next(Duration::from_secs(2)).unwrap();
        let got: Vec<_> = evs
            .iter()
            .map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision))
            .collect();
        assert_eq!(
            got,
            [
                (EventKind::Put, "/w/a", 2),
                (EventKind::Put, "/w/b", 4),
                (EventKind::Delete, "/w/a", 5)
            ]
        );
        assert_eq!(evs[0].kv.value, b"1");
        assert_eq!(evs[0].kv.version, 2);
        assert!(evs[2].kv.value.is_empty());
        // Nothing new: empty after the timeout.
        assert!(w.next(Duration::from_millis(120)).unwrap().is_empty());
        // A change made later (from another thread) wakes the watch.
        std::thread::scope(|sc| {
            sc.spawn(|| {
                std::thread::sleep(Duration::from_millis(100));
                put(s, "/w/c", "3");
            });
            let evs = w.next(Duration::from_secs(5)).unwrap();
            assert_eq!(evs.len(), 1);
            assert_eq!(evs[0].kv.key, "/w/c");
            assert_eq!(evs[0].kv.mod_revision, 6);
        });
        // A watch from the current revision sees only what follows.
        let mut w2 = s.watch("/w/", s.revision().unwrap()).unwrap();
        assert!(w2.next(Duration::from_millis(60)).unwrap().is_empty());
        s.txn(&[], &[Op::DeletePrefix("/w/".into())]).unwrap();
        let evs = w2.next(Duration::from_secs(2)).unwrap();
        assert_eq!(evs.len(), 2);
        assert!(evs.iter().all(|e| e.kind == EventKind::Delete));
        assert!(evs.iter().all(|e| e.kv.mod_revision == 7));
    }
}

#[test]
fn compaction() {
    for b in support::all() {
        eprintln!("backend {}", b.name);
        let s = &*b.store;
        for i in 0..5 {
            put(s, "/c/k", &i.to_string()); // revs 1..=5
        }
        let mut lagging = s.watch("/c/", 1).unwrap();
        s.compact(4).unwrap();
        // Events from rev 4 are kept: a watch from 3 works, from 2 does not.
        let mut w = s.watch("/c/", 3).unwrap();
        let evs = w.next(Duration::from_secs(1)).unwrap();
        let revs: Vec<_> = evs.iter().map(|e| e.kv.mod_revision).collect();
        assert_eq!(revs, [4, 5]);
        match s.watch("/c/", 2) {
            Err(Error::Compacted { requested, oldest }) => assert_eq!((requested, oldest), (2, 4)),
            other => panic!("expected Compacted, got {:?}", other.map(|_| ())),
        }
        // A watch created before the compaction and behind it fails too (etcd may take a
        // moment to say so).
        assert!(matches!(
            lagging.next(Duration::from_secs(3)),
            Err(Error::Compacted { .. })
        ));
        // Compaction never goes backwards nor past the current revision; data stays.
        s.compact(2).unwrap();
        s.compact(1000).unwrap();
        assert!(s.watch("/c/", 5).is_ok());
        assert!(s.watch("/c/", 3).is_err());
        assert_eq!(s.get("/c/k").unwrap().unwrap().value, b"4");
    }
}

#[test]
fn sqlite_persists_and_shares_between_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = weft_store::open(&format!("sqlite://{}", path.display())).unwrap();
    put(&a, "/k", "v");
    assert_eq!(b.get("/k").unwrap().unwrap().value, b"v");
    let mut w = b.watch("/", 1).unwrap();
    put(&a, "/k2", "v2");
    let evs = w.next(Duration::from_secs(2)).unwrap();
    assert_eq!(evs.len(), 1);
    drop((a, b));
    let c = weft_store::open(path.to_str().unwrap()).unwrap();
    assert_eq!(c.revision().unwrap(), 2);
}
