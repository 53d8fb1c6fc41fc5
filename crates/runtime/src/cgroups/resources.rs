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
    /// Device access rules (`linux.resources.devices`), applied in order over "deny all",
    /// followed by [`DEFAULT_ALLOWED_DEVICES`]. Not a limit: [`Resources::is_empty`]
    /// ignores them.
    pub devices: Vec<DeviceRule>,
}

/// One rule of the devices controller: allow or deny `access` (of `r`, `w`, `m`) to devices
/// of a kind (`a` all, `c` char, `b` block) and number (`None`: any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DeviceRule {
    pub allow: bool,
    pub kind: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: String,
}

impl DeviceRule {
    /// The line for `devices.allow` / `devices.deny`, e.g. `c 1:3 rwm` or `a`.
    pub fn line(&self) -> String {
        if self.kind == 'a' {
            return "a".into();
        }
        let n = |x: Option<i64>| x.map_or("*".to_string(), |v| v.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }

    fn allow(kind: char, major: Option<i64>, minor: Option<i64>, access: &str) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access: access.into(),
        }
    }
}

/// The devices every container may use whatever its spec says, as runc and Docker allow
/// them: creating any device node (`m`; opening it is what matters), /dev/null, zero, full,
/// random, urandom, tty, console, ptmx and the pty slaves, and /dev/net/tun.
pub(crate) fn default_allowed_devices() -> Vec<DeviceRule> {
    let mut out = vec![
        DeviceRule::allow('c', None, None, "m"),
        DeviceRule::allow('b', None, None, "m"),
    ];
    for (major, minor) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
        (10, Some(200)),
    ] {
        out.push(DeviceRule::allow('c', Some(major), minor, "rwm"));
    }
    out
}

/// Every rule a container's cgroup gets, in order: deny all, then `spec` (the spec's
/// `linux.resources.devices`), then [`default_allowed_devices`].
pub(crate) fn device_rules(spec: &[DeviceRule]) -> Vec<DeviceRule> {
    let mut out = vec![DeviceRule {
        allow: false,
        kind: 'a',
        major: None,
        minor: None,
        access: "rwm".into(),
    }];
    out.extend(spec.iter().cloned());
    out.extend(default_allowed_devices());
    out
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
        for d in r.devices().iter().flatten() {
            let kind = match d.typ() {
                None => 'a',
                Some(t) => match t.as_str() {
                    "a" => 'a',
                    "c" | "u" => 'c',
                    "b" => 'b',
                    other => {
                        return Err(format!("device rule type {other:?} is not one of a, c, b"))
                    }
                },
            };
            let access = d.access().clone().unwrap_or_else(|| "rwm".into());
            if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
                return Err(format!(
                    "device rule access {access:?} must be made of r, w and m"
                ));
            }
            out.devices.push(DeviceRule {
                allow: d.allow(),
                kind,
                major: d.major(),
                minor: d.minor(),
                access,
            });
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

    /// Whether no limit is set (device rules are not limits).
    pub fn is_empty(&self) -> bool {
        Resources {
            devices: Vec::new(),
            ..self.clone()
        } == Resources::default()
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
    fn device_rules_from_the_spec_then_the_defaults() {
        use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
        let rules = vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .access("rwm")
                .build()
                .expect("deny all"),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(1i64)
                .minor(11i64)
                .access("r")
                .build()
                .expect("kmsg"),
        ];
        let spec = LinuxResourcesBuilder::default()
            .devices(rules)
            .build()
            .expect("resources");
        let r = Resources::from_spec(Some(&spec)).expect("ok");
        let lines: Vec<(bool, String)> = r.devices.iter().map(|d| (d.allow, d.line())).collect();
        assert_eq!(
            lines,
            vec![(false, "a".to_string()), (true, "c 1:11 r".to_string())]
        );
        assert!(r.is_empty(), "device rules are not limits");
        let defaults: Vec<String> = default_allowed_devices().iter().map(|d| d.line()).collect();
        assert!(defaults.contains(&"c *:* m".to_string()));
        assert!(defaults.contains(&"c 1:3 rwm".to_string()));
        assert!(defaults.contains(&"c 136:* rwm".to_string()));
        assert!(!defaults
            .iter()
            .any(|l| l.starts_with("b ") && l.ends_with("rwm")));

        let bad = LinuxResourcesBuilder::default()
            .devices(vec![LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .access("rwx")
                .build()
                .expect("rule")])
            .build()
            .expect("resources");
        let e = Resources::from_spec(Some(&bad)).expect_err("x is no access");
        assert!(e.contains("r, w and m"), "{e}");
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
