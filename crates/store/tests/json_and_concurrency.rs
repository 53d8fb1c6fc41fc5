//! Typed helpers, and many writers at once (threads and separate processes).

use std::process::Command;

use serde::{Deserialize, Serialize};
use weft_store::{create_json, delete, get_json, list_json, put_json, update_json, Error, Store};

mod support;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

#[test]
fn typed_helpers() {
    for b in support::all() {
        eprintln!("backend {}", b.name);
        let s = &*b.store;
        let r1 = create_json(s, "/j/a", &Counter { n: 1 }).unwrap();
        let err = create_json(s, "/j/a", &Counter { n: 2 }).unwrap_err();
        assert!(matches!(err, Error::Conflict(ref m) if m.contains("/j/a already exists")));
        let (v, rev) = get_json::<Counter>(s, "/j/a").unwrap().unwrap();
        assert_eq!((v.n, rev), (1, r1));
        let r2 = put_json(s, "/j/b", &Counter { n: 5 }).unwrap();
        assert_eq!(r2, r1 + 1);
        let all = list_json::<Counter>(s, "/j/").unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], ("/j/b".to_string(), Counter { n: 5 }, r2));
        let up = update_json(s, "/j/b", |c: Option<Counter>| {
            Ok(c.map(|c| Counter { n: c.n * 2 }))
        })
        .unwrap();
        assert_eq!(up, Some(Counter { n: 10 }));
        // Create through update, and delete through update.
        update_json(s, "/j/c", |c: Option<Counter>| {
            assert!(c.is_none());
            Ok(Some(Counter { n: 0 }))
        })
        .unwrap();
        assert!(get_json::<Counter>(s, "/j/c").unwrap().is_some());
        assert_eq!(
            update_json::<Counter, _>(s, "/j/c", |_| Ok(None)).unwrap(),
            None
        );
        assert!(s.get("/j/c").unwrap().is_none());
        assert!(delete(s, "/j/a").unwrap());
        assert!(!delete(s, "/j/a").unwrap());
        // Damaged records give a codec error naming the key.
        put_json(s, "/j/bad", &"not a counter").unwrap();
        let err = get_json::<Counter>(s, "/j/bad").unwrap_err();
        assert!(matches!(err, Error::Codec(ref m) if m.contains("/j/bad")));
    }
}

fn increment(s: &dyn Store, times: usize) {
    for _ in 0..times {
        update_json(s, "/counter", |c: Option<Counter>| {
            Ok(Some(Counter {
                n: c.map_or(0, |c| c.n) + 1,
            }))
        })
        .expect("increment");
    }
}

#[test]
fn threads_with_own_connections_count_exactly() {
    for b in support::shared() {
        eprintln!("backend {}", b.name);
        std::thread::scope(|sc| {
            for _ in 0..8 {
                sc.spawn(|| {
                    let s = weft_store::open(&b.location).expect("open");
                    increment(&*s, 50);
                });
            }
        });
        let (c, _) = get_json::<Counter>(&*b.store, "/counter").unwrap().unwrap();
        assert_eq!(c.n, 8 * 50);
    }
}

/// The store location a child process opens.
const CHILD_ENV: &str = "WEFT_STORE_TEST_CHILD_DB";

/// Parent: re-runs this test binary N times as child processes that each increment the shared
/// counter; the child side is this same test with the environment variable set.
#[test]
fn processes_count_exactly() {
    if let Ok(db) = std::env::var(CHILD_ENV) {
        let s = weft_store::open(&db).expect("child open");
        increment(&*s, 50);
        return;
    }
    // WEFT_STORE_TEST_PROCS raises the count for a stress run (e.g. 100).
    let n: usize = std::env::var("WEFT_STORE_TEST_PROCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let exe = std::env::current_exe().unwrap();
    for b in support::shared() {
        eprintln!("backend {}", b.name);
        let children: Vec<_> = (0..n)
            .map(|_| {
                Command::new(&exe)
                    .args(["--exact", "processes_count_exactly", "--test-threads=1"])
                    .env(CHILD_ENV, &b.location)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("spawn child")
            })
            .collect();
        for mut c in children {
            let status = c.wait().expect("wait child");
            assert!(status.success(), "child failed: {status}");
        }
        let s = &*b.store;
        let (c, _) = get_json::<Counter>(s, "/counter").unwrap().unwrap();
        assert_eq!(c.n, (n * 50) as u64);
        // One revision per increment.
        assert_eq!(s.revision().unwrap(), (n * 50) as i64);
    }
}
