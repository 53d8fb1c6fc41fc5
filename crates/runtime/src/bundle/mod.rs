//! OCI bundles: turning what `weft run` asks for ([`RunSpec`]) into `config.json`.

mod build;
mod defaults;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use oci_spec::runtime::Spec;

pub use build::build_spec;

/// Annotation carrying the overlayfs lower dirs of the rootfs, colon-joined, topmost first.
pub const ANNOTATION_OVERLAY_LOWER: &str = "io.weft.overlay.lower";
/// Annotation carrying the restart policy (`no`, `on-failure[:N]`, `always`), which the
/// shim applies.
pub const ANNOTATION_RESTART: &str = "io.weft.restart";
/// Annotation carrying the parent cgroup; the container's cgroup is `<parent>/<id>`
/// unless `linux.cgroupsPath` names it whole.
pub const ANNOTATION_CGROUP_PARENT: &str = "io.weft.cgroup.parent";
/// The parent cgroup when none is given.
pub const DEFAULT_CGROUP_PARENT: &str = "weft";
/// First host uid (and gid) of a user-namespaced container's range (`--userns`).
pub const USERNS_HOST_ID: u32 = 100_000;
/// Number of ids mapped into a user-namespaced container.
pub const USERNS_SIZE: u32 = 65_536;

/// `PATH` given to a process whose environment has none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How the container gets its network namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NsMode {
    /// A new, empty network namespace (the engine wires it between create and start).
    #[default]
    New,
    /// Join an existing one, e.g. `/proc/<pid>/ns/net` or `/run/netns/<name>`.
    Join(PathBuf),
}

/// What the shim does when the container's process exits (`--restart`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Restart after a non-zero exit, at most this many times (0: without limit).
    OnFailure(u32),
    /// Restart after any exit, unless the container was stopped or killed on purpose.
    Always,
}

impl RestartPolicy {
    /// Parses `no`, `on-failure`, `on-failure:N`, `always` (and `unless-stopped`, which
    /// behaves as `always` here since a stop is never undone by the shim).
    pub fn parse(s: &str) -> Result<RestartPolicy, String> {
        let bad =
            || format!("invalid restart policy {s:?}: use no, on-failure, on-failure:N or always");
        match s {
            "" | "no" => Ok(RestartPolicy::No),
            "always" | "unless-stopped" => Ok(RestartPolicy::Always),
            "on-failure" => Ok(RestartPolicy::OnFailure(0)),
            _ => match s.strip_prefix("on-failure:") {
                Some(n) => n.parse().map(RestartPolicy::OnFailure).map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }

    /// Whether the shim restarts a process that exited with `code` after `restarts`
    /// restarts.
    pub fn should_restart(&self, code: i32, restarts: u32) -> bool {
        match *self {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure(max) => code != 0 && (max == 0 || restarts < max),
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::OnFailure(0) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(n) => write!(f, "on-failure:{n}"),
        }
    }
}

/// What `weft run` asks for; turned into a config.json by [`Bundle::write`].
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    /// The process and its arguments; `args[0]` is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs; a default `PATH` is added when missing.
    pub env: Vec<String>,
    /// Working directory inside the container (empty means `/`).
    pub cwd: String,
    /// Hostname of the container (its own UTS namespace); empty leaves the kernel default.
    pub hostname: String,
    /// Read-only image layers, topmost FIRST and lowest LAST (overlayfs `lowerdir` order).
    /// Empty: `<bundle>/rootfs` is used as it is.
    pub rootfs_lower: Vec<PathBuf>,
    /// Network namespace.
    pub netns: NsMode,
    /// Give the container a terminal: its output goes through a pty the shim holds (and
    /// copies to the log); see [`crate::attach`].
    pub tty: bool,
    /// Labels, stored as annotations of the bundle.
    pub labels: BTreeMap<String, String>,
    /// Memory limit in bytes (`-m`); at least 6 MiB. The container gets no swap.
    pub memory: Option<i64>,
    /// CPUs the container may use (`--cpus 0.5`: half of one CPU), as a CFS quota.
    pub cpus: Option<f64>,
    /// Relative CPU weight (`--cpu-shares`, 2..=262144; 1024 is the default weight).
    pub cpu_shares: Option<u64>,
    /// Most processes (and threads) in the container (`--pids-limit`).
    pub pids_limit: Option<i64>,
    /// Parent cgroup, e.g. `weft/<lab>/<node>`; the container's is `<parent>/<id>`.
    /// `None`: [`DEFAULT_CGROUP_PARENT`].
    pub cgroup_parent: Option<String>,
    /// `uid[:gid]` or `name[:group]` looked up in the image's /etc/passwd and /etc/group;
    /// `None`: root.
    pub user: Option<String>,
    /// Mount the root file system read-only (`--read-only`).
    pub read_only: bool,
    /// Capabilities added to Docker's default set (`NET_ADMIN`, `CAP_NET_ADMIN`, `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities removed from it (`ALL` removes every one).
    pub cap_drop: Vec<String>,
    /// All capabilities, no seccomp filter, no masked paths, writable /sys.
    pub privileged: bool,
    /// Run in a user namespace: container root is host uid [`USERNS_HOST_ID`]
    /// ([`USERNS_SIZE`] ids mapped).
    pub userns: bool,
    /// What the shim does when the process exits.
    pub restart: RestartPolicy,
}

impl Default for RunSpec {
    fn default() -> Self {
        RunSpec {
            args: vec!["sh".into()],
            env: Vec::new(),
            cwd: "/".into(),
            hostname: String::new(),
            rootfs_lower: Vec::new(),
            netns: NsMode::New,
            tty: false,
            labels: BTreeMap::new(),
            memory: None,
            cpus: None,
            cpu_shares: None,
            pids_limit: None,
            cgroup_parent: None,
            user: None,
            read_only: false,
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            privileged: false,
            userns: false,
            restart: RestartPolicy::No,
        }
    }
}

/// An OCI bundle directory: `config.json`, `rootfs/` and, for overlay rootfs, `upper/`
/// and `work/` (the container's writable layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The bundle directory (absolute).
    pub dir: PathBuf,
}

