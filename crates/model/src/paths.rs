//! Where weft keeps things on a machine, and how lab objects are named.
//!
//! Everything lives under one state root (`$WEFT_ROOT`, default `/var/lib/weft`): images are shared
//! by all clusters; each lab has its own directory holding its store and its nodes' runtime state.

use std::path::PathBuf;

/// The state root: `$WEFT_ROOT` or `/var/lib/weft`.
pub fn state_root() -> PathBuf {
    std::env::var_os("WEFT_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/weft"))
}

/// Image store root (shared by every lab).
pub fn images_root() -> PathBuf {
    state_root()
}

/// Directory of all labs.
pub fn labs_dir() -> PathBuf {
    state_root().join("labs")
}

/// Directory of one lab.
pub fn lab_dir(lab: &str) -> PathBuf {
    labs_dir().join(lab)
}

/// The embedded store of a lab.
pub fn lab_store(lab: &str) -> PathBuf {
    lab_dir(lab).join("store.db")
}

/// Environment variable naming the store to open instead of the lab's own record of it:
/// `sqlite:///path`, a path, or `etcd://HOST:PORT[,...]`. The agents of a lab on etcd get it
/// (their etcd URL names no netns: they reach etcd over the lab's underlay).
pub const STORE_ENV: &str = "WEFT_STORE";

/// The file in which a lab whose store is not its SQLite file records the store's URL, as
/// seen from the machine's own network namespace (e.g.
/// `etcd://198.51.100.2:2379?netns=weft-<lab>-etcd`).
pub fn lab_store_url_file(lab: &str) -> PathBuf {
    lab_dir(lab).join("store.url")
}

/// Where the store of lab `lab` is, for `weft_store::open`: `$WEFT_STORE` when set, else the
/// URL the lab recorded (see [`lab_store_url_file`]), else its SQLite file. `None` when none
/// of these exists (the lab is not up).
pub fn lab_store_location(lab: &str) -> Option<String> {
    if let Some(s) = std::env::var(STORE_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
    {
        return Some(s);
    }
    if let Ok(url) = std::fs::read_to_string(lab_store_url_file(lab)) {
        if !url.trim().is_empty() {
            return Some(url.trim().to_string());
        }
    }
    let db = lab_store(lab);
    db.exists().then(|| db.to_string_lossy().into_owned())
}

/// Per-node directory of a lab node (agent log, runtime state, bundles).
pub fn node_dir(lab: &str, node: &str) -> PathBuf {
    lab_dir(lab).join("nodes").join(node)
}

/// Runtime state root of a node (one directory per container).
pub fn runtime_root(lab: &str, node: &str) -> PathBuf {
    node_dir(lab, node).join("containers")
}

/// Bundles of a node's containers.
pub fn bundles_dir(lab: &str, node: &str) -> PathBuf {
    node_dir(lab, node).join("bundles")
}

/// Name of the network namespace of a lab member (`fabric`, `gw`, `ext` or a node name).
pub fn lab_netns(lab: &str, member: &str) -> String {
    format!("weft-{lab}-{member}")
}

/// Prefix of every network namespace of a lab.
pub fn lab_netns_prefix(lab: &str) -> String {
    format!("weft-{lab}-")
}
