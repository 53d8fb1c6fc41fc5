//! The etcd backend when etcd goes away: calls fail in bounded time with a clear error, and
//! watches carry on from where they were once etcd is back.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use weft_store::{EventKind, Op, Store};

mod support;

fn put(s: &dyn Store, k: &str, v: &str) -> i64 {
    s.txn(&[], &[Op::Put(k.into(), v.as_bytes().to_vec())])
        .expect("put")
        .revision
}

/// Retries `put` until etcd answers again (the client reconnects by itself).
fn put_when_back(s: &dyn Store, k: &str, v: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s.txn(&[], &[Op::Put(k.into(), v.as_bytes().to_vec())]) {
            Ok(r) => return r.revision,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not back yet: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("etcd did not come back: {e}"),
        }
    }
}

fn assert_fails_clearly(s: &dyn Store, url: &str) {
    let t = Instant::now();
    let err = s.get("/k").expect_err("etcd is down");
    let took = t.elapsed();
    let msg = err.to_string();
    assert!(took < Duration::from_secs(8), "took {took:?}: {msg}");
    assert!(msg.contains(url), "{msg}");
    assert!(msg.contains("is etcd running"), "{msg}");
}

#[test]
fn killed_etcd_fails_calls_and_watch_resumes_after_restart() {
    let Some(mut etcd) = support::EtcdServer::start() else {
        return;
    };
    let url = etcd.url();
    let s = weft_store::open(&url).unwrap();
    let s = &*s;
    let r1 = put(s, "/w/a", "1");
    let mut w = s.watch("/w/", 0).unwrap();
    let evs = w.next(Duration::from_secs(5)).unwrap();
    assert_eq!(evs.len(), 1);

    etcd.stop();
    assert_fails_clearly(s, &url);
    // The watch does not fail: it waits for etcd.
    assert!(w.next(Duration::from_millis(500)).unwrap().is_empty());

    etcd.restart();
    let r2 = put_when_back(s, "/w/b", "2");
    assert_eq!(r2, r1 + 1, "revisions go on where they were");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.is_empty() && Instant::now() < deadline {
        got = w.next(Duration::from_secs(1)).unwrap();
    }
    let keys: Vec<_> = got
        .iter()
        .map(|e| (e.kind, e.kv.key.as_str(), e.kv.mod_revision))
        .collect();
    assert_eq!(keys, [(EventKind::Put, "/w/b", r2)]);
}

#[test]
fn stopped_etcd_fails_calls_in_bounded_time_and_watch_resumes() {
    let Some(etcd) = support::EtcdServer::start() else {
        return;
    };
    let url = etcd.url();
    let s = weft_store::open(&url).unwrap();
    let s = &*s;
    put(s, "/w/a", "1");
    let mut w = s.watch("/w/", s.revision().unwrap()).unwrap();
    assert!(w.next(Duration::from_millis(200)).unwrap().is_empty());

    let pid = Pid::from_raw(etcd.pid());
    kill(pid, Signal::SIGSTOP).unwrap();
    let resume = scopeguard(pid);
    assert_fails_clearly(s, &url);
    assert!(w.next(Duration::from_secs(1)).unwrap().is_empty());
    drop(resume); // SIGCONT

    let r = put_when_back(s, "/w/b", "2");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.is_empty() && Instant::now() < deadline {
        got = w.next(Duration::from_secs(1)).unwrap();
    }
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].kv.key.as_str(), got[0].kv.mod_revision),
        ("/w/b", r)
    );
}

/// Sends SIGCONT on drop, so that a failing test does not leave etcd stopped.
struct Cont(Pid);
impl Drop for Cont {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}
fn scopeguard(pid: Pid) -> Cont {
    Cont(pid)
}
