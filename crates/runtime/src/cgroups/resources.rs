//! The resource limits of a container, taken from `linux.resources` and checked.

use oci_spec::runtime::LinuxResources;

/// Docker's smallest memory limit.
pub(crate) const MIN_MEMORY: i64 = 6 << 20;
/// The CFS period used for `--cpus`, in microseconds (as Docker).
pub(crate) const CPU_PERIOD: u64 = 100_000;

/// Limits to write into a container's cgroup; `None` leaves the kernel default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Memory plus swap limit in bytes (OCI `memory.swap`); -1 is unlimited.
    pub memory_swap: Option<i64>,
    /// CFS quota in microseconds per period; -1 is unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds.
    pub cpu_period: Option<u64>,
    /// Relative CPU weight (cgroup v1 shares, 2..=262144).
    pub cpu_shares: Option<u64>,
    /// Most tasks (processes and threads); `None` is unlimited.
    pub pids: Option<i64>,
}

impl Resources {
    /// Reads and checks `linux.resources` (`-1` means unlimited where OCI allows it).
    pub fn from_spec(r: Option<&LinuxResources>) -> Result<Resources, String> {
        let mut out = Resources::default();
        let Some(r) = r else { return Ok(out) };
        if let Some(m) = r.memory() {
            match m.limit() {
                None | Some(-1) => {}
                Some(l) if l <= 0 => {
                    return Err(format!(
                        "memory limit {l} is not positive; give a size in bytes (at least 6 MiB), or -1 for none"
                    ))
                }
                Some(l) if l < MIN_MEMORY => {
                    return Err(format!(
                        "memory limit {l} bytes is below the minimum of 6 MiB"
                    ))
                }
                Some(l) => out.memory = Some(l),
            }
            match m.swap() {
                None | Some(-1) => out.memory_swap = m.swap(),
                Some(s) if s <= 0 => return Err(format!("memory+swap limit {s} is not positive")),
                Some(s) => {
                    if out.memory.is_some_and(|l| s < l) {
                        return Err(format!(
                            "memory+swap limit {s} is below the memory limit {}",
                            out.memory.unwrap_or(0)
                        ));
                    }
                    out.memory_swap = Some(s);
                }
            }
        }
        if let Some(c) = r.cpu() {
            match c.quota() {
                None | Some(-1) => {}
                Some(q) if q < 1000 => {
                    return Err(format!(
                        "cpu quota {q}us is below the kernel's minimum of 1000us (--cpus 0.01)"
                    ))
                }
                Some(q) => out.cpu_quota = Some(q),
            }
            match c.period() {
                None => {}
                Some(p) if !(1000..=1_000_000).contains(&p) => {
                    return Err(format!(
                        "cpu period {p}us is outside 1000..=1000000 microseconds"
                    ))
                }
                Some(p) => out.cpu_period = Some(p),
            }
            match c.shares() {
                None => {}
                Some(s) if !(2..=262_144).contains(&s) => {
                    return Err(format!("cpu shares {s} are outside 2..=262144"))
                }
                Some(s) => out.cpu_shares = Some(s),
            }
        }
        if let Some(p) = r.pids() {
            match p.limit() {
                -1 => {}
                l if l <= 0 => {
                    return Err(format!(
                        "pids limit {l} is not positive; give the most processes the container may have, or -1 for none"
                    ))
                }
                l => out.pids = Some(l),
            }
        }
        Ok(out)
    }

    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    fn res(mem: Option<i64>, quota: Option<i64>, pids: Option<i64>) -> LinuxResources {
        let mut b = LinuxResourcesBuilder::default();
        if let Some(m) = mem {
            b = b.memory(LinuxMemoryBuilder::default().limit(m).build().expect("mem"));
        }
        if let Some(q) = quota {
            b = b.cpu(
                LinuxCpuBuilder::default()
                    .quota(q)
                    .period(100_000u64)
                    .build()
                    .expect("cpu"),
            );
        }
        if let Some(p) = pids {
            b = b.pids(LinuxPidsBuilder::default().limit(p).build().expect("pids"));
        }
        b.build().expect("resources")
    }

    #[test]
    fn reads_limits() {
        let r =
            Resources::from_spec(Some(&res(Some(64 << 20), Some(50_000), Some(20)))).expect("ok");
        assert_eq!(r.memory, Some(64 << 20));
        assert_eq!(r.cpu_quota, Some(50_000));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.pids, Some(20));
        assert!(Resources::from_spec(None).expect("none").is_empty());
        let r = Resources::from_spec(Some(&res(Some(-1), Some(-1), Some(-1)))).expect("unlimited");
        assert_eq!((r.memory, r.cpu_quota, r.pids), (None, None, None));
    }

    #[test]
    fn rejects_bad_limits() {
        for (r, word) in [
            (res(Some(0), None, None), "memory"),
            (res(Some(-5), None, None), "memory"),
            (res(Some(1 << 20), None, None), "6 MiB"),
            (res(None, Some(10), None), "cpu quota"),
            (res(None, None, Some(0)), "pids"),
            (res(None, None, Some(-3)), "pids"),
        ] {
            let e = Resources::from_spec(Some(&r)).expect_err(word);
            assert!(e.contains(word), "{e}");
        }
    }
}
