//! The printed report: series with min / median / p90 / max, notes, ratios, the machine.

/// min, median, p90, max of `v` (empty: zeros).
pub fn summary(v: &[f64]) -> (f64, f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (s[0], at(0.5), at(0.9), s[s.len() - 1])
}

pub struct Report {
    title: String,
    lines: Vec<String>,
    notes: Vec<String>,
}

impl Report {
    /// A report printed under the heading `# <title>`.
    pub fn new(title: &str) -> Report {
        Report {
            title: title.to_string(),
            lines: vec![],
            notes: vec![],
        }
    }

    pub fn note(&mut self, s: String) {
        eprintln!("  {s}");
        self.notes.push(s);
    }

    pub fn series(&mut self, name: &str, unit: &str, v: &[f64]) {
        let (min, med, p90, max) = summary(v);
        let line = format!(
            "| {name} | {unit} | {} | {min:.2} | {med:.2} | {p90:.2} | {max:.2} |",
            v.len()
        );
        eprintln!("{line}");
        self.lines.push(line);
    }

    /// rate[a] / rate[b]: per round (`rates[v][round]`, the rounds interleaved) as
    /// min / median / max, and as the ratio of the medians.
    pub fn ratio(&mut self, names: &[String], rates: &[Vec<f64>], a: usize, b: usize) {
        self.ratio_of("rate", names, rates, a, b)
    }

    /// `what`(a) / `what`(b) of per-round figures (`values[v][round]`, the rounds interleaved):
    /// per round as min / median / max, and as the ratio of the medians.
    pub fn ratio_of(
        &mut self,
        what: &str,
        names: &[String],
        values: &[Vec<f64>],
        a: usize,
        b: usize,
    ) {
        if values[a].is_empty() || values[b].is_empty() {
            return;
        }
        let per: Vec<f64> = values[a]
            .iter()
            .zip(&values[b])
            .map(|(x, y)| x / y)
            .collect();
        let (min, med, _, max) = summary(&per);
        let of_medians = summary(&values[a]).1 / summary(&values[b]).1;
        self.notes.push(format!(
            "{what}({}) / {what}({}): ratio of medians {of_medians:.3}; per round min {min:.3} / median {med:.3} / max {max:.3}",
            names[a], names[b]
        ));
    }

    pub fn print(&self, params: &str) {
        println!("# {}\n", self.title);
        println!("Machine: {}", machine());
        println!("Parameters: {params}\n");
        println!("| measurement | unit | n | min | median | p90 | max |");
        println!("|---|---|---|---|---|---|---|");
        for l in &self.lines {
            println!("{l}");
        }
        println!();
        for n in &self.notes {
            println!("- {n}");
        }
    }
}

/// nproc, CPU model, kernel and load average of this machine.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{n} CPUs ({cpu}), Linux {}, load average {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}
