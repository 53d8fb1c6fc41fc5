//! Helpers shared by the IPAM integration tests.
#![allow(dead_code)]

use weft_ipam::{keys, Creator, Handle, IpPool, Ipam};
use weft_store::{get_json, put_json, SqliteStore, Store};

/// A fresh SQLite store holding pool `p` of `cidr` cut in blocks of prefix `block`.
pub fn setup(cidr: &str, block: u8) -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = SqliteStore::open(dir.path().join("ipam.db")).expect("open store");
    let mut pool = IpPool::new("p", cidr.parse().unwrap());
    pool.block_size = block;
    Ipam::new(&s).ensure_pool(&pool).unwrap();
    (dir, s)
}

/// Makes the handle look created by a process that has died (as after a SIGKILL).
pub fn abandon(s: &dyn Store, id: &str) {
    let (mut h, _) = get_json::<Handle>(s, &keys::handle(id))
        .unwrap()
        .expect("handle");
    let me = h.creator.clone().expect("allocate records its creator");
    h.creator = Some(Creator {
        start: me.start + 1,
        ..me
    });
    put_json(s, &keys::handle(id), &h).unwrap();
}
