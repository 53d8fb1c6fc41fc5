//! Control groups: one cgroup per container, v1 (one directory per controller) or v2
//! (unified), found through the mount table.
//!
//! The shim creates the cgroup and writes its limits before the container's init runs,
//! puts the init in it before releasing it, and `delete` removes it once the container's
//! processes are gone. Only processes of the container are ever moved or signalled.

mod bpf;
pub(crate) mod mountinfo;
mod resources;
mod v1;
mod v2;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub(crate) use resources::{Resources, CPU_PERIOD, MIN_MEMORY};

/// The v1 controllers a container gets a directory in.
pub(crate) const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "cpuacct", "pids", "devices"];

/// How long `remove` retries a busy cgroup (its last processes are still exiting).
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resource usage of a container, like `docker stats --no-stream`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// CPU time used by all its processes so far, in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory in use, in bytes, without the inactive page cache (as `docker stats`).
    pub memory_usage: u64,
    /// Memory limit in bytes (the host's memory when there is no limit).
    pub memory_limit: u64,
    /// Number of tasks (processes and threads).
    pub pids: u64,
}

/// Where the cgroup hierarchies are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// cgroup v1: (controller, mount point) pairs.
    V1(Vec<(String, PathBuf)>),
    /// cgroup v2: the unified hierarchy's mount point.
    V2(PathBuf),
}

impl Layout {
    /// The layout of this machine, `None` when no cgroup hierarchy can be seen.
    pub fn detect() -> Option<Layout> {
        Layout::from_mounts(&mountinfo::find())
    }

    /// v1 when any of our v1 controllers is mounted (hybrid machines keep their
    /// controllers on v1), else v2 when a unified hierarchy is mounted (preferring
    /// /sys/fs/cgroup itself).
    pub fn from_mounts(mounts: &[mountinfo::CgroupMount]) -> Option<Layout> {
        let mut v1 = Vec::new();
        for c in V1_CONTROLLERS {
            if let Some(m) = mounts
                .iter()
                .find(|m| !m.v2 && m.controllers.iter().any(|x| x == c))
            {
                v1.push((c.to_string(), m.mountpoint.clone()));
            }
        }
        if !v1.is_empty() {
            return Some(Layout::V1(v1));
        }
        let v2: Vec<&mountinfo::CgroupMount> = mounts.iter().filter(|m| m.v2).collect();
        v2.iter()
            .find(|m| m.mountpoint.ends_with("sys/fs/cgroup"))
            .or(v2.first())
            .map(|m| Layout::V2(m.mountpoint.clone()))
    }
}

/// Checks a cgroup path (`/weft/c1`, `weft/lab/node/c1`): relative components of
/// letters, digits, `_`, `.`, `-`, `:` and `@`, never `.` or `..`.
pub(crate) fn validate_path(path: &str) -> Result<(), String> {
    let rel = path.trim_matches('/');
    let ok = !rel.is_empty()
        && rel.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-:@".contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid cgroup path {path:?}: use names of letters, digits, '_', '.', '-' joined by '/'"
        ))
    }
}

/// One container's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cgroup {
    pub layout: Layout,
    /// Path inside each hierarchy, e.g. `/weft/c1`.
    pub path: String,
}

impl Cgroup {
    /// The cgroup at `path` on this machine's hierarchies.
    pub fn open(path: &str) -> Result<Cgroup, String> {
        validate_path(path)?;
        let layout = Layout::detect().ok_or_else(|| {
            "no cgroup file system is mounted (looked in /proc/self/mountinfo and /proc/1/mountinfo); mount cgroups or run without resource limits".to_string()
        })?;
        Ok(Cgroup {
            layout,
            path: path.to_string(),
        })
    }

    fn rel(&self) -> &str {
        self.path.trim_matches('/')
    }

