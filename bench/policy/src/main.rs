//! Policy at scale: 1,000 policies selecting among 10,000 endpoints (store entries for all but
//! two), weft's nftables table against an iptables-shaped equivalent, on this machine.
//!
//! Measured: the time from a store holding the policies to the rules being in the kernel (the
//! agent's pass: read, compute, program; also end to end through a running agent), the time of
//! one policy edit, and the rate of new connections between two real workloads judged by the
//! policies, at 10 and at 10,000 endpoints, with weft's table and with the iptables-shaped one.
//! See bench/README.md.

mod connrate;
mod iptables;
mod shape;
mod world;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use weft_agent::Nft;
use weft_dataplane::{rules, ClusterState};
use weft_engine::Cluster;
use weft_netlink::Handle;
use weft_nft::{Backend, Family, NetlinkBackend};
use weft_store::Store;

use shape::{Shape, EDITED};
use weft_bench_common::report::Report;
use world::{World, NODE};

struct Args {
    scales: Vec<usize>,
    policies: usize,
    nodes: usize,
    rounds: usize,
    edits: usize,
    conn_rounds: usize,
    conn_secs: f64,
    conn_clients: Vec<usize>,
    agent: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        scales: vec![10, 10_000],
        policies: 1000,
        nodes: 50,
        rounds: 10,
        edits: 20,
        conn_rounds: 5,
        conn_secs: 2.0,
        conn_clients: vec![1, 2],
        agent: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--endpoints" => a.scales = weft_bench_common::parse_list(&v()?, "--endpoints")?,
            "--policies" => a.policies = v()?.parse()?,
            "--nodes" => a.nodes = v()?.parse()?,
            "--rounds" => a.rounds = v()?.parse()?,
            "--edits" => a.edits = v()?.parse()?,
            "--conn-rounds" => a.conn_rounds = v()?.parse()?,
            "--conn-seconds" => a.conn_secs = v()?.parse()?,
            "--conn-clients" => {
                a.conn_clients = weft_bench_common::parse_list(&v()?, "--conn-clients")?
            }
            "--no-agent" => a.agent = false,
            "-h" | "--help" => {
                println!("weft-bench-policy [--endpoints 10,10000] [--policies 1000] [--nodes 50] [--rounds 10] [--edits 20] [--conn-rounds 5] [--conn-seconds 2] [--conn-clients 1,2] [--no-agent]");
                std::process::exit(0);
            }
            _ => bail!("unknown argument {k}; see --help"),
        }
    }
    if a.scales.iter().any(|&e| e < 2) || a.nodes == 0 || a.conn_clients.contains(&0) {
        bail!("--endpoints must be at least 2 (the two real workloads), --nodes and --conn-clients at least 1");
    }
    Ok(a)
}

/// One scale: its store and its iptables-shaped ruleset.
struct Scale {
    endpoints: usize,
    cluster: Cluster,
    ipt: String,
}

