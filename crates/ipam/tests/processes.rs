//! Many processes allocating from one SQLite store at once: contention, borrowing, exhaustion,
//! and processes killed with SIGKILL in the middle, whose handles gc then collects.
//!
//! The test binary runs itself as the child processes (the `child` test does the work when
//! `WEFT_IPAM_CHILD` is set, and nothing otherwise).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::setup;
use weft_ipam::{Error, GcOptions, Ipam};
use weft_store::SqliteStore;

const CHILD_ENV: &str = "WEFT_IPAM_CHILD";

/// Child: `DB|NODE|PREFIX|COUNT|PAUSE_MS|OUT`: allocates COUNT addresses for handles
/// `net.PREFIX-i` on NODE, writing `ADDR HANDLE` (or `exhausted HANDLE`) lines to OUT, pausing
/// PAUSE_MS between allocations, then sleeps for ever if PAUSE_MS > 0 (to be killed).
#[test]
fn child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let f: Vec<&str> = spec.split('|').collect();
    let (db, node, prefix, count, pause, out) = (f[0], f[1], f[2], f[3], f[4], f[5]);
    let count: usize = count.parse().unwrap();
    let pause: u64 = pause.parse().unwrap();
    let store = SqliteStore::open(db).expect("open store");
    let ipam = Ipam::new(&store);
    let mut out = std::fs::File::create(out).expect("output file");
    for i in 0..count {
        let h = format!("net.{prefix}-{i}");
        match ipam.allocate(&h, node, "p", None) {
            Ok(ip) => writeln!(out, "{ip} {h}").unwrap(),
            Err(Error::PoolExhausted { .. }) => writeln!(out, "exhausted {h}").unwrap(),
            Err(e) => panic!("allocate {h}: {e}"),
        }
        out.flush().unwrap();
        std::thread::sleep(Duration::from_millis(pause));
    }
    if pause > 0 {
        std::thread::sleep(Duration::from_secs(600));
    }
}

/// A child process, killed when dropped (so a failing test leaves none behind).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &Path, node: &str, prefix: &str, count: usize, pause_ms: u64) -> Proc {
    let db = dir.join("ipam.db");
    let out = dir.join(format!("{prefix}.out"));
    let spec = format!(
        "{}|{node}|{prefix}|{count}|{pause_ms}|{}",
        db.display(),
        out.display()
    );
    Proc(
        Command::new(std::env::current_exe().unwrap())
            .args(["child", "--exact", "--test-threads=1", "-q"])
            .env(CHILD_ENV, spec)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn a child"),
    )
}

fn read_out(dir: &Path, prefix: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(dir.join(format!("{prefix}.out")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, h)| (a.to_string(), h.to_string()))
        .collect()
}

fn nodes(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("n{i}")).collect()
}

#[test]
fn processes_on_many_nodes_never_get_the_same_address_and_borrow_when_blocks_run_out() {
    // /24 pool cut into 16 blocks of 16: 255 usable addresses; 12 processes on 4 nodes ask
    // for 288, so blocks run out, nodes borrow, and the last requests find the pool exhausted.
    let (dir, s) = setup("10.50.0.0/24", 28);
    let (procs, each) = (12, 24);
    let children: Vec<Proc> = (0..procs)
        .map(|p| {
            spawn(
                dir.path(),
                &format!("n{}", p % 4),
                &format!("c{p}"),
                each,
                0,
            )
        })
        .collect();
    for mut c in children {
        assert!(c.0.wait().unwrap().success(), "a child failed");
    }
    let mut addrs: BTreeMap<String, String> = BTreeMap::new();
    let mut exhausted = 0;
    for p in 0..procs {
        for (a, h) in read_out(dir.path(), &format!("c{p}")) {
            if a == "exhausted" {
                exhausted += 1;
            } else if let Some(other) = addrs.insert(a.clone(), h.clone()) {
                panic!("{a} given to both {other} and {h}");
            }
        }
    }
    assert_eq!(addrs.len(), 255);
    assert_eq!(exhausted, procs * each - 255);
    let ipam = Ipam::new(&s);
    assert_eq!(ipam.check(&|_| true, &nodes(4)).unwrap(), vec![]);
    let usage = &ipam.usage().unwrap()[0];
    assert_eq!((usage.in_use, usage.blocks), (255, 16));
    assert!(usage.borrowed > 0, "{usage:?}");
    // Every handle's address is recorded in its block, whoever the block is affine to.
    for h in ipam.handles().unwrap() {
        let a = h.addresses[0];
        assert_eq!(addrs[&a.to_string()], h.id);
    }
}

