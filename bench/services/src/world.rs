//! The bench's world: a node namespace (from `weft_bench_common::node`) holding three real
//! workloads, the client `c1` and the endpoints `e1`, `e2` of the service under test (each
//! answering on [`TARGET_PORT`]); and one SQLite store per scale holding the cluster: two
//! nodes, the network, the three real workloads, `services - 1` more services with two
//! endpoints each (workload records on the other node, with addresses chosen by the bench in
//! 10.248.0.0/14, outside the pool: no IPAM), and the service under test, selecting `e1` and
//! `e2`, last in key order.
//!
//! Every namespace is named `weft-bsvc-<pid>-…` and removed on drop, on panic and on Ctrl-C.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sched::{setns, CloneFlags};
use weft_bench_common::node::{Node as BenchNode, Real, NODE_ADDR};
use weft_ipam::{IpPool, Ipam};
use weft_model::policy::{ObjectMeta, Protocol, Resource, Service, ServicePort, ServiceSpec};
use weft_model::{keys, ClusterConfig, Network, Node, Workload};
use weft_store::{Op, Store};

/// The node the bench programs (the agent's node).
pub const NODE: &str = "node-0";
/// The node every synthetic endpoint is on.
const OTHER: &str = "node-1";
pub const NETWORK: &str = "bench";
const POOL: &str = "default-pool";
/// Every service's port, and the port its endpoints answer on.
pub const PORT: u16 = 80;
pub const TARGET_PORT: u16 = 8080;
/// Store writes per transaction while populating.
const CHUNK: usize = 5000;

/// The ClusterIP of service `i` (in 10.96.0.0/12, from 10.96.1.0).
pub fn cluster_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 1, 0)) + i as u32)
}

/// The address of synthetic endpoint `j` (0 or 1) of service `i`: 10.248.0.0/14, which
/// neither the pool (10.244.0.0/16) nor the service range holds.
pub fn synthetic_ip(i: usize, j: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 248, 0, 0)) + 2 * i as u32 + j as u32)
}

/// The address of the extra endpoint the update measurements add and remove.
pub const EXTRA_IP: Ipv4Addr = Ipv4Addr::new(10, 252, 0, 1);

pub fn service_name(i: usize) -> String {
    format!("svc-{i:05}")
}

/// What service `i` selects.
pub fn selector(i: usize) -> BTreeMap<String, String> {
    [("app".to_string(), service_name(i))].into()
}

/// Service `i`: ClusterIP [`cluster_ip`]`(i)`, TCP [`PORT`] to [`TARGET_PORT`], selecting
/// `app: svc-<i>`.
pub fn service(i: usize) -> Service {
    Service {
        metadata: ObjectMeta {
            name: service_name(i),
            namespace: "default".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        },
        spec: ServiceSpec {
            service_type: Default::default(),
            selector: selector(i),
            cluster_ip: Some(cluster_ip(i).to_string()),
            ports: vec![ServicePort {
                name: None,
                protocol: Some(Protocol::TCP),
                port: i64::from(PORT),
                target_port: Some(serde_yaml_ng::Value::Number(TARGET_PORT.into())),
                node_port: None,
            }],
            session_affinity: None,
            session_affinity_config: None,
        },
    }
}

/// A workload record (never started: only its labels and address matter).
pub fn workload(name: &str, node: &str, iface: &str, ip: Ipv4Addr, app: &str) -> Workload {
    Workload {
        name: name.to_string(),
        id: format!(
            "{:0>64}",
            name.replace(|c: char| !c.is_ascii_hexdigit(), "")
        ),
        node: node.to_string(),
        network: NETWORK.into(),
        ip: Some(ip),
        host_iface: iface.to_string(),
        labels: [("app".to_string(), app.to_string())].into(),
        image: "toolbox".into(),
        command: vec![],
        net_of: None,
        created: 0,
    }
}

