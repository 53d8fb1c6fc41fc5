//! Finding the cgroup hierarchies in /proc/<pid>/mountinfo.

use std::path::{Path, PathBuf};

/// A cgroup file system mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CgroupMount {
    /// Where it is mounted (as seen by the reader of the mountinfo, with any prefix).
    pub mountpoint: PathBuf,
    /// `true` for cgroup2.
    pub v2: bool,
    /// v1 controllers of the hierarchy (super options such as `memory`, `cpu`).
    pub controllers: Vec<String>,
}

/// Undoes the octal escapes of mountinfo paths (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let d = |k: usize| u32::from(b[i + k] - b'0');
            out.push((d(1) * 64 + d(2) * 8 + d(3)) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup mounts listed in a mountinfo text, mount points prefixed with `prefix`.
pub(crate) fn parse(text: &str, prefix: &Path) -> Vec<CgroupMount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(mp), Some(fstype)) = (left.get(4), right.first()) else {
            continue;
        };
        let v2 = match *fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            right
                .get(2)
                .map(|o| {
                    o.split(',')
                        .filter(|x| !matches!(*x, "rw" | "ro") && !x.contains('='))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mp = unescape(mp);
        let rel = mp.trim_start_matches('/');
        out.push(CgroupMount {
            mountpoint: if prefix.as_os_str().is_empty() {
                PathBuf::from(&mp)
            } else {
                prefix.join(rel)
            },
            v2,
            controllers,
        });
    }
    out
}

/// The cgroup mounts of this process's mount namespace; when it has none (e.g. a lab node
/// that mounted a fresh /sys), those of pid 1 reached through `/proc/1/root`, if this
/// process may look there.
pub(crate) fn find() -> Vec<CgroupMount> {
    let own = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = parse(&own, Path::new(""));
    if !mounts.is_empty() {
        return mounts;
    }
    let init = std::fs::read_to_string("/proc/1/mountinfo").unwrap_or_default();
    parse(&init, Path::new("/proc/1/root"))
        .into_iter()
        .filter(|m| std::fs::metadata(m.mountpoint.join("cgroup.procs")).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
27 26 0:24 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
28 26 0:25 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
29 26 0:26 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
30 26 0:27 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
31 26 0:28 / /mnt/with\\040space rw - cgroup cgroup rw,pids
";

    #[test]
    fn parses_v1_and_v2_mounts() {
        let m = parse(SAMPLE, Path::new(""));
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].mountpoint, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(m[1].controllers, ["memory"]);
        assert!(m[2].v2);
        assert_eq!(m[3].controllers, ["xattr"]);
        assert_eq!(m[4].mountpoint, PathBuf::from("/mnt/with space"));
        let p = parse(SAMPLE, Path::new("/proc/1/root"));
        assert_eq!(
            p[1].mountpoint,
            PathBuf::from("/proc/1/root/sys/fs/cgroup/memory")
        );
    }
}
