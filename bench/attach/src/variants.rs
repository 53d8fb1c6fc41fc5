//! The measured variants. Each measurement makes a fresh container namespace (untimed), times
//! the attach, checks it once (untimed), and undoes everything (untimed).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use weft_dataplane::endpoint::{self, Endpoint, CONTAINER_IFACE};
use weft_ipam::Ipam;
use weft_model::{host_iface_name, ipam_handle};
use weft_netlink::{Handle, Ipv4Net, Netns, NETNS_RUN_DIR};

use crate::cni::{self, Cni};
use crate::env::{floor_ip, BenchEnv, NODE, POOL};
use crate::verify;

/// Another workload's address in the weft pool: what the container should be able to send to.
const WEFT_PEER: Ipv4Addr = Ipv4Addr::new(10, 244, 200, 1);
/// The CNI bridge's gateway address (used when the result names no gateway).
const CNI_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);

/// Which attach is measured.
pub enum VariantKind {
    /// weft as a long-lived agent does it: store and node handle opened once.
    Weft,
    /// weft as `weft run` does it: store and node handle opened inside the timed region.
    WeftCold,
    /// The CNI `bridge` plugin with `host-local` IPAM, one process run.
    Cni(Cni),
    /// veth pair with the peer made in the container + its /32 address.
    Floor,
}

/// One variant of the benchmark.
pub struct Variant {
    kind: VariantKind,
}

/// One measurement.
pub struct Done {
    /// The timed region.
    pub elapsed: Duration,
    /// What the verification saw, when asked for.
    pub check: Option<String>,
    /// Consecutive parts of the timed region (they add up to `elapsed`), for a breakdown.
    pub parts: Vec<(&'static str, Duration)>,
}

/// Splits a timed region into consecutive laps.
struct Laps {
    start: Instant,
    last: Instant,
    parts: Vec<(&'static str, Duration)>,
}

impl Laps {
    fn start() -> Laps {
        let now = Instant::now();
        Laps {
            start: now,
            last: now,
            parts: Vec::new(),
        }
    }

    /// Ends the part `name`.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.parts.push((name, now - self.last));
        self.last = now;
    }

    /// The whole region (until the last lap) and its parts.
    fn finish(self) -> (Duration, Vec<(&'static str, Duration)>) {
        (self.last - self.start, self.parts)
    }
}

impl Variant {
    pub fn new(kind: VariantKind) -> Variant {
        Variant { kind }
    }

    /// The name used in the report.
    pub fn name(&self) -> &'static str {
        match self.kind {
            VariantKind::Weft => "weft",
            VariantKind::WeftCold => "weft (cold)",
            VariantKind::Cni(_) => "cni bridge+host-local",
            VariantKind::Floor => "floor",
        }
    }

    /// Runs one measurement; with `check`, also verifies (untimed) that the container can send.
    pub fn once(&self, env: &mut BenchEnv, check: bool) -> Result<Done> {
        let id = env.next_id();
        let (ns_name, cns) = env.container_ns(&id)?;
        let res = match &self.kind {
            VariantKind::Weft => weft(env, &id, &cns, false, check),
            VariantKind::WeftCold => weft(env, &id, &cns, true, check),
            VariantKind::Cni(c) => cni_add(env, c, &id, &ns_name, &cns, check),
            VariantKind::Floor => floor(env, &id, &cns, check),
        };
        let undone = self.undo(env, &id, &ns_name);
        let deleted = env.delete_container_ns(&ns_name, cns);
        let done = res?;
        undone?;
        deleted?;
        Ok(done)
    }

