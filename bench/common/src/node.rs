//! A bench's node: a network namespace with an underlay `eth0` into a fabric namespace and a
//! default route (as a lab node has), and real workloads wired into it by weft's endpoint
//! code. Every namespace is named `<prefix>-…`; all of them and the temporary directory are
//! removed when the [`Node`] is dropped (also while a panic unwinds) and when the process gets
//! SIGINT, SIGTERM or SIGHUP (see [`Node::new`]). The root namespace is never touched.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};
use weft_dataplane::endpoint::{self, Endpoint};
use weft_netlink::{Handle, Ipv4Net, Netns, Route, VethSpec};

/// The node's underlay address (its `eth0`), on 192.0.2.0/24 (TEST-NET-1).
pub const NODE_ADDR: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The node's default gateway on the underlay (nothing answers there).
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Deletes every namespace named `<prefix>-…` and the temporary directory.
fn clean(prefix: &str, tmp: &std::path::Path) {
    let mine = format!("{prefix}-");
    if let Ok(names) = Netns::list_named() {
        for n in names.iter().filter(|n| n.starts_with(&mine)) {
            if let Err(e) = Netns::delete_named(n) {
                eprintln!("warning: could not delete netns {n}: {e}; run `ip netns delete {n}`");
            }
        }
    }
    let _ = std::fs::remove_dir_all(tmp);
}

/// Removes the bench's namespaces and temporary directory when dropped.
struct Cleanup {
    prefix: String,
    tmp: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        clean(&self.prefix, &self.tmp);
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and so in every thread it starts later)
/// and starts a thread that waits for one, cleans up and exits with 128 + the signal.
/// Child processes start with an empty signal mask (the standard library resets it).
fn clean_on_signal(prefix: String, tmp: PathBuf) -> Result<()> {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().context("block SIGINT/SIGTERM/SIGHUP")?;
    std::thread::Builder::new()
        .name("bench-signals".into())
        .spawn(move || {
            if let Ok(sig) = set.wait() {
                eprintln!("\n{sig}: cleaning up {prefix}-* …");
                clean(&prefix, &tmp);
                std::process::exit(128 + sig as i32);
            }
        })
        .context("start the signal thread")?;
    Ok(())
}

/// A real workload: its namespace, its host interface on the node, its address.
pub struct Real {
    pub name: String,
    pub ns: Netns,
    pub iface: String,
    pub ip: Ipv4Addr,
}

/// The bench's node namespace and its real workloads.
pub struct Node {
    pub ns: Netns,
    /// The node namespace's name (for `ip netns exec`).
    pub ns_name: String,
    pub prefix: String,
    pub tmp: PathBuf,
    pub reals: Vec<Real>,
    _cleanup: Cleanup,
}

impl Node {
    /// Creates `<prefix>-node` and `<prefix>-fabric`, and a temporary directory named after
    /// `prefix`. Call it before starting any thread: it installs the signal handling that
    /// cleans up on Ctrl-C.
    pub fn new(prefix: &str) -> Result<Node> {
        let tmp = std::env::temp_dir().join(prefix);
        clean_on_signal(prefix.to_string(), tmp.clone())?;
        let cleanup = Cleanup {
            prefix: prefix.to_string(),
            tmp: tmp.clone(),
        };
        std::fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        Node::wire(prefix, tmp, cleanup)
    }

    /// The node's namespaces: `<prefix>-node` with `eth0` into `<prefix>-fabric` and a
    /// default route.
    fn wire(prefix: &str, tmp: PathBuf, cleanup: Cleanup) -> Result<Node> {
        let ns_name = format!("{prefix}-node");
        let ns = Netns::create_named(&ns_name)?;
        let fabric = Netns::create_named(&format!("{prefix}-fabric"))?;
        let mut h = Handle::in_netns(&ns)?;
        // The underlay: routes to other nodes' blocks go out of it, onlink.
        h.create_veth_with(&VethSpec::new("eth0", "uplink").up().peer_ns(&fabric))?;
        let eth0 = h.link_by_name("eth0")?.context("eth0 in the node netns")?;
        h.add_address(eth0.index, Ipv4Net::new(NODE_ADDR, 24)?)?;
        let lo = h.link_by_name("lo")?.context("lo")?;
        h.set_up(lo.index)?;
        let mut f = Handle::in_netns(&fabric)?;
        let uplink = f
            .link_by_name("uplink")?
            .context("uplink in the fabric netns")?;
        f.set_up(uplink.index)?;
        // A default route, as every real node has: proxy ARP answers for 169.254.1.1 only
        // when the node can route it.
        h.add_route(&Route::default_via(GATEWAY).dev(eth0.index).onlink())?;
        Ok(Node {
            ns,
            ns_name,
            prefix: prefix.to_string(),
            tmp,
            reals: vec![],
            _cleanup: cleanup,
        })
    }

    /// Another node `<prefix>-<tag>-node` with its own fabric, for a variant that must not
    /// share this node's namespace (iptables-legacy's tables, once made, stay registered on
    /// the namespace's hooks until it is deleted). Its namespaces are removed when it is
    /// dropped, and by this node's signal handling (their names start with this prefix).
    pub fn sibling(&self, tag: &str) -> Result<Node> {
        let prefix = format!("{}-{tag}", self.prefix);
        let tmp = self.tmp.join(tag);
        let cleanup = Cleanup {
            prefix: prefix.clone(),
            tmp: tmp.clone(),
        };
        std::fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        Node::wire(&prefix, tmp, cleanup)
    }

    /// A real workload `name` with address `ip`: its namespace `<prefix>-<name>` wired to the
    /// node by weft's endpoint code (veth `cali…`, `/32`, routes both ways).
    pub fn add_real(&mut self, name: &str, ip: Ipv4Addr) -> Result<&Real> {
        let full = format!("{}-{name}", self.prefix);
        let ns = Netns::create_named(&full)?;
        let iface = weft_model::host_iface_name(&full);
        let mut h = Handle::in_netns(&self.ns)?;
        endpoint::attach(
            &mut h,
            &self.ns,
            &ns,
            &Endpoint {
                host_iface: &iface,
                ip,
                mtu: None,
            },
        )
        .with_context(|| format!("wire {name} ({ip}) to the node"))?;
        self.reals.push(Real {
            name: name.to_string(),
            ns,
            iface,
            ip,
        });
        Ok(self.reals.last().expect("just pushed"))
    }

    /// The real workload `name`.
    pub fn real(&self, name: &str) -> &Real {
        self.reals
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no real workload {name}"))
    }
}
