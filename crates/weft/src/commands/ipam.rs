//! `weft ipam ...`

use std::time::Duration;

use anyhow::{bail, Context, Result};
use weft_engine::Cluster;
use weft_ipam::{GcEntry, GcOptions, Ipam};

use crate::cli::{Format, IpamCmd};
use crate::output::{emit, Table};

pub(super) fn ipam(c: &Cluster, fmt: Format, cmd: IpamCmd) -> Result<i32> {
    let ipam = Ipam::new(c.store.as_ref());
    match cmd {
        IpamCmd::Show { show_blocks } => {
            if show_blocks {
                let blocks = ipam.blocks()?;
                emit(fmt, &blocks, || {
                    let mut t = Table::new(&["BLOCK", "POOL", "NODE", "IN USE", "FREE"]);
                    for b in &blocks {
                        let size = 1u64 << (32 - b.cidr.prefix_len());
                        let used = b.allocations.len() as u64;
                        t.row(vec![
                            b.cidr.to_string(),
                            b.pool.clone(),
                            b.affinity.clone().unwrap_or_else(|| "-".into()),
                            used.to_string(),
                            (size - used).to_string(),
                        ]);
                    }
                    t
                })?;
            } else {
                let usage = ipam.usage()?;
                emit(fmt, &usage, || {
                    let mut t = Table::new(&[
                        "POOL",
                        "CIDR",
                        "SIZE",
                        "IN USE",
                        "FREE",
                        "BLOCKS",
                        "BORROWED",
                        "STRICT AFFINITY",
                    ]);
                    for u in &usage {
                        t.row(vec![
                            u.pool.clone(),
                            u.cidr.to_string(),
                            u.size.to_string(),
                            u.in_use.to_string(),
                            (u.size - u.in_use).to_string(),
                            u.blocks.to_string(),
                            u.borrowed.to_string(),
                            u.strict_affinity.to_string(),
                        ]);
                    }
                    t
                })?;
            }
            Ok(0)
        }
        IpamCmd::Check => {
            let live = c.live_handles()?;
            let nodes: Vec<String> = c.nodes()?.into_iter().map(|n| n.name).collect();
            let problems = ipam.check(&|h| live.contains(h), &nodes)?;
            let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            match fmt {
                Format::Table if text.is_empty() => {
                    println!("IPAM is consistent: no problems found")
                }
                Format::Table => {
                    for t in &text {
                        println!("{t}");
                    }
                }
                _ => emit(fmt, &text, || Table::new(&[]))?,
            }
            Ok(if text.is_empty() { 0 } else { 1 })
        }
        IpamCmd::Gc { grace, dry_run } => {
            let opts = GcOptions {
                grace: parse_duration(&grace).with_context(|| {
                    format!("--grace {grace:?}: write it like 15m, 1h30m, 90s or 0s")
                })?,
                dry_run,
            };
            let report = ipam.gc(&opts, &|| c.live_handles().map_err(|e| format!("{e:#}")))?;
            let nothing = report.released.is_empty()
                && report.pending.is_empty()
                && report.in_creation.is_empty();
            if fmt == Format::Table && nothing {
                println!("no leaked addresses");
                return Ok(0);
            }
            emit(fmt, &report, || {
                let mut t = Table::new(&["HANDLE", "NODE", "ADDRESSES", "STATUS"]);
                let released = if dry_run { "would release" } else { "released" };
                let mut row = |e: &GcEntry, status: String| {
                    let addrs: Vec<String> = e.addresses.iter().map(|a| a.to_string()).collect();
                    t.row(vec![
                        e.handle.clone(),
                        e.node.clone().unwrap_or_else(|| "-".into()),
                        addrs.join(","),
                        status,
                    ]);
                };
                for e in &report.released {
                    row(e, released.to_string());
                }
                for e in &report.pending {
                    row(e, format!("pending, {} left", human(e.remaining_secs)));
                }
                for h in &report.in_creation {
                    t.row(vec![
                        h.clone(),
                        "-".into(),
                        "-".into(),
                        "being created".into(),
                    ]);
                }
                t
            })?;
            Ok(0)
        }
        IpamCmd::Configure {
            strict_affinity,
            vxlan_mode,
            pool,
        } => {
            let scope = pool
                .as_deref()
                .map_or("cluster-wide".to_string(), |p| format!("for IP pool {p}"));
            if let Some(strict) = strict_affinity {
                ipam.set_strict_affinity(pool.as_deref(), strict)?;
                println!("strict affinity {scope}: {strict}");
            }
            if let (Some(mode), Some(p)) = (vxlan_mode, pool.as_deref()) {
                let mode = match mode.as_str() {
                    "default" => None,
                    m => Some(m.parse::<weft_model::VxlanMode>()?),
                };
                ipam.set_vxlan_mode(p, mode)?;
                match mode {
                    Some(m) => println!("VXLAN mode {scope}: {m}"),
                    None => println!("VXLAN mode {scope}: the lab's default"),
                }
            }
            Ok(0)
        }
    }
}

/// Parses a duration like `15m`, `1h30m`, `90s`, `0s` or `0`.
fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for ch in text.chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => bail!("unknown unit {ch:?} (use s, m, h or d)"),
        };
        if digits.is_empty() {
            bail!("a number must come before {ch:?}");
        }
        let n: u64 = digits.parse().context("number too large")?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .context("duration too large")?;
        digits.clear();
    }
    if !digits.is_empty() || text.is_empty() {
        bail!("every number needs a unit (s, m, h or d)");
    }
    Ok(Duration::from_secs(total))
}

/// `14m32s`-style rendering of seconds.
fn human(secs: u64) -> String {
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "15", "m", "10x", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(human(872), "14m32s");
        assert_eq!(human(5), "5s");
        assert_eq!(human(3661), "1h1m1s");
    }
}
