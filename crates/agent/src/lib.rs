//! The node daemon: watches the store and keeps the node's kernel in line with it.
//!
//! On start and on every change under `/weft/` it re-reads the cluster state at one revision,
//! plans the node's routes and applies the difference. It also resyncs periodically so that a
//! route removed by hand comes back (slowly enough that an experiment can observe the breakage).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{info, warn};
use weft_dataplane::{apply, owned_routes, plan, ClusterState, PlanInput};
use weft_model::{keys, ClusterConfig};
use weft_netlink::Handle;
use weft_store::Store;

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub node: String,
    /// Full resync period even without store changes.
    pub resync: Duration,
}

/// Runs until killed. The calling thread must already be in the node's network namespace.
pub fn run(store: &dyn Store, opts: &AgentOptions) -> Result<()> {
    let mut h = Handle::new().context("netlink socket in the node's namespace")?;
    info!(node = %opts.node, "agent started");
    let mut from = reconcile(store, &mut h, &opts.node)?;
    let mut last = Instant::now();
    let mut watch = store.watch("/weft/", from)?;
    loop {
        let events = match watch.next(Duration::from_millis(500)) {
            Ok(ev) => ev,
            Err(e) => {
                warn!("watch failed ({e}); re-reading everything");
                std::thread::sleep(Duration::from_millis(200));
                from = reconcile(store, &mut h, &opts.node)?;
                watch = store.watch("/weft/", from)?;
                continue;
            }
        };
        if events.is_empty() && last.elapsed() < opts.resync {
            continue;
        }
        match reconcile(store, &mut h, &opts.node) {
            Ok(rev) => from = rev.max(from),
            Err(e) => warn!("reconcile failed: {e:#}"),
        }
        last = Instant::now();
    }
}

/// One pass: read, plan, apply. Returns the revision it planned from.
pub fn reconcile(store: &dyn Store, h: &mut Handle, node: &str) -> Result<i64> {
    // Order matters: routes, then the store, then links (see `owned_routes`).
    let current = owned_routes(h)?;
    let state = ClusterState::load(store)?;
    let cfg: ClusterConfig = weft_store::get_json(store, keys::CONFIG)?
        .map(|(c, _)| c)
        .unwrap_or_default();
    let links = h.links().context("list links")?;
    let ifindex = |name: &str| links.iter().find(|l| l.name == name).map(|l| l.index);
    let p = plan(&PlanInput {
        node,
        state: &state,
        encap: cfg.encap,
        ifindex: &ifindex,
    });
    for w in &p.warnings {
        warn!("{w}");
    }
    let applied = apply(h, &current, &p)?;
    for r in &applied.added {
        info!(route = %r.dst, "route added");
    }
    for r in &applied.removed {
        info!(route = %r.dst, "route removed");
    }
    Ok(state.revision)
}
