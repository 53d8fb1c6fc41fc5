//! Statistics, ratios against the goals, machine description, and the table / JSON output.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};

/// The goals of the issue: weft / cni and weft / floor, as ratios of medians.
const GOALS: [(&str, f64); 2] = [("cni bridge+host-local", 0.25), ("floor", 1.5)];

/// The measurements of one variant, in round order.
pub struct Samples {
    name: String,
    us: Vec<f64>,
}

impl Samples {
    pub fn new(name: String, capacity: usize) -> Samples {
        Samples {
            name,
            us: Vec::with_capacity(capacity),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn push(&mut self, d: Duration) {
        self.us.push(d.as_secs_f64() * 1e6);
    }
}

/// Order statistics of a sample, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for an empty sample.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let p90 = v[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
        Some(Stats {
            n,
            min: v[0],
            median,
            p90,
            max: v[n - 1],
        })
    }

    fn json(&self) -> Value {
        json!({
            "n": self.n,
            "min_us": round1(self.min),
            "median_us": round1(self.median),
            "p90_us": round1(self.p90),
            "max_us": round1(self.max),
        })
    }
}

/// weft variant `a` against variant `b`.
struct Ratio {
    a: String,
    b: String,
    /// median(a) / median(b).
    of_medians: f64,
    /// Order statistics of a_i / b_i over the rounds i.
    per_round: Stats,
    goal: Option<f64>,
}

/// Everything printed at the end.
pub struct Report {
    iterations: usize,
    warmup: usize,
    variants: Vec<(String, Stats)>,
    /// Parts of the timed regions (`variant: part`).
    parts: Vec<(String, Stats)>,
    ratios: Vec<Ratio>,
    checks: Vec<(String, String)>,
    machine: Machine,
}

impl Report {
    pub fn new(
        iterations: usize,
        warmup: usize,
        samples: Vec<Samples>,
        parts: Vec<Samples>,
        checks: Vec<(String, String)>,
        load_before: String,
    ) -> Report {
        let stats = |v: &[Samples]| -> Vec<(String, Stats)> {
            v.iter()
                .filter_map(|s| Stats::of(&s.us).map(|st| (s.name.clone(), st)))
                .collect()
        };
        let variants = stats(&samples);
        let parts = stats(&parts);
        let mut ratios = Vec::new();
        for a in samples.iter().filter(|s| s.name.starts_with("weft")) {
            for b in samples.iter().filter(|s| !s.name.starts_with("weft")) {
                let per: Vec<f64> = a.us.iter().zip(&b.us).map(|(x, y)| x / y).collect();
                let (Some(sa), Some(sb), Some(per_round)) =
                    (Stats::of(&a.us), Stats::of(&b.us), Stats::of(&per))
                else {
                    continue;
                };
                ratios.push(Ratio {
                    a: a.name.clone(),
                    b: b.name.clone(),
                    of_medians: sa.median / sb.median,
                    per_round,
                    goal: GOALS.iter().find(|(n, _)| *n == b.name).map(|(_, g)| *g),
                });
            }
        }
        Report {
            iterations,
            warmup,
            variants,
            parts,
            ratios,
            checks,
            machine: Machine::describe(load_before),
        }
    }

    /// The human-readable table.
    pub fn to_table(&self) -> String {
        let mut o = String::new();
        let m = &self.machine;
        let _ = writeln!(
            o,
            "machine: {} CPUs (nproc), {} | {} {} {} | {}",
            m.nproc, m.cpu, m.sysname, m.release, m.arch, m.version
        );
        let _ = writeln!(
            o,
            "load average (1/5/15 min): {} before, {} after (other load on the machine is noise)",
            m.load_before, m.load_after
        );
        let _ = writeln!(
            o,
            "{} measured rounds after {} warm-up rounds; in each round every variant runs once, \
             round-robin, the first one rotating",
            self.iterations, self.warmup
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<24} {:>5} {:>10} {:>10} {:>10} {:>10}",
            "variant", "n", "min µs", "median µs", "p90 µs", "max µs"
        );
        for (name, s) in &self.variants {
            let _ = writeln!(
                o,
                "{:<24} {:>5} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                name, s.n, s.min, s.median, s.p90, s.max
            );
        }
        if !self.parts.is_empty() {
            let _ = writeln!(
                o,
                "breakdown (each part of the timed region over the same rounds; medians of parts need not add up):"
            );
            for (name, s) in &self.parts {
                let _ = writeln!(
                    o,
                    "  {:<40} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                    name, s.min, s.median, s.p90, s.max
                );
            }
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "ratios: 'of medians' = median(a) / median(b), which the goals apply to; \
             'per round' = min / median / max of a_i / b_i over the rounds i"
        );
        let _ = writeln!(
            o,
            "{:<38} {:>10} {:>24} {:>8} {:>6}",
            "a / b", "of medians", "per round min/med/max", "goal", ""
        );
        for r in &self.ratios {
            let per = format!(
                "{:.3} / {:.3} / {:.3}",
                r.per_round.min, r.per_round.median, r.per_round.max
            );
            let (goal, verdict) = match r.goal {
                Some(g) => (
                    format!("<= {g}"),
                    if r.of_medians <= g { "met" } else { "MISSED" },
                ),
                None => (String::new(), ""),
            };
            let _ = writeln!(
                o,
                "{:<38} {:>10.3} {:>24} {:>8} {:>6}",
                format!("{} / {}", r.a, r.b),
                r.of_medians,
                per,
                goal,
                verdict
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "checks (first round, untimed):");
        for (name, c) in &self.checks {
            let _ = writeln!(o, "  {name}: {c}");
        }
        o
    }

