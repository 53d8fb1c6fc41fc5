//! cgroup v2: one unified directory; controllers are enabled down the path.

use std::path::Path;

use super::{keyed, mkdir_all, read, read_u64, write, Cgroup, Resources, Stats, CPU_PERIOD};

/// Controllers a container's cgroup gets when the hierarchy offers them.
const WANTED: &[&str] = &["cpu", "memory", "pids"];

/// cgroup v1 shares to a v2 weight (the conversion runc and the kernel docs use).
pub(super) fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

pub(super) fn create(cg: &Cgroup, mount: &Path, res: &Resources) -> Result<(), String> {
    let available = read(&mount.join("cgroup.controllers")).unwrap_or_default();
    let has = |c: &str| available.split_whitespace().any(|x| x == c);
    for (c, what, needed) in [
        (
            "memory",
            "a memory limit",
            res.memory.is_some() || res.memory_swap.is_some(),
        ),
        (
            "cpu",
            "a CPU limit",
            res.cpu_quota.is_some() || res.cpu_shares.is_some(),
        ),
        ("pids", "a pids limit", res.pids.is_some()),
    ] {
        if needed && !has(c) {
            return Err(format!(
                "{what} needs the cgroup v2 controller {c:?}, which {} does not offer",
                mount.display()
            ));
        }
    }
    // Enable the controllers in every ancestor's subtree_control, top down.
    let enable: Vec<String> = WANTED
        .iter()
        .filter(|c| has(c))
        .map(|c| format!("+{c}"))
        .collect();
    let mut dir = mount.to_path_buf();
    for comp in cg.path.trim_matches('/').split('/') {
        if !enable.is_empty() {
            let sc = dir.join("cgroup.subtree_control");
            let current = read(&sc).unwrap_or_default();
            for e in &enable {
                if !current.split_whitespace().any(|x| x == &e[1..]) {
                    write(&sc, e)?;
                }
            }
        }
        dir = dir.join(comp);
        mkdir_all(&dir)?;
    }
    // Devices: v2 has no files for them, but an eBPF program on the cgroup.
    super::bpf::attach(&dir, &super::resources::device_rules(&res.devices))?;
    if let Some(m) = res.memory {
        write(&dir.join("memory.max"), &m.to_string())?;
        let swap = dir.join("memory.swap.max");
        if swap.exists() {
            let v = match res.memory_swap {
                Some(-1) => "max".to_string(),
                Some(s) => (s - m).max(0).to_string(),
                None => "0".to_string(),
            };
            write(&swap, &v)?;
        }
    }
    if let Some(s) = res.cpu_shares {
        write(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
    }
    if res.cpu_quota.is_some() || res.cpu_period.is_some() {
        let period = res.cpu_period.unwrap_or(CPU_PERIOD);
        let quota = res
            .cpu_quota
            .map(|q| q.to_string())
            .unwrap_or_else(|| "max".into());
        write(&dir.join("cpu.max"), &format!("{quota} {period}"))?;
    }
    if let Some(p) = res.pids {
        write(&dir.join("pids.max"), &p.to_string())?;
    }
    Ok(())
}

pub(super) fn oom_kills(cg: &Cgroup) -> u64 {
    cg.dir("memory")
        .and_then(|d| keyed(&d.join("memory.events"), "oom_kill"))
        .unwrap_or(0)
}

pub(super) fn stats(cg: &Cgroup) -> Stats {
    let Some(d) = cg.dir("") else {
        return Stats::default();
    };
    let usage = read_u64(&d.join("memory.current")).unwrap_or(0);
    let inactive = keyed(&d.join("memory.stat"), "inactive_file").unwrap_or(0);
    Stats {
        cpu_usage_ns: keyed(&d.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
        memory_usage: usage.saturating_sub(inactive),
        memory_limit: read_u64(&d.join("memory.max")).unwrap_or(0),
        pids: read_u64(&d.join("pids.current")).unwrap_or(0),
    }
}
