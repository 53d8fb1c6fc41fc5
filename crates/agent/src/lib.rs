//! The node daemon: watches the store and keeps the node's kernel in line with it.
//!
//! On start and on every change under `/weft/` it re-reads the cluster state at one revision,
//! plans the node's routes and applies the difference. It also resyncs periodically so that a
//! route removed by hand comes back (slowly enough that an experiment can observe the breakage).

pub mod config;
pub mod supervise;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tracing::{info, warn};
use weft_dataplane::{
    apply, owned_routes, plan, rules, vxlan, ClusterState, PlanInput, StateCache,
};
use weft_ipam::Ipam;
use weft_model::{keys, AgentStatus, ClusterConfig, Node, VXLAN_DEVICE};
use weft_netlink::Handle;
use weft_nft::{Backend, NetlinkBackend};
use weft_store::{Store, Watch};

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub node: String,
    /// Full resync period even without store changes.
    pub resync: Duration,
}

/// Runs until killed. The calling thread must already be in the node's network namespace.
///
/// The cluster state is read once, then kept current from the watch's events (only changed
/// records are decoded); the periodic resync reads it whole again.
pub fn run(shared: Arc<dyn Store>, opts: &AgentOptions) -> Result<()> {
    let store: &dyn Store = shared.as_ref();
    let h = Handle::new().context("netlink socket in the node's namespace")?;
    let nft = Nft::new(NetlinkBackend::new().context("nf_tables socket in the node's namespace")?);
    info!(node = %opts.node, "agent started");
    let (cache, watch) = fresh(store)?;
    let mut live = Live {
        store,
        node: &opts.node,
        h,
        nft,
        cache,
        watch,
    };
    live.pass()?;
    let mut last = Instant::now();
    loop {
        let events = match live.watch.next(Duration::from_millis(500)) {
            Ok(ev) => ev,
            Err(e) => {
                warn!("watch failed ({e}); re-reading everything");
                std::thread::sleep(Duration::from_millis(200));
                live.reread();
                if let Err(e) = live.pass() {
                    warn!("reconcile failed: {e:#}");
                }
                continue;
            }
        };
        if events.is_empty() && last.elapsed() < opts.resync {
            continue;
        }
        if events.is_empty() {
            // A periodic resync reads the store whole and rewrites the table whole, undoing
            // any change made by hand.
            live.nft.forget();
            live.reread();
        } else if let Err(e) = live.cache.apply(&events) {
            warn!("{e:#}; re-reading everything");
            live.reread();
        }
        if let Err(e) = live.pass() {
            warn!("reconcile failed: {e:#}");
            // The cache may have stopped part way through the events: start again from a read.
            live.reread();
        }
        last = Instant::now();
    }
}

/// A running agent's handles and its watch-fed view of the cluster.
struct Live<'a> {
    store: &'a dyn Store,
    node: &'a str,
    h: Handle,
    nft: Nft,
    cache: StateCache,
    watch: Box<dyn Watch>,
}