    /// The JSON document (`--json`).
    pub fn to_json(&self) -> String {
        let m = &self.machine;
        let v = json!({
            "machine": {
                "nproc": m.nproc,
                "cpu": m.cpu,
                "sysname": m.sysname,
                "kernel": m.release,
                "kernel_version": m.version,
                "arch": m.arch,
                "loadavg_before": m.load_before,
                "loadavg_after": m.load_after,
            },
            "iterations": self.iterations,
            "warmup": self.warmup,
            "variants": self.variants.iter().map(|(name, s)| {
                let mut j = s.json();
                j["name"] = json!(name);
                j
            }).collect::<Vec<_>>(),
            "parts": self.parts.iter().map(|(name, s)| {
                let mut j = s.json();
                j["name"] = json!(name);
                j
            }).collect::<Vec<_>>(),
            "ratios": self.ratios.iter().map(|r| json!({
                "a": r.a,
                "b": r.b,
                "ratio_of_medians": round3(r.of_medians),
                "per_round_min": round3(r.per_round.min),
                "per_round_median": round3(r.per_round.median),
                "per_round_max": round3(r.per_round.max),
                "goal_max": r.goal,
                "goal_met": r.goal.map(|g| r.of_medians <= g),
            })).collect::<Vec<_>>(),
            "checks": self.checks.iter().map(|(n, c)| json!({"variant": n, "saw": c})).collect::<Vec<_>>(),
        });
        serde_json::to_string_pretty(&v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Where the numbers were taken.
struct Machine {
    nproc: usize,
    cpu: String,
    sysname: String,
    release: String,
    version: String,
    arch: String,
    load_before: String,
    load_after: String,
}

/// The first three fields of `/proc/loadavg` ("?" when unreadable).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

impl Machine {
    fn describe(load_before: String) -> Machine {
        let nproc = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated C strings.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::uname(&mut u) } == 0;
        let field = |f: &[libc::c_char]| -> String {
            if !ok {
                return "?".into();
            }
            let bytes: Vec<u8> = f
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        };
        Machine {
            nproc,
            cpu,
            sysname: field(&u.sysname),
            release: field(&u.release),
            version: field(&u.version),
            arch: field(&u.machine),
            load_before,
            load_after: loadavg(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_odd_and_even() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.n, s.min, s.median, s.max), (3, 1.0, 2.0, 3.0));
        let s = Stats::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Stats::of(&[]).is_none());
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(Stats::of(&v).unwrap().p90, 9.0);
    }

    #[test]
    fn ratios_pair_weft_with_the_others() {
        let mut w = Samples::new("weft".into(), 2);
        let mut c = Samples::new("cni bridge+host-local".into(), 2);
        let mut f = Samples::new("floor".into(), 2);
        for (a, b, x) in [(100, 1000, 80), (200, 1000, 100)] {
            w.push(Duration::from_micros(a));
            c.push(Duration::from_micros(b));
            f.push(Duration::from_micros(x));
        }
        let r = Report::new(2, 0, vec![w, c, f], vec![], vec![], String::new());
        assert_eq!(r.ratios.len(), 2);
        assert!((r.ratios[0].of_medians - 0.15).abs() < 1e-9);
        assert_eq!(r.ratios[0].goal, Some(0.25));
        assert!((r.ratios[1].per_round.max - 2.0).abs() < 1e-9);
        assert!(r.to_table().contains("MISSED"));
    }
}