    /// The directory of the cgroup under `controller` (v1) or the unified one (v2).
    pub fn dir(&self, controller: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1(c) => c
                .iter()
                .find(|(n, _)| n == controller)
                .map(|(_, m)| m.join(self.rel())),
            Layout::V2(m) => Some(m.join(self.rel())),
        }
    }

    /// The cgroup's directories, one per hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V1(c) => {
                let mut out: Vec<PathBuf> = Vec::new();
                for (_, m) in c {
                    let d = m.join(self.rel());
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
                out
            }
            Layout::V2(m) => vec![m.join(self.rel())],
        }
    }

    /// Creates the cgroup and writes `res` into it; on failure removes what it created.
    pub fn create(&self, res: &Resources) -> Result<(), String> {
        let r = match &self.layout {
            Layout::V1(_) => v1::create(self, res),
            Layout::V2(m) => v2::create(self, m, res),
        };
        if r.is_err() {
            let _ = self.remove();
        }
        r
    }

    /// The `cgroup.procs` files a process writes its pid (or 0) into to join.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// The files a single-threaded process writes `0` into to join the cgroup itself: on v1
    /// each directory's `tasks`, on v2 `cgroup.procs`.
    ///
    /// On v1 this is much cheaper than another process writing the pid into `cgroup.procs`:
    /// moving a whole thread group takes the kernel's global threadgroup lock for writing,
    /// which waits for an RCU grace period (about 4.5 ms on the 2-core test machine), while a
    /// thread moving itself needs only the cgroup mutex (0.4 ms). The process must be
    /// single-threaded, as a freshly cloned or forked child is, so that its one thread is
    /// all of it. The kernel checks permission with the credentials of whoever opened the
    /// file, so a child in a new user namespace may write through a file its parent opened.
    pub fn join_files(&self) -> Vec<PathBuf> {
        let name = match self.layout {
            Layout::V1(_) => "tasks",
            Layout::V2(_) => "cgroup.procs",
        };
        self.dirs().into_iter().map(|d| d.join(name)).collect()
    }

    /// Opens [`Cgroup::join_files`] for writing, for a child to inherit and write `0` into.
    pub fn open_join_files(&self) -> Result<Vec<std::fs::File>, String> {
        self.join_files()
            .into_iter()
            .map(|f| {
                std::fs::File::options()
                    .write(true)
                    .open(&f)
                    .map_err(|e| format!("open {}: {e}", f.display()))
            })
            .collect()
    }

    /// The processes in the cgroup (in any of its directories).
    pub fn pids(&self) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for f in self.procs_files() {
            for p in read(&f)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
            {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }

    /// Sends SIGKILL to every process in the cgroup (all of them the container's).
    pub fn kill_all(&self) {
        for p in self.pids() {
            // SAFETY: kill(2) of a process listed in the container's own cgroup.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }

    /// Removes the cgroup (retrying while its last processes exit), then its parents that
    /// are left empty. A cgroup that does not exist is already removed.
    pub fn remove(&self) -> Result<(), String> {
        let mounts: Vec<PathBuf> = match &self.layout {
            Layout::V1(c) => c.iter().map(|(_, m)| m.clone()).collect(),
            Layout::V2(m) => vec![m.clone()],
        };
        for d in self.dirs() {
            rmdir_retry(&d)?;
            let mount = mounts.iter().find(|m| d.starts_with(m));
            let mut parent = d.parent().map(Path::to_path_buf);
            while let Some(p) = parent {
                if mount.is_none_or(|m| p == *m || !p.starts_with(m)) {
                    break;
                }
                if std::fs::remove_dir(&p).is_err() {
                    break;
                }
                parent = p.parent().map(Path::to_path_buf);
            }
        }
        Ok(())
    }

    /// How many processes the kernel's OOM killer has killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        match &self.layout {
            Layout::V1(_) => v1::oom_kills(self),
            Layout::V2(_) => v2::oom_kills(self),
        }
    }

    /// Current usage.
    pub fn stats(&self) -> Stats {
        let mut s = match &self.layout {
            Layout::V1(_) => v1::stats(self),
            Layout::V2(_) => v2::stats(self),
        };
        if let Some(total) = host_memory() {
            if s.memory_limit == 0 || s.memory_limit > total {
                s.memory_limit = total;
            }
        }
        s
    }
}

/// Removes a cgroup directory, retrying on EBUSY for a while.
fn rmdir_retry(d: &Path) -> Result<(), String> {
    let deadline = Instant::now() + REMOVE_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        match std::fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                // Its last processes are still exiting: wake when one has, not after a
                // fixed sleep (an exiting container init often holds the rmdir up briefly).
                let pid = read(&d.join("cgroup.procs"))
                    .and_then(|p| p.lines().find_map(|l| l.trim().parse::<i32>().ok()));
                match pid {
                    Some(pid) => crate::wake::wait_exit(pid, pause),
                    None => std::thread::sleep(Duration::from_millis(1)),
                }
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(format!(
                    "remove cgroup {}: {e}; kill the processes listed in its cgroup.procs and delete again",
                    d.display()
                ))
            }
        }
    }
}

/// Creates `d` and its parents, retrying when a concurrent removal of an empty parent
/// races with it.
pub(crate) fn mkdir_all(d: &Path) -> Result<(), String> {
    let mut last = None;
    for _ in 0..5 {
        match std::fs::create_dir_all(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => last = Some(e),
            Err(e) => return Err(format!("create cgroup {}: {e}", d.display())),
        }
    }
    Err(format!(
        "create cgroup {}: {}",
        d.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Writes a cgroup file.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("write {value:?} to {}: {e}", path.display()))
}

/// Reads a cgroup file.
pub(crate) fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A single number from a cgroup file (`max` is `u64::MAX`).
pub(crate) fn read_u64(path: &Path) -> Option<u64> {
    let s = read(path)?;
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

/// The value of `key` in a flat keyed file (`key value` lines).
pub(crate) fn keyed(path: &Path, key: &str) -> Option<u64> {
    read(path)?.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The host's memory (MemTotal), in bytes.
fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests;