    /// Removes what one measurement made in the node namespace and the store.
    fn undo(&self, env: &mut BenchEnv, id: &str, ns_name: &str) -> Result<()> {
        match &self.kind {
            VariantKind::Weft | VariantKind::WeftCold => {
                endpoint::detach(&mut env.node, &host_iface_name(id))?;
                Ipam::new(env.store.as_ref())
                    .release(&ipam_handle("bench", id))
                    .with_context(|| format!("release the address of {id}"))?;
            }
            VariantKind::Cni(c) => {
                c.run(
                    &env.node_ns,
                    "DEL",
                    id,
                    &Path::new(NETNS_RUN_DIR).join(ns_name),
                )?;
            }
            VariantKind::Floor => endpoint::detach(&mut env.node, &host_iface_name(id))?,
        }
        Ok(())
    }
}

/// Allocation + `endpoint::attach`; `cold` also opens the store, the node netns and a netlink
/// handle there inside the timed region, as `weft run` does.
fn weft(env: &mut BenchEnv, id: &str, cns: &Netns, cold: bool, check: bool) -> Result<Done> {
    let handle = ipam_handle("bench", id);
    let iface = host_iface_name(id);
    let mut t = Laps::start();
    let ip = if cold {
        let store =
            weft_store::open(&env.store_path.to_string_lossy()).context("open the store")?;
        t.lap("open store");
        let ip = Ipam::new(store.as_ref())
            .allocate(&handle, NODE, POOL, None)
            .context("allocate")?;
        t.lap("ipam allocate");
        let node_ns = Netns::named(&env.node_ns_name)?;
        let mut node = Handle::in_netns(&node_ns)?;
        t.lap("open node netns + handle");
        endpoint::attach(&mut node, &node_ns, cns, &endpoint_of(&iface, ip))?;
        t.lap("endpoint attach");
        drop(node);
        drop(store);
        t.lap("close");
        ip
    } else {
        let ip = Ipam::new(env.store.as_ref())
            .allocate(&handle, NODE, POOL, None)
            .context("allocate")?;
        t.lap("ipam allocate");
        endpoint::attach(&mut env.node, &env.node_ns, cns, &endpoint_of(&iface, ip))?;
        t.lap("endpoint attach");
        ip
    };
    let (elapsed, parts) = t.finish();
    let check = if check {
        let c = verify::container(cns, ip, Some(WEFT_PEER))?;
        let n = verify::node_route(&mut env.node, ip, &iface)?;
        Some(format!("{c}; {n}"))
    } else {
        None
    };
    Ok(Done {
        elapsed,
        check,
        parts,
    })
}

fn endpoint_of(iface: &str, ip: Ipv4Addr) -> Endpoint<'_> {
    Endpoint {
        host_iface: iface,
        ip,
        mtu: None,
    }
}

/// One run of the bridge plugin with `CNI_COMMAND=ADD`, until it exits.
fn cni_add(
    env: &mut BenchEnv,
    c: &Cni,
    id: &str,
    ns_name: &str,
    cns: &Netns,
    check: bool,
) -> Result<Done> {
    let path = Path::new(NETNS_RUN_DIR).join(ns_name);
    let t0 = Instant::now();
    let out = c.run(&env.node_ns, "ADD", id, &path)?;
    let elapsed = t0.elapsed();
    let parts = Vec::new();
    let check = if check {
        let r = cni::parse_add(&out.stdout)?;
        let peer = r.gateway.unwrap_or(CNI_GATEWAY);
        let c = verify::container(cns, r.ip, Some(peer))?;
        let n = verify::node_route(&mut env.node, r.ip, cni::BRIDGE)?;
        Some(format!("{c}; {n}"))
    } else {
        None
    };
    Ok(Done {
        elapsed,
        check,
        parts,
    })
}

/// The floor: the veth pair with its peer made directly in the container, and the /32 on it
/// through a handle opened there. Nothing else (no sysctls, no routes, not even link up).
fn floor(env: &mut BenchEnv, id: &str, cns: &Netns, check: bool) -> Result<Done> {
    let iface = host_iface_name(id);
    let ip = floor_ip();
    let mut t = Laps::start();
    let host = env.node.create_veth(&iface, CONTAINER_IFACE, Some(cns))?;
    t.lap("create veth");
    let peer = host
        .link
        .context("the kernel did not report the peer's index")?;
    let mut c = Handle::in_netns(cns)?;
    t.lap("container handle");
    c.add_address(peer, Ipv4Net::new(ip, 32).context("/32")?)?;
    t.lap("add address");
    let (elapsed, parts) = t.finish();
    let check = if check {
        Some(verify::container(cns, ip, None)?)
    } else {
        None
    };
    Ok(Done {
        elapsed,
        check,
        parts,
    })
}