impl Live<'_> {
    /// One pass from the cache.
    fn pass(&mut self) -> Result<i64> {
        reconcile_cached(
            self.store,
            &mut self.h,
            &mut self.nft,
            self.node,
            &mut self.cache,
            self.watch.as_mut(),
        )
    }

    /// Reads the whole state again, with a new watch after it. While the store cannot be read
    /// (etcd down, say) it keeps trying, and the kernel keeps what was last programmed: traffic
    /// and policy go on as they were.
    fn reread(&mut self) {
        let mut wait = Duration::from_millis(200);
        loop {
            match fresh(self.store) {
                Ok((cache, watch)) => {
                    (self.cache, self.watch) = (cache, watch);
                    return;
                }
                Err(e) => {
                    warn!("read the store: {e:#}; trying again in {wait:?}");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// The whole state, and a watch of the changes after it.
fn fresh(store: &dyn Store) -> Result<(StateCache, Box<dyn Watch>)> {
    let cache = StateCache::load(store)?;
    let watch = store.watch("/weft/", cache.revision())?;
    Ok((cache, watch))
}

/// The node's nftables table: what was last programmed, so that a change sends only the
/// difference (one transaction either way).
pub struct Nft {
    backend: NetlinkBackend,
    /// The whole table as last programmed by a full pass from a read of the store (the next
    /// such pass sends only the difference from it).
    last: Option<weft_nft::Table>,
    /// The table as programmed, in parts: a pass from the watch's changes redoes only the
    /// parts they touch (see [`rules::Programmed`]).
    programmed: Option<rules::Programmed>,
    /// The next pass replaces the table whole.
    forced: bool,
    /// The namespace the table is in, when not the calling thread's (conntrack goes there too).
    netns: Option<weft_netlink::Netns>,
}

impl Nft {
    /// A table programmer over `backend` that has programmed nothing yet; conntrack entries
    /// are cleaned in the calling thread's namespace (an agent's thread lives in its node's).
    pub fn new(backend: NetlinkBackend) -> Nft {
        Nft {
            backend,
            last: None,
            programmed: None,
            forced: false,
            netns: None,
        }
    }

    /// A table programmer for the namespace `ns`, whichever thread calls it.
    pub fn in_netns(ns: &weft_netlink::Netns) -> Result<Nft> {
        Ok(Nft {
            netns: Some(ns.try_clone()?),
            ..Nft::new(NetlinkBackend::in_netns(ns).context("nf_tables socket in the namespace")?)
        })
    }

    /// Forgets what was programmed: the next pass replaces the table whole.
    pub fn forget(&mut self) {
        self.last = None;
        self.forced = true;
    }

    /// Programs the rules of `input`: only what `changes` touch when they are known (a pass
    /// from the watch) and a previous pass left its parts, else the whole table.
    fn program_rules(
        &mut self,
        input: &rules::RulesInput,
        changes: Option<&weft_dataplane::Changes>,
    ) -> Result<()> {
        if let (Some(changes), Some(prog), false) = (changes, &mut self.programmed, self.forced) {
            if let Some(mut step) = prog.step(input, changes) {
                match self.backend.update_part(&step.old, &step.new) {
                    Ok(()) => {
                        let stale = std::mem::take(&mut step.stale_udp);
                        prog.commit(step);
                        self.delete_stale_udp(stale);
                        return Ok(());
                    }
                    Err(e) => warn!(
                        "update of the changed parts failed ({e}); programming the whole table"
                    ),
                }
            }
        }
        let before = self.programmed.take().map(|p| p.udp_backends());
        let (prog, table) = rules::Programmed::full(input);
        self.program(table)?;
        if changes.is_some() {
            // A pass from the watch keeps the table in parts only.
            self.last = None;
        }
        self.forced = false;
        if let Some(before) = before {
            self.delete_stale_udp(before.stale(&prog.udp_backends()));
        }
        self.programmed = Some(prog);
        Ok(())
    }

    /// After the table is programmed: deletes the UDP conntrack entries still pointing at
    /// endpoints that went away, as kube-proxy does (a failure is only reported).
    fn delete_stale_udp(&mut self, filters: Vec<weft_nft::conntrack::Filter>) {
        if filters.is_empty() {
            return;
        }
        let ct = match &self.netns {
            Some(ns) => weft_nft::conntrack::Conntrack::in_netns(ns),
            None => weft_nft::conntrack::Conntrack::new(),
        };
        match ct.and_then(|mut ct| ct.delete_matching(&filters)) {
            Ok(n) => info!(entries = n, "stale UDP conntrack entries deleted"),
            Err(e) => warn!("delete stale UDP conntrack entries: {e}"),
        }
    }

    fn program(&mut self, table: weft_nft::Table) -> Result<()> {
        if self.last.as_ref() == Some(&table) {
            return Ok(());
        }
        let res = match &self.last {
            Some(old) => self.backend.update(old, &table),
            None => self.backend.apply(&table),
        };
        match res {
            Ok(()) => {
                self.last = Some(table);
                Ok(())
            }
            Err(e) => {
                self.last = None;
                self.programmed = None;
                Err(e.into())
            }
        }
    }
}

/// Where a pass takes the cluster state from.
enum Source<'a> {
    /// A read of the whole store.
    Store,
    /// A cache kept current from `watch`, caught up after the routes are read.
    Cache {
        cache: &'a mut StateCache,
        watch: &'a mut dyn Watch,
    },
}

/// One pass: read the whole store, plan, apply, report. Returns the revision it planned from.
pub fn reconcile(store: &dyn Store, h: &mut Handle, nft: &mut Nft, node: &str) -> Result<i64> {
    report(
        store,
        node,
        reconcile_once(store, h, nft, node, Source::Store),
    )
}

/// One pass from `cache`, which `watch` (started at the cache's revision) keeps current: what
/// the running agent does on every change. Returns the revision it planned from.
pub fn reconcile_cached(
    store: &dyn Store,
    h: &mut Handle,
    nft: &mut Nft,
    node: &str,
    cache: &mut StateCache,
    watch: &mut dyn Watch,
) -> Result<i64> {
    let res = reconcile_once(store, h, nft, node, Source::Cache { cache, watch });
    if res.is_err() {
        // The changes taken from the cache may not all be programmed: start afresh.
        nft.forget();
    }
    report(store, node, res)
}

/// Writes the agent's status after a pass.
fn report(store: &dyn Store, node: &str, res: Result<i64>) -> Result<i64> {
    let status = AgentStatus {
        node: node.to_string(),
        revision: *res.as_ref().unwrap_or(&0),
        time: weft_model::now(),
        pid: std::process::id(),
        error: res.as_ref().err().map(|e| format!("{e:#}")),
    };
    if let Err(e) = weft_store::put_json(store, &keys::agent_status(node), &status) {
        warn!("report status: {e}");
    }
    res
}

fn reconcile_once(
    store: &dyn Store,
    h: &mut Handle,
    nft: &mut Nft,
    node: &str,
    source: Source,
) -> Result<i64> {
    let cfg: ClusterConfig = weft_store::get_json(store, keys::CONFIG)?
        .map(|(c, _)| c)
        .unwrap_or_default();
    // The VXLAN device exists when any pool may encapsulate (its own vxlanMode, or the
    // cluster's default).
    let pools = Ipam::new(store).pools()?;
    if vxlan::device_needed(&pools, cfg.encap) {
        ensure_vxlan(store, h, node, &vxlan::tunnel_pool(&pools, cfg.encap))?;
    }
    // IPIP mode: tunl0 and its tunnel address (fails clearly on a kernel without ipip).
    if vxlan::tunnel_needed(&pools, cfg.encap, weft_model::Tunnel::Ipip) {
        let pool = vxlan::tunnel_pool_for(&pools, cfg.encap, weft_model::Tunnel::Ipip);
        weft_dataplane::ipip::ensure(store, h, node, &pool)?;
    }
    // Order matters: routes, then the store, then links (see `owned_routes`).
    let current = owned_routes(h)?;
    let loaded;
    let changes;
    let state: &ClusterState = match source {
        Source::Store => {
            loaded = ClusterState::load(store)?;
            changes = None;
            &loaded
        }
        Source::Cache { cache, watch } => {
            loop {
                let events = watch.next(Duration::ZERO)?;
                if events.is_empty() {
                    break;
                }
                cache.apply(&events)?;
            }
            changes = Some(cache.take_changes());
            cache.state()
        }
    };
    let links = h.links().context("list links")?;
    let ifindex = |name: &str| links.iter().find(|l| l.name == name).map(|l| l.index);
    let p = plan(&PlanInput {
        node,
        state,
        encap: cfg.encap,
        ifindex: &ifindex,
    });
    for w in &p.warnings {
        warn!("{w}");
    }
    if let Some(dev) = ifindex(VXLAN_DEVICE) {
        let (peers, warnings) = vxlan::peers(node, &state.nodes);
        for w in &warnings {
            warn!("{w}");
        }
        vxlan::apply_peers(h, dev, &peers)?;
    }
    for w in &state.warnings {
        warn!("{w}");
    }
    let input = rules::RulesInput::from_state(node, state);
    nft.program_rules(&input, changes.as_ref())
        .context("program table inet weft")?;
    let applied = apply(h, &current, &p)?;
    for r in &applied.added {
        info!(route = %r.dst, "route added");
    }
    for r in &applied.removed {
        info!(route = %r.dst, "route removed");
    }
    Ok(state.revision)
}

/// VXLAN mode: the node's tunnel address (the first address of its first block, held by the
/// handle `vxlan-tunnel-addr-<node>`, taken from `pool`), its device MAC in the node record, and
/// the device itself.
fn ensure_vxlan(store: &dyn Store, h: &mut Handle, node: &str, pool: &str) -> Result<()> {
    let key = keys::node(node);
    let (me, _) = weft_store::get_json::<Node>(store, &key)?
        .with_context(|| format!("node {node} is not in the store"))?;
    let me = if me.tunnel_address.is_some() && me.vxlan_mac.is_some() {
        me
    } else {
        let ipam = Ipam::new(store);
        let handle = weft_model::tunnel_handle(node);
        let tunnel = match ipam
            .handle(&handle)?
            .and_then(|h| h.addresses.first().copied())
        {
            Some(ip) => ip,
            None => ipam
                .allocate(&handle, node, pool, None)
                .context("allocate the node's tunnel address")?,
        };
        let mac = weft_netlink::format_mac(&weft_model::vxlan_mac_for(node));
        info!(%tunnel, %mac, "VXLAN tunnel address");
        weft_store::update_json::<Node, _>(store, &key, |n| {
            Ok(n.map(|mut n| {
                n.tunnel_address = Some(tunnel);
                n.vxlan_mac = Some(mac.clone());
                n
            }))
        })?
        .with_context(|| format!("node {node} vanished from the store"))?
    };
    let underlay = h
        .link_by_name(&me.interface)?
        .with_context(|| format!("underlay interface {} missing on {node}", me.interface))?;
    vxlan::ensure_device(h, &me, &underlay)?;
    Ok(())
}
