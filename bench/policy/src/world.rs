//! The bench's world: a node namespace (with an underlay `eth0` into a fabric namespace, as a
//! lab node has), two real workloads `c1` (client) and `c2` (server) attached by weft, and one
//! SQLite store per scale holding the cluster: 50 nodes, their IPAM blocks, the endpoints (all
//! but the two real ones are store entries only) and the policies. Everything is named
//! `weft-bpol-<pid>-…` and removed on drop, also while a panic unwinds or on Ctrl-C
//! (`weft_bench_common::node`).

use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use weft_bench_common::node::Real;
use weft_engine::Cluster;
use weft_ipam::{IpPool, Ipam};
use weft_model::{keys, ClusterConfig, Network, Node, Workload};

use crate::shape::Shape;

/// The node the bench programs (the agent's node).
pub const NODE: &str = "node-0";
/// The network every endpoint is on.
pub const NETWORK: &str = "bench";
const POOL: &str = "default-pool";

/// The bench's node namespace with the real workloads `c1` (client) and `c2` (server).
pub struct World {
    pub node: weft_bench_common::node::Node,
}

fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10 + i as u8)
}

impl World {
    /// Namespaces and veths; the real workloads get the first two addresses of the node's
    /// first block, as every store made by [`World::populate`] gives them.
    pub fn new() -> Result<World> {
        let mut node =
            weft_bench_common::node::Node::new(&format!("weft-bpol-{}", std::process::id()))?;
        for (i, name) in ["c1", "c2"].into_iter().enumerate() {
            node.add_real(name, Ipv4Addr::new(10, 244, 0, 1 + i as u8))?;
        }
        Ok(World { node })
    }

    /// A world of its own beside this one (`<prefix>-<tag>-…`), with its own `c1` and `c2` at
    /// the same addresses, for a variant that must not share the node's namespace.
    pub fn sibling(&self, tag: &str) -> Result<World> {
        let mut node = self.node.sibling(tag)?;
        for r in &self.node.reals {
            node.add_real(&r.name, r.ip)?;
        }
        Ok(World { node })
    }

    /// `text` (rules that name this world's workload interfaces) for `other`'s interfaces.
    pub fn rename_ifaces(&self, text: &str, other: &World) -> String {
        let mut out = text.to_string();
        for (mine, theirs) in self.node.reals.iter().zip(&other.node.reals) {
            out = out.replace(&mine.iface, &theirs.iface);
        }
        out
    }

    pub fn c1(&self) -> &Real {
        self.node.real("c1")
    }

    pub fn c2(&self) -> &Real {
        self.node.real("c2")
    }

    /// A new store at `name` holding the cluster of `shape`: config, pool, nodes, network, the
    /// two real workloads and `shape.endpoints - 2` more (store entries), then the policies,
    /// applied the way `weft apply -f` does. Returns the store and how long the apply took.
    pub fn populate(&self, name: &str, shape: &Shape) -> Result<(Cluster, std::time::Duration)> {
        let path = self.node.tmp.join(format!("{name}.db"));
        let store = weft_store::open(&path.to_string_lossy())?;
        let cfg = ClusterConfig::default();
        weft_store::put_json(store.as_ref(), keys::CONFIG, &cfg)?;
        let mut pool = IpPool::new(POOL, "10.244.0.0/16".parse()?);
        pool.block_size = 26;
        Ipam::new(store.as_ref()).ensure_pool(&pool)?;
        for i in 0..shape.nodes {
            let n = Node::new(&format!("node-{i}"), node_addr(i));
            weft_store::put_json(store.as_ref(), &keys::node(&n.name), &n)?;
        }
        let net = Network::new(NETWORK, POOL);
        weft_store::put_json(store.as_ref(), &keys::network(NETWORK), &net)?;
        let ipam = Ipam::new(store.as_ref());
        let add = |name: String, node: String, iface: String, labels, want: Option<Ipv4Addr>| {
            let id = format!("{:064x}", weft_model::now() as u128 ^ hash(&name));
            let handle = weft_model::ipam_handle(NETWORK, &id);
            let ip = ipam.allocate(&handle, &node, POOL, want)?;
            if let Some(w) = want {
                if ip != w {
                    bail!("{name} got {ip}, the bench wired {w}");
                }
            }
            let w = Workload {
                name: name.clone(),
                id,
                node,
                network: NETWORK.into(),
                ip: Some(ip),
                host_iface: iface,
                labels,
                image: "toolbox".into(),
                command: vec![],
                net_of: None,
                created: 0,
            };
            weft_store::put_json(store.as_ref(), &keys::workload(&name), &w)
                .map_err(anyhow::Error::from)
        };
        for real in [self.c1(), self.c2()] {
            add(
                real.name.to_string(),
                NODE.into(),
                real.iface.clone(),
                shape.real_labels(&real.name),
                Some(real.ip),
            )?;
        }
        for i in 0..shape.endpoints.saturating_sub(2) {
            let node = shape.node_of(i);
            let iface = if node == 0 {
                // Local endpoints that do not run: their chains are programmed all the same.
                weft_model::host_iface_name(&format!("synthetic-{i}"))
            } else {
                String::new()
            };
            add(
                format!("ep-{i}"),
                format!("node-{node}"),
                iface,
                shape.labels(i),
                None,
            )?;
        }
        let c = Cluster {
            lab: name.into(),
            store,
        };
        let yaml = shape.policies_yaml();
        let t = std::time::Instant::now();
        weft_engine::resources::apply(&c, &yaml).context("apply the policies")?;
        Ok((c, t.elapsed()))
    }
}

fn hash(s: &str) -> u128 {
    // FNV-1a, only to make distinct ids.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in s.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000000001000000000000000000013b);
    }
    h
}
