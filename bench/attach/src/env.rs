//! The bench's own world: a node network namespace with a long-lived netlink handle (like an
//! agent's), a temporary directory holding the SQLite store and the CNI data, and one container
//! namespace per measurement. Everything is named `weft-bench-<pid>-…` and removed on drop.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use weft_ipam::{IpPool, Ipam};
use weft_netlink::{Handle, Ipv4Net, Netns};
use weft_store::Store;

/// Name of the IP pool in the bench store.
pub const POOL: &str = "bench-pool";
/// Node name the weft variants allocate on.
pub const NODE: &str = "node";

/// Removes every namespace named `<prefix>-…` and the temporary directory when dropped
/// (also during a panic's unwinding).
struct Cleanup {
    prefix: String,
    tmp: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let mine = format!("{}-", self.prefix);
        match Netns::list_named() {
            Ok(names) => {
                for n in names.iter().filter(|n| n.starts_with(&mine)) {
                    if let Err(e) = Netns::delete_named(n) {
                        eprintln!(
                            "warning: could not delete netns {n}: {e}; run `ip netns delete {n}`"
                        );
                    }
                }
            }
            Err(e) => eprintln!("warning: could not list netns to clean up: {e}"),
        }
        match std::fs::remove_dir_all(&self.tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!(
                "warning: could not remove {}: {e}; remove it by hand",
                self.tmp.display()
            ),
        }
    }
}

/// Everything the variants share.
pub struct BenchEnv {
    /// `weft-bench-<pid>`.
    prefix: String,
    /// The node's namespace.
    pub node_ns: Netns,
    /// Its name under /run/netns.
    pub node_ns_name: String,
    /// A long-lived netlink handle in the node namespace.
    pub node: Handle,
    /// The store, opened once.
    pub store: Box<dyn Store>,
    /// The store's path, for the cold variant that opens it again each time.
    pub store_path: PathBuf,
    counter: u64,
    // Last: dropped after the handles above are closed.
    cleanup: Cleanup,
}

impl BenchEnv {
    /// Creates the temporary directory, the store with its pool, and the node namespace.
    pub fn new() -> Result<BenchEnv> {
        let prefix = format!("weft-bench-{}", std::process::id());
        let stale: Vec<String> = Netns::list_named()?
            .into_iter()
            .filter(|n| n.starts_with("weft-bench-"))
            .collect();
        if !stale.is_empty() {
            eprintln!(
                "note: namespaces of an earlier, killed bench exist: {} (remove with `ip netns delete NAME`)",
                stale.join(" ")
            );
        }
        let tmp = std::env::temp_dir().join(&prefix);
        let cleanup = Cleanup {
            prefix: prefix.clone(),
            tmp: tmp.clone(),
        };
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&tmp)
                .with_context(|| format!("create {}", tmp.display()))?;
        }
        let store_path = tmp.join("store.db");
        let store = weft_store::open(&store_path.to_string_lossy())
            .with_context(|| format!("open the store {}", store_path.display()))?;
        let cidr: Ipv4Net = "10.244.0.0/16".parse().context("pool CIDR")?;
        let mut pool = IpPool::new(POOL, cidr);
        pool.block_size = 26;
        Ipam::new(store.as_ref())
            .ensure_pool(&pool)
            .context("create the bench IP pool")?;

        let node_ns_name = format!("{prefix}-node");
        let node_ns = Netns::create_named(&node_ns_name)
            .with_context(|| format!("create netns {node_ns_name}"))?;
        let node = Handle::in_netns(&node_ns).context("netlink handle in the node netns")?;
        Ok(BenchEnv {
            prefix,
            node_ns,
            node_ns_name,
            node,
            store,
            store_path,
            counter: 0,
            cleanup,
        })
    }

    /// The private temporary directory (removed on drop).
    pub fn tmp_dir(&self) -> &Path {
        &self.cleanup.tmp
    }

    /// A fresh unique id `weft-bench-<pid>-<n>` for one measurement.
    pub fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{}-{}", self.prefix, self.counter)
    }

    /// Creates a container namespace named after `id` (untimed by the callers).
    pub fn container_ns(&self, id: &str) -> Result<(String, Netns)> {
        let name = format!("{id}-c");
        let ns = Netns::create_named(&name).with_context(|| format!("create netns {name}"))?;
        Ok((name, ns))
    }

    /// Deletes a container namespace made by [`BenchEnv::container_ns`].
    pub fn delete_container_ns(&self, name: &str, ns: Netns) -> Result<()> {
        drop(ns);
        Netns::delete_named(name).with_context(|| format!("delete netns {name}"))
    }
}

/// The floor's container address (the same one every time: each has its own namespace).
pub fn floor_ip() -> Ipv4Addr {
    Ipv4Addr::new(10, 250, 0, 2)
}