/// The extra endpoint record of service `i` (updates add and remove it).
pub fn extra_endpoint(i: usize) -> (String, Vec<u8>) {
    let w = workload("ep-extra", OTHER, "", EXTRA_IP, &service_name(i));
    (
        keys::workload(&w.name),
        serde_json::to_vec(&w).expect("a workload encodes"),
    )
}

/// The bench's namespaces and real workloads.
pub struct World {
    pub node: BenchNode,
}

impl World {
    /// Namespaces, veths, and a server in each endpoint that answers every connection with
    /// one byte (`1` from e1, `2` from e2) and closes.
    pub fn new() -> Result<World> {
        let mut node = BenchNode::new(&format!("weft-bsvc-{}", std::process::id()))?;
        for (i, name) in ["c1", "e1", "e2"].into_iter().enumerate() {
            node.add_real(name, Ipv4Addr::new(10, 244, 0, 1 + i as u8))?;
        }
        let w = World { node };
        for (name, byte) in [("e1", b'1'), ("e2", b'2')] {
            serve(w.node.real(name), byte)?;
        }
        Ok(w)
    }

    pub fn client(&self) -> &Real {
        self.node.real("c1")
    }

    /// A new store holding `services` services (see the module's doc). Returns it and how
    /// long writing the services and their endpoints took.
    pub fn populate(&self, services: usize) -> Result<(Box<dyn Store>, Duration)> {
        let path = self.node.tmp.join(format!("s{services}.db"));
        let store = weft_store::open(&path.to_string_lossy())?;
        let s = store.as_ref();
        weft_store::put_json(s, keys::CONFIG, &ClusterConfig::default())?;
        let mut pool = IpPool::new(POOL, "10.244.0.0/16".parse()?);
        pool.block_size = 26;
        Ipam::new(s).ensure_pool(&pool)?;
        for (i, name) in [NODE, OTHER].into_iter().enumerate() {
            let addr = Ipv4Addr::from(u32::from(NODE_ADDR) + i as u32);
            weft_store::put_json(s, &keys::node(name), &Node::new(name, addr))?;
        }
        weft_store::put_json(s, &keys::network(NETWORK), &Network::new(NETWORK, POOL))?;
        let test = services - 1;
        let mut ops = vec![];
        for r in &self.node.reals {
            let app = if r.name == "c1" {
                "client".to_string()
            } else {
                service_name(test)
            };
            let w = workload(&r.name, NODE, &r.iface, r.ip, &app);
            ops.push(Op::Put(keys::workload(&w.name), serde_json::to_vec(&w)?));
        }
        for i in 0..test {
            for j in 0..2 {
                let w = workload(
                    &format!("ep-{i:05}-{j}"),
                    OTHER,
                    "",
                    synthetic_ip(i, j),
                    &service_name(i),
                );
                ops.push(Op::Put(keys::workload(&w.name), serde_json::to_vec(&w)?));
            }
        }
        for i in 0..services {
            let key = keys::service("default", &service_name(i));
            ops.push(Op::Put(
                key,
                serde_json::to_vec(&Resource::Service(service(i)))?,
            ));
        }
        let t = Instant::now();
        for chunk in ops.chunks(CHUNK) {
            s.txn(&[], chunk).context("write services and endpoints")?;
        }
        Ok((store, t.elapsed()))
    }
}

/// Accepts forever in `real`'s namespace on [`TARGET_PORT`]: one byte, then close.
fn serve(real: &Real, byte: u8) -> Result<()> {
    let ns = real.ns.try_clone()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let l = setns(ns.fd(), CloneFlags::CLONE_NEWNET)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                TcpListener::bind((Ipv4Addr::UNSPECIFIED, TARGET_PORT)).map_err(anyhow::Error::from)
            });
        match l {
            Ok(l) => {
                let _ = tx.send(Ok(()));
                for mut s in l.incoming().flatten() {
                    let _ = s.write_all(&[byte]);
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
    });
    rx.recv().context("server thread")?
}
