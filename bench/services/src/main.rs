//! Services at scale: 1,000, 10,000 and 30,000 services with two endpoints each (store
//! entries, but for the service under test, whose two endpoints are real listeners), weft's
//! nftables table (the agent's pass: store read, plan, native nf_tables backend) against a
//! kube-proxy-iptables-shaped ruleset loaded with iptables-restore, on this machine in one run.
//!
//! Measured: full programming (store → kernel), one service's update (an endpoint added or
//! removed), and new-connection latency through the ClusterIP (connect + first byte, p50 and
//! p99) from a client namespace. See bench/README.md.

mod kubeproxy;
mod latency;
mod measure;
mod world;

use anyhow::{bail, Context, Result};
use weft_bench_common::iptables::Flavor;
use weft_bench_common::report::Report;
use weft_dataplane::{rules, ClusterState};
use weft_store::Store;

use kubeproxy::Place;
use world::{World, NODE};

pub struct Args {
    pub scales: Vec<usize>,
    pub rounds: usize,
    /// Rounds above 10,000 services.
    pub big_rounds: usize,
    pub updates: usize,
    pub samples: usize,
    pub lat_rounds: usize,
    pub iptables: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        scales: vec![1000, 10_000, 30_000],
        rounds: 5,
        big_rounds: 3,
        updates: 20,
        samples: 1000,
        lat_rounds: 5,
        iptables: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--services" => a.scales = weft_bench_common::parse_list(&v()?, "--services")?,
            "--rounds" => a.rounds = v()?.parse()?,
            "--big-rounds" => a.big_rounds = v()?.parse()?,
            "--updates" => a.updates = v()?.parse()?,
            "--samples" => a.samples = v()?.parse()?,
            "--latency-rounds" => a.lat_rounds = v()?.parse()?,
            "--no-iptables" => a.iptables = false,
            "-h" | "--help" => {
                println!("weft-bench-services [--services 1000,10000,30000] [--rounds 5] [--big-rounds 3] [--updates 20] [--samples 1000] [--latency-rounds 5] [--no-iptables]");
                std::process::exit(0);
            }
            _ => bail!("unknown argument {k}; see --help"),
        }
    }
    if a.scales.iter().any(|&s| s < 2) || a.scales.is_empty() {
        bail!("--services: at least one scale, each at least 2");
    }
    if a.rounds == 0 || a.big_rounds == 0 || a.samples == 0 {
        bail!("--rounds, --big-rounds and --samples must be at least 1");
    }
    Ok(a)
}

impl Args {
    /// Measurement rounds at `services`.
    pub fn rounds_at(&self, services: usize) -> usize {
        if services > 10_000 {
            self.big_rounds
        } else {
            self.rounds
        }
    }

    fn describe(&self, flavors: &[Flavor]) -> String {
        format!(
            "scales {:?} services × 2 endpoints; {} programming rounds ({} above 10,000), {} updates, {} latency rounds of {} connections; anchors: {}",
            self.scales,
            self.rounds,
            self.big_rounds,
            self.updates,
            self.lat_rounds,
            self.samples,
            if flavors.is_empty() {
                "none".to_string()
            } else {
                flavors.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
            }
        )
    }
}

/// One scale: its store, weft's table for it, and the iptables-shaped rulesets.
pub struct Scale {
    pub services: usize,
    pub store: Box<dyn Store>,
    pub table: weft_nft::Table,
    pub ipt: Vec<(Place, String)>,
}

impl Scale {
    pub fn ipt(&self, place: Place) -> &str {
        &self
            .ipt
            .iter()
            .find(|(p, _)| *p == place)
            .expect("both places")
            .1
    }
}

fn main() -> Result<()> {
    let a = args()?;
    if !nix::unistd::geteuid().is_root() {
        bail!("the services bench needs root (namespaces, veths, nftables): run it with sudo");
    }
    // First: it installs the cleanup on Ctrl-C before any thread starts.
    let w = World::new()?;
    let flavors = if a.iptables {
        Flavor::available()
    } else {
        vec![]
    };
    if a.iptables && flavors.is_empty() {
        eprintln!("note: neither iptables-legacy-restore nor iptables-nft-restore found (apt-get install iptables): the iptables-shaped variants are skipped");
    }
    let mut rep = Report::new("weft services bench");
    let mut scales = vec![];
    for &n in &a.scales {
        eprintln!("populating a store: {n} services, {} endpoints …", 2 * n);
        let (store, write) = w.populate(n)?;
        rep.note(format!(
            "{n} services: writing the services and their endpoints into the store ({} records, {} per transaction): {:.0} ms",
            3 * n,
            5000,
            weft_bench_common::ms(write)
        ));
        let st = ClusterState::load(store.as_ref())?;
        let table = rules::ruleset(&rules::RulesInput::from_state(NODE, &st));
        let mut ipt = vec![];
        let mut ipt_rules = 0;
        for place in [Place::End, Place::Middle] {
            let (text, n) = kubeproxy::ruleset(&st, place);
            ipt_rules = n;
            ipt.push((place, text));
        }
        rep.note(format!(
            "{n} services: weft table {} chains, {} rules, {} map elements; iptables-shaped: {} chains, {ipt_rules} rules",
            table.chains.len(),
            table.chains.iter().map(|c| c.rules.len()).sum::<usize>(),
            table.maps.iter().map(|m| m.elements.len()).sum::<usize>(),
            ipt[0].1.lines().filter(|l| l.starts_with(':')).count(),
        ));
        scales.push(Scale {
            services: n,
            store,
            table,
            ipt,
        });
    }

    // `WEFT_BENCH_COMPUTE_LOOP=N`: only compute the largest scale's table N times (for a
    // profiler), then stop.
    if let Some(n) = std::env::var("WEFT_BENCH_COMPUTE_LOOP")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let s = scales.last().expect("a scale");
        let st = ClusterState::load(s.store.as_ref())?;
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(rules::ruleset(&rules::RulesInput::from_state(NODE, &st)));
        }
        eprintln!(
            "compute: {:.2} ms each",
            weft_bench_common::ms(t.elapsed()) / n as f64
        );
        let mut input = rules::RulesInput::from_state(NODE, &st);
        input.services = &[];
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(rules::ruleset(&input));
        }
        eprintln!(
            "  of which without the services: {:.2} ms each",
            weft_bench_common::ms(t.elapsed()) / n as f64
        );
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(rules::services_endpoints(&st.services, &st.workloads));
        }
        eprintln!(
            "  the services' endpoints: {:.2} ms each",
            weft_bench_common::ms(t.elapsed()) / n as f64
        );
        let full = rules::ruleset(&rules::RulesInput::from_state(NODE, &st));
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(full.clone());
        }
        eprintln!(
            "  (a clone of the table: {:.2} ms each)",
            weft_bench_common::ms(t.elapsed()) / n as f64
        );
        let t = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(rules::UdpBackends::of(&rules::RulesInput::from_state(
                NODE, &st,
            )));
        }
        eprintln!(
            "  (the agent's UDP backends: {:.2} ms each)",
            weft_bench_common::ms(t.elapsed()) / n as f64
        );
        return Ok(());
    }

    let mut m = measure::Bench::new(&w, &flavors)?;
    for s in &scales {
        m.full_programming(s, &a, &mut rep)?;
    }
    for s in &scales {
        m.updates(s, &a, &mut rep)?;
    }
    m.latency(&scales, &a, &mut rep)?;
    m.clear()?;
    rep.print(&a.describe(&flavors));
    Ok(())
}
