//! cgroup v1: a directory per controller.

use super::{keyed, mkdir_all, read_u64, write, Cgroup, Resources, Stats, CPU_PERIOD};

/// The controller a limit needs, for a clear error when it is not mounted.
fn need(cg: &Cgroup, controller: &str, what: &str) -> Result<std::path::PathBuf, String> {
    cg.dir(controller).ok_or_else(|| {
        format!("{what} needs the cgroup v1 controller {controller:?}, which is not mounted")
    })
}

pub(super) fn create(cg: &Cgroup, res: &Resources) -> Result<(), String> {
    // Check before creating anything.
    if res.memory.is_some() || res.memory_swap.is_some() {
        need(cg, "memory", "a memory limit")?;
    }
    if res.cpu_quota.is_some() || res.cpu_shares.is_some() || res.cpu_period.is_some() {
        need(cg, "cpu", "a CPU limit")?;
    }
    if res.pids.is_some() {
        need(cg, "pids", "a pids limit")?;
    }
    for d in cg.dirs() {
        mkdir_all(&d)?;
    }
    if let Some(d) = cg.dir("memory") {
        if let Some(m) = res.memory {
            write(&d.join("memory.limit_in_bytes"), &m.to_string())?;
            // Without a separate swap limit the container gets no swap (memory+swap =
            // memory), so that going over the limit is an OOM kill, not swapping.
            let memsw = d.join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                let v = res.memory_swap.unwrap_or(m);
                write(&memsw, &v.to_string())?;
            }
        }
    }
    if let Some(d) = cg.dir("cpu") {
        if let Some(s) = res.cpu_shares {
            write(&d.join("cpu.shares"), &s.to_string())?;
        }
        if let Some(q) = res.cpu_quota {
            let period = res.cpu_period.unwrap_or(CPU_PERIOD);
            write(&d.join("cpu.cfs_period_us"), &period.to_string())?;
            write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
        } else if let Some(p) = res.cpu_period {
            write(&d.join("cpu.cfs_period_us"), &p.to_string())?;
        }
    }
    if let (Some(d), Some(p)) = (cg.dir("pids"), res.pids) {
        write(&d.join("pids.max"), &p.to_string())?;
    }
    if let Some(d) = cg.dir("devices") {
        // Deny everything, then the spec's rules in order, then the devices every
        // container may use (as runc and Docker do): one rule per write, through one open
        // file each for allow and deny.
        let open = |name: &str| {
            let p = d.join(name);
            match std::fs::File::options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&p)
            {
                Ok(f) => Ok((p, f)),
                Err(e) => Err(format!("open {}: {e}", p.display())),
            }
        };
        let (mut allow, mut deny) = (open("devices.allow")?, open("devices.deny")?);
        for r in super::resources::device_rules(&res.devices) {
            let (path, f) = if r.allow { &mut allow } else { &mut deny };
            let line = r.line();
            std::io::Write::write_all(f, line.as_bytes())
                .map_err(|e| format!("write {line:?} to {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

pub(super) fn oom_kills(cg: &Cgroup) -> u64 {
    cg.dir("memory")
        .and_then(|d| keyed(&d.join("memory.oom_control"), "oom_kill"))
        .unwrap_or(0)
}

pub(super) fn stats(cg: &Cgroup) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = cg.dir("cpuacct") {
        s.cpu_usage_ns = read_u64(&d.join("cpuacct.usage")).unwrap_or(0);
    }
    if let Some(d) = cg.dir("memory") {
        let usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
        let inactive = keyed(&d.join("memory.stat"), "total_inactive_file").unwrap_or(0);
        s.memory_usage = usage.saturating_sub(inactive);
        s.memory_limit = read_u64(&d.join("memory.limit_in_bytes")).unwrap_or(0);
    }
    if let Some(d) = cg.dir("pids") {
        s.pids = read_u64(&d.join("pids.current")).unwrap_or(0);
    }
    s
}