fn main() -> Result<()> {
    let a = args()?;
    if !nix::unistd::geteuid().is_root() {
        bail!("the policy bench needs root (namespaces, veths, nftables): run it with sudo");
    }
    let flavors = iptables::Flavor::available();
    let ipt = !flavors.is_empty();
    if !ipt {
        eprintln!("note: neither iptables-legacy-restore nor iptables-nft-restore found (apt-get install iptables): the iptables-shaped variants are skipped");
    }
    let mut rep = Report::new("weft policy bench");
    let w = World::new()?;
    connrate::serve(&w.c2().ns)?;
    // Each iptables flavor runs in a world of its own: iptables-legacy's tables stay on the
    // namespace's hooks once made (empty, but traversed by every packet), and weft's node
    // must not pay for them, nor one flavor for the other.
    let ipt_worlds: Vec<World> = flavors
        .iter()
        .map(|f| {
            let x = w.sibling(f.name())?;
            connrate::serve(&x.c2().ns)?;
            Ok(x)
        })
        .collect::<Result<_>>()?;
    let mut h = Handle::in_netns(&w.node.ns)?;
    let mut nft = Nft::in_netns(&w.node.ns)?;
    let mut raw = NetlinkBackend::in_netns(&w.node.ns)?;

    let mut scales = vec![];
    for &endpoints in &a.scales {
        let shape = Shape {
            endpoints,
            policies: a.policies,
            nodes: a.nodes,
        };
        eprintln!(
            "populating a store: {endpoints} endpoints on {} nodes, {} policies …",
            a.nodes, a.policies
        );
        let t = Instant::now();
        let (cluster, apply) = w.populate(&format!("e{endpoints}"), &shape)?;
        eprintln!(
            "  done in {:.1} s (the policies' apply: {} ms)",
            t.elapsed().as_secs_f64(),
            apply.as_millis()
        );
        rep.note(format!(
            "{endpoints} endpoints: `weft apply` of {} policies into the store: {:.0} ms",
            a.policies,
            ms(apply)
        ));
        let st = ClusterState::load(cluster.store.as_ref())?;
        let (text, n) = if ipt {
            iptables::ruleset(&st, NODE)?
        } else {
            (String::new(), 0)
        };
        let table = rules::ruleset(&rules::RulesInput::from_state(NODE, &st));
        rep.note(format!(
            "{endpoints} endpoints: weft table {} chains, {} rules, {} sets ({} elements), {} maps; iptables-shaped: {n} rules",
            table.chains.len(),
            table.chains.iter().map(|c| c.rules.len()).sum::<usize>(),
            table.sets.len(),
            table.sets.iter().map(|s| s.elements.len()).sum::<usize>(),
            table.maps.len(),
        ));
        scales.push(Scale {
            endpoints,
            cluster,
            ipt: text,
        });
    }

    // `WEFT_BENCH_COMPUTE_LOOP=N`: only compute the largest scale's table N times (for a
    // profiler), then stop.
    if let Some(n) = std::env::var("WEFT_BENCH_COMPUTE_LOOP")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let s = scales.last().expect("a scale");
        let st = ClusterState::load(s.cluster.store.as_ref())?;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(rules::ruleset(&rules::RulesInput::from_state(NODE, &st)));
        }
        eprintln!("compute: {:.2} ms each", ms(t.elapsed()) / n as f64);
        return Ok(());
    }

    // Full programming, from no table to all of it in the kernel.
    for s in &scales {
        let store = s.cluster.store.as_ref();
        let (mut pass, mut load, mut compute, mut program, mut list) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..a.rounds {
            raw.delete(Family::Inet, rules::TABLE)?;
            nft.forget();
            let t = Instant::now();
            weft_agent::reconcile(store, &mut h, &mut nft, NODE)?;
            pass.push(ms(t.elapsed()));
            // The same pass in parts.
            raw.delete(Family::Inet, rules::TABLE)?;
            let t = Instant::now();
            let _ = store.list("/weft/")?;
            list.push(ms(t.elapsed()));
            let t = Instant::now();
            let st = ClusterState::load(store)?;
            load.push(ms(t.elapsed()));
            let t = Instant::now();
            let table = rules::ruleset(&rules::RulesInput::from_state(NODE, &st));
            compute.push(ms(t.elapsed()));
            let t = Instant::now();
            raw.apply(&table)?;
            program.push(ms(t.elapsed()));
        }
        let e = s.endpoints;
        rep.series(
            &format!("full programming, weft agent pass ({e} endpoints)"),
            "ms",
            &pass,
        );
        rep.series(&format!("  of which: read the store ({e})"), "ms", &load);
        rep.series(
            &format!("  (a bare list of the store's keys and values ({e}))"),
            "ms",
            &list,
        );
        rep.series(
            &format!("  of which: compute the table ({e})"),
            "ms",
            &compute,
        );
        rep.series(
            &format!("  of which: program the kernel ({e})"),
            "ms",
            &program,
        );
        raw.delete(Family::Inet, rules::TABLE)?;
        for (f, wf) in flavors.iter().zip(&ipt_worlds) {
            let mut restore = vec![];
            for _ in 0..a.rounds.min(5) {
                f.restore(&wf.node.ns_name, iptables::EMPTY)?;
                let t = Instant::now();
                let st = ClusterState::load(store)?;
                let (text, _) = iptables::ruleset(&st, NODE)?;
                f.restore(&wf.node.ns_name, &w.rename_ifaces(&text, wf))?;
                restore.push(ms(t.elapsed()));
            }
            f.restore(&wf.node.ns_name, iptables::EMPTY)?;
            rep.series(
                &format!(
                    "full programming, iptables-shaped: read + render + {}-restore ({e})",
                    f.name()
                ),
                "ms",
                &restore,
            );
        }
    }

    // One policy edit: the agent's incremental pass.
    for s in &scales {
        let store = s.cluster.store.as_ref();
        nft.forget();
        let mut cache = weft_dataplane::StateCache::load(store)?;
        let mut watch = store.watch("/weft/", cache.revision())?;
        weft_agent::reconcile_cached(store, &mut h, &mut nft, NODE, &mut cache, watch.as_mut())?;
        let (mut put, mut pass) = (vec![], vec![]);
        for i in 0..a.edits {
            let port = if i % 2 == 0 { 8080 } else { 80 };
            let t = Instant::now();
            weft_engine::resources::apply(&s.cluster, &Shape::policy_yaml(EDITED, port))?;
            put.push(ms(t.elapsed()));
            let t = Instant::now();
            weft_agent::reconcile_cached(
                store,
                &mut h,
                &mut nft,
                NODE,
                &mut cache,
                watch.as_mut(),
            )?;
            pass.push(ms(t.elapsed()));
        }
        // The same passes in parts, reading the whole store each time (as the one-off pass does), on the raw backend: read, compute, compare and update.
        let (mut load, mut compute, mut diff) = (vec![], vec![], vec![]);
        let mut last = rules::ruleset(&rules::RulesInput::from_state(
            NODE,
            &ClusterState::load(store)?,
        ));
        raw.apply(&last)?;
        for i in 0..a.edits {
            let port = if i % 2 == 0 { 8080 } else { 80 };
            weft_engine::resources::apply(&s.cluster, &Shape::policy_yaml(EDITED, port))?;
            let t = Instant::now();
            let st = ClusterState::load(store)?;
            load.push(ms(t.elapsed()));
            let t = Instant::now();
            let table = rules::ruleset(&rules::RulesInput::from_state(NODE, &st));
            compute.push(ms(t.elapsed()));
            let t = Instant::now();
            if table != last {
                raw.update(&last, &table)?;
            }
            diff.push(ms(t.elapsed()));
            last = table;
        }
        let e = s.endpoints;
        rep.series(
            &format!("  edit, of which: read the store ({e})"),
            "ms",
            &load,
        );
        rep.series(
            &format!("  edit, of which: compute the table ({e})"),
            "ms",
            &compute,
        );
        rep.series(
            &format!("  edit, of which: compare and update the kernel ({e})"),
            "ms",
            &diff,
        );
        rep.series(
            &format!("one policy edit: `weft apply` into the store ({e})"),
            "ms",
            &put,
        );
        rep.series(
            &format!(
                "one policy edit: weft agent pass (state from the watch, table difference) ({e})"
            ),
            "ms",
            &pass,
        );
    }

    // New connections per second, variants interleaved round by round, for each number of
    // clients at once.
    let world_of = |f: Option<iptables::Flavor>| match f {
        None => &w,
        Some(f) => &ipt_worlds[flavors.iter().position(|g| *g == f).expect("a flavor")],
    };
    for &clients in &a.conn_clients {
        conn_rates(
            &a,
            clients,
            &scales,
            &flavors,
            &world_of,
            &mut rep,
            &mut |s, flavor| match flavor {
                Some(f) => {
                    let wf = world_of(Some(f));
                    f.restore(&wf.node.ns_name, &w.rename_ifaces(&s.ipt, wf))
                }
                None => {
                    nft.forget();
                    weft_agent::reconcile(s.cluster.store.as_ref(), &mut h, &mut nft, NODE)
                        .map(|_| ())
                }
            },
        )?;
    }
    for (f, wf) in flavors.iter().zip(&ipt_worlds) {
        f.restore(&wf.node.ns_name, iptables::EMPTY)?;
    }
    raw.delete(Family::Inet, rules::TABLE)?;

    // End to end through a running agent: apply, then wait for its status to show the revision.
    if a.agent {
        if let Some(s) = scales.iter().max_by_key(|s| s.endpoints) {
            agent_end_to_end(&w, s, &a, &mut rep)?;
        }
    }
    rep.print(&a.machine());
    Ok(())
}

