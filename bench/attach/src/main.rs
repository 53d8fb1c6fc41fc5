//! `weft-bench-attach`: how long it takes to attach one workload to the network, weft side by
//! side with the CNI reference plugins (`bridge` + `host-local`) and with a floor (veth pair +
//! address, nothing else). Everything happens in network namespaces the bench creates itself;
//! the machine's own network namespace is never touched. See `bench/README.md`.

mod cni;
mod env;
mod report;
mod signals;
mod variants;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use crate::env::BenchEnv;
use crate::report::{Report, Samples};
use crate::variants::{Variant, VariantKind};

const USAGE: &str = "usage: weft-bench-attach [--iterations N] [--warmup W] [--json]

Measures the network attach of one workload (weft: IPAM + veth + sysctls + addresses + routes;
the CNI bridge + host-local plugins; a floor that only makes the veth pair and sets the address),
interleaved round-robin, in network namespaces of its own. Needs root.

  --iterations N   measured rounds (default 200)
  --warmup W       rounds run first and not recorded (default 20)
  --json           print the results as JSON on stdout (progress goes to stderr)

Environment: CNI_PATH (colon-separated plugin directories, default /usr/lib/cni).";

/// Command line options.
#[derive(Debug)]
struct Options {
    iterations: usize,
    warmup: usize,
    json: bool,
}

fn parse_args() -> Result<Option<Options>> {
    let mut o = Options {
        iterations: 200,
        warmup: 20,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<usize> {
            let v = inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{name} needs a number"))?;
            v.parse()
                .with_context(|| format!("{name} {v:?}: not a non-negative integer"))
        };
        match flag.as_str() {
            "--iterations" | "-n" => o.iterations = value("--iterations")?,
            "--warmup" | "-w" => o.warmup = value("--warmup")?,
            "--json" => o.json = true,
            "--help" | "-h" => return Ok(None),
            _ => bail!("unknown argument {a:?}\n\n{USAGE}"),
        }
    }
    if o.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("weft-bench-attach: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(report) => {
            let text = if opts.json {
                report.to_json() + "\n"
            } else {
                report.to_table()
            };
            // A closed stdout (`| head`) is not worth a panic.
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weft-bench-attach: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets everything up, runs warm-up and measured rounds, and tears everything down (the
/// [`BenchEnv`] cleans up when dropped, also on error and panic).
fn run(opts: &Options) -> Result<Report> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("weft-bench-attach needs root (it creates network namespaces and veth pairs); run it with sudo");
    }
    signals::install();
    let load_before = report::loadavg();
    let root_before = verify::RootSnapshot::take().context("snapshot of the root netns")?;

    let mut env = BenchEnv::new().context("set up the bench namespaces")?;
    let cni = cni::Cni::locate(env.tmp_dir())?;
    if cni.is_none() {
        eprintln!(
            "note: the CNI reference plugins bridge and host-local were not found in {}; \
             install them with `apt-get install containernetworking-plugins` (Debian/Ubuntu) \
             or point CNI_PATH at them. Skipping the cni variant.",
            cni::search_path()
        );
    }
    let mut variants: Vec<Variant> = vec![
        Variant::new(VariantKind::Weft),
        Variant::new(VariantKind::WeftCold),
    ];
    if let Some(c) = cni {
        variants.push(Variant::new(VariantKind::Cni(c)));
    }
    variants.push(Variant::new(VariantKind::Floor));

    let mut samples: Vec<Samples> = variants
        .iter()
        .map(|v| Samples::new(v.name().to_string(), opts.iterations))
        .collect();
    let mut parts: Vec<Samples> = Vec::new();
    let mut checks = Vec::new();
    let total = opts.warmup + opts.iterations;
    let k = variants.len();
    for round in 0..total {
        // Round-robin, starting one further each round, so no variant always runs first.
        for j in 0..k {
            if signals::interrupted() {
                bail!("interrupted; cleaned up");
            }
            let vi = (round + j) % k;
            let d = variants[vi]
                .once(&mut env, round == 0)
                .with_context(|| format!("{} (round {round})", variants[vi].name()))?;
            if let Some(check) = d.check {
                checks.push((variants[vi].name().to_string(), check));
            }
            if round >= opts.warmup {
                samples[vi].push(d.elapsed);
                for (part, t) in d.parts {
                    let name = format!("{}: {part}", variants[vi].name());
                    match parts.iter_mut().find(|p| p.name() == name) {
                        Some(p) => p.push(t),
                        None => {
                            let mut p = Samples::new(name, opts.iterations);
                            p.push(t);
                            parts.push(p);
                        }
                    }
                }
            }
        }
        if round == 0 {
            // Fail fast if anything leaked into the machine's own namespace.
            root_before
                .unchanged()
                .context("the root network namespace changed during the first round")?;
        }
        if !opts.json && (round + 1) % 50 == 0 {
            eprintln!("  {}/{total} rounds", round + 1);
        }
    }
    drop(env);
    root_before
        .unchanged()
        .context("the root network namespace changed during the bench")?;
    // Report in variant order (rotation makes the order of first appearance vary); the sort
    // is stable, so the parts of one variant stay in timed order.
    let rank = |name: &str| {
        variants
            .iter()
            .position(|v| name == v.name() || name.starts_with(&format!("{}: ", v.name())))
            .unwrap_or(usize::MAX)
    };
    checks.sort_by_key(|(name, _)| rank(name));
    parts.sort_by_key(|p| rank(p.name()));
    Ok(Report::new(
        opts.iterations,
        opts.warmup,
        samples,
        parts,
        checks,
        load_before,
    ))
}