#[test]
fn sigkilled_allocators_leave_consistent_records_that_gc_collects() {
    let (dir, s) = setup("10.60.0.0/16", 26);
    // Six allocate slowly and are killed part-way; two finish; one keeps running.
    let mut slow: Vec<Proc> = (0..6)
        .map(|p| {
            spawn(
                dir.path(),
                &format!("n{}", p % 3),
                &format!("k{p}"),
                1000,
                5,
            )
        })
        .collect();
    let done: Vec<Proc> = (0..2)
        .map(|p| spawn(dir.path(), &format!("n{p}"), &format!("d{p}"), 30, 0))
        .collect();
    let mut running = spawn(dir.path(), "n2", "r0", 5, 1);
    std::thread::sleep(Duration::from_millis(400));
    for (i, c) in slow.iter_mut().enumerate() {
        std::thread::sleep(Duration::from_millis(37 * i as u64));
        c.0.kill().unwrap(); // SIGKILL
        c.0.wait().unwrap();
    }
    for mut c in done {
        assert!(c.0.wait().unwrap().success());
    }
    // The running one has made its five allocations (it then sleeps until killed).
    assert!(common_wait(|| read_out(dir.path(), "r0").len() == 5));

    let ipam = Ipam::new(&s);
    assert_eq!(ipam.check(&|_| true, &nodes(3)).unwrap(), vec![]);
    let held: Vec<Ipv4Addr> = ipam
        .handles()
        .unwrap()
        .iter()
        .flat_map(|h| h.addresses.clone())
        .collect();
    let distinct: BTreeSet<Ipv4Addr> = held.iter().copied().collect();
    assert_eq!(held.len(), distinct.len(), "an address is held twice");

    // Workloads exist for the finished processes' handles; the killed ones' are leaked; the
    // running process's handles are being created (no workload yet) and must stay.
    let live: HashSet<String> = ipam
        .handles()
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .filter(|h| h.starts_with("net.d"))
        .collect();
    let killed: BTreeSet<String> = ipam
        .handles()
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .filter(|h| h.starts_with("net.k"))
        .collect();
    assert!(
        killed.len() >= 6,
        "the killed processes allocated something"
    );
    let opts = GcOptions {
        grace: Duration::ZERO,
        dry_run: false,
    };
    let report = ipam.gc(&opts, &|| Ok(live.clone())).unwrap();
    let released: BTreeSet<String> = report.released.iter().map(|e| e.handle.clone()).collect();
    assert_eq!(released, killed);
    assert_eq!(
        report.in_creation,
        (0..5).map(|i| format!("net.r0-{i}")).collect::<Vec<_>>()
    );
    let left: BTreeSet<String> = ipam.handles().unwrap().into_iter().map(|h| h.id).collect();
    assert_eq!(left.len(), 60 + 5);
    assert!(left
        .iter()
        .all(|h| live.contains(h) || h.starts_with("net.r0")));
    running.0.kill().unwrap();
    running.0.wait().unwrap();
    // Once its creator is gone, the never-finished creation is collected too.
    let report = ipam.gc(&opts, &|| Ok(live.clone())).unwrap();
    assert_eq!(report.released.len(), 5);
    assert_eq!(ipam.check(&|_| true, &nodes(3)).unwrap(), vec![]);
    assert_eq!(ipam.usage().unwrap()[0].in_use, 60);
}

fn common_wait(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