fn agent_end_to_end(w: &World, s: &Scale, a: &Args, rep: &mut Report) -> Result<()> {
    let path = w.node.tmp.join(format!("e{}.db", s.endpoints));
    let agent_store: std::sync::Arc<dyn Store> =
        std::sync::Arc::from(weft_store::open(&path.to_string_lossy())?);
    let ns = w.node.ns.try_clone()?;
    std::thread::spawn(move || {
        if let Err(e) = nix::sched::setns(ns.fd(), nix::sched::CloneFlags::CLONE_NEWNET) {
            eprintln!("agent thread: {e}");
            return;
        }
        let opts = weft_agent::AgentOptions {
            node: NODE.into(),
            resync: Duration::from_secs(3600),
        };
        if let Err(e) = weft_agent::run(agent_store, &opts) {
            eprintln!("agent: {e:#}");
        }
    });
    let store = s.cluster.store.as_ref();
    let wait = |rev: i64| -> Result<()> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((st, _)) = weft_store::get_json::<weft_model::AgentStatus>(
                store,
                &weft_model::keys::agent_status(NODE),
            )? {
                if st.revision >= rev {
                    if let Some(e) = st.error {
                        bail!("the agent failed: {e}");
                    }
                    return Ok(());
                }
            }
            if Instant::now() > end {
                bail!("the agent did not reach revision {rev} in 30 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    wait(store.revision()?)?;
    let all = Shape {
        endpoints: s.endpoints,
        policies: a.policies,
        nodes: a.nodes,
    }
    .policies_yaml();
    let (mut full, mut edit) = (vec![], vec![]);
    for _ in 0..a.rounds.min(5) {
        weft_engine::resources::delete_file(&s.cluster, &all)?;
        wait(store.revision()?)?;
        let t = Instant::now();
        weft_engine::resources::apply(&s.cluster, &all)?;
        wait(store.revision()?)?;
        full.push(ms(t.elapsed()));
    }
    for i in 0..a.edits {
        let port = if i % 2 == 0 { 8080 } else { 80 };
        let t = Instant::now();
        weft_engine::resources::apply(&s.cluster, &Shape::policy_yaml(EDITED, port))?;
        wait(store.revision()?)?;
        edit.push(ms(t.elapsed()));
    }
    let e = s.endpoints;
    rep.series(
        &format!(
            "end to end, running agent: apply {} policies → in the kernel ({e})",
            a.policies
        ),
        "ms",
        &full,
    );
    rep.series(
        &format!("end to end, running agent: apply one edit → in the kernel ({e})"),
        "ms",
        &edit,
    );
    Ok(())
}

/// The connection rate of every variant (weft's table, each iptables-shaped ruleset; at every
/// scale) with `clients` clients at once, the variants interleaved round by round with a
/// rotating start, each in its world (`world_of`); `load` puts a variant's rules in force. Reports the series and the ratios
/// the goals are about: weft at the largest scale against weft at the smallest, and weft
/// against each iptables-shaped ruleset at the same scale.
fn conn_rates<'w>(
    a: &Args,
    clients: usize,
    scales: &[Scale],
    flavors: &[iptables::Flavor],
    world_of: &dyn Fn(Option<iptables::Flavor>) -> &'w World,
    rep: &mut Report,
    load: &mut dyn FnMut(&Scale, Option<iptables::Flavor>) -> Result<()>,
) -> Result<()> {
    let mut variants: Vec<(String, usize, Option<iptables::Flavor>)> = vec![];
    for (i, s) in scales.iter().enumerate() {
        variants.push((format!("weft, {} endpoints", s.endpoints), i, None));
        for f in flavors {
            variants.push((
                format!("{}-shaped, {} endpoints", f.name(), s.endpoints),
                i,
                Some(*f),
            ));
        }
    }
    let mut rates: Vec<Vec<f64>> = vec![vec![]; variants.len()];
    eprintln!(
        "connection rate, {clients} client(s): {} rounds of {} variants, {} s each …",
        a.conn_rounds,
        variants.len(),
        a.conn_secs
    );
    for round in 0..a.conn_rounds {
        for j in 0..variants.len() {
            let v = (j + round) % variants.len();
            let (name, si, flavor) = &variants[v];
            load(&scales[*si], *flavor)?;
            let w = world_of(*flavor);
            if let Err(e) = connrate::check(&w.c1().ns, w.c2().ip) {
                if let Ok(secs) =
                    std::env::var("WEFT_BENCH_HOLD").map(|s| s.parse::<u64>().unwrap_or(60))
                {
                    eprintln!(
                        "check failed ({e:#}); holding {} for {secs} s",
                        w.node.ns_name
                    );
                    std::thread::sleep(Duration::from_secs(secs));
                }
                return Err(e.context(format!("variant {name}")));
            }
            let r = connrate::measure(&w.c1().ns, w.c2().ip, a.conn_secs, clients)?;
            if r.failed > 0 {
                eprintln!(
                    "  {name}, {clients} client(s): {} connections failed",
                    r.failed
                );
            }
            rates[v].push(r.per_second);
        }
    }
    let names: Vec<String> = variants
        .iter()
        .map(|v| format!("{}, {clients} client(s)", v.0))
        .collect();
    for (v, name) in names.iter().enumerate() {
        rep.series(
            &format!("new connections c1 → c2, {name}"),
            "conn/s",
            &rates[v],
        );
    }
    let weft_of = |si: usize| variants.iter().position(|v| v.1 == si && v.2.is_none());
    if let (Some(big), Some(small)) = (weft_of(scales.len() - 1), weft_of(0)) {
        if big != small {
            rep.ratio(&names, &rates, big, small);
        }
    }
    for (v, (_, si, flavor)) in variants.iter().enumerate() {
        if flavor.is_some() {
            if let Some(wv) = weft_of(*si) {
                rep.ratio(&names, &rates, wv, v);
            }
        }
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Args {
    fn machine(&self) -> String {
        format!(
            "{} policies, {} nodes, scales {:?}; {} programming rounds, {} edits, {} connection rounds of {} s with {:?} clients",
            self.policies, self.nodes, self.scales, self.rounds, self.edits, self.conn_rounds, self.conn_secs, self.conn_clients
        )
    }
}