impl Bundle {
    /// Writes `<dir>/config.json` for `spec` and creates `<dir>/rootfs`, `<dir>/upper` and
    /// `<dir>/work`. The directory is created if needed; an existing config.json is replaced.
    /// Bad input (a negative limit, an unknown user or capability) fails before anything
    /// is written.
    pub fn write(dir: &Path, spec: &RunSpec) -> anyhow::Result<Bundle> {
        // Without image layers the user is looked up in the bundle's own rootfs.
        let roots = if spec.rootfs_lower.is_empty() {
            vec![dir.join("rootfs")]
        } else {
            spec.rootfs_lower.clone()
        };
        let config = build::build_spec_in(spec, &roots)?;
        fs::create_dir_all(dir)
            .with_context(|| format!("create bundle directory {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("resolve bundle directory {}", dir.display()))?;
        for sub in ["rootfs", "upper", "work"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        }
        let path = dir.join("config.json");
        let text = serde_json::to_vec_pretty(&config).context("serialize config.json")?;
        fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        Ok(Bundle { dir })
    }

    /// Opens an existing bundle (any OCI bundle: a directory holding config.json).
    pub fn open(dir: &Path) -> anyhow::Result<Bundle> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("bundle directory {} not found", dir.display()))?;
        let b = Bundle { dir };
        if !b.config_path().is_file() {
            bail!("bundle {} has no config.json", b.dir.display());
        }
        Ok(b)
    }

    /// `<dir>/config.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Reads and parses `config.json`.
    pub fn spec(&self) -> anyhow::Result<Spec> {
        Spec::load(self.config_path())
            .with_context(|| format!("load {}", self.config_path().display()))
    }

    /// Removes the whole bundle directory (config, writable layer). Refuses when something
    /// is mounted on `rootfs` on this host (the runtime itself never leaves a mount there).
    pub fn remove(self) -> anyhow::Result<()> {
        let rootfs = self.dir.join("rootfs");
        if let (Ok(d), Ok(r)) = (fs::metadata(&self.dir), fs::metadata(&rootfs)) {
            if d.dev() != r.dev() {
                bail!(
                    "{} is a mount point; unmount it before removing the bundle",
                    rootfs.display()
                );
            }
        }
        fs::remove_dir_all(&self.dir)
            .with_context(|| format!("remove bundle {}", self.dir.display()))
    }
}

#[cfg(test)]
mod tests;
