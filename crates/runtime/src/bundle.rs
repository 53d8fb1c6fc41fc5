//! OCI bundles: turning what `weft run` asks for ([`RunSpec`]) into `config.json`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

/// Annotation carrying the overlayfs lower dirs of the rootfs, colon-joined, topmost first.
pub const ANNOTATION_OVERLAY_LOWER: &str = "io.weft.overlay.lower";

/// `PATH` given to a process whose environment has none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Paths masked inside the container (as Docker does).
const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
];

/// Paths made read-only inside the container (as Docker does).
const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// How the container gets its network namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NsMode {
    /// A new, empty network namespace (the engine wires it between create and start).
    #[default]
    New,
    /// Join an existing one, e.g. `/proc/<pid>/ns/net` or `/run/netns/<name>`.
    Join(PathBuf),
}

/// What `weft run` asks for; turned into a config.json by [`Bundle::write`].
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// Allocate a terminal (not supported by this runtime yet: create fails).
    pub tty: bool,
    /// Labels, stored as annotations of the bundle.
    pub labels: BTreeMap<String, String>,
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
    pub fn write(dir: &Path, spec: &RunSpec) -> anyhow::Result<Bundle> {
        let config = build_spec(spec)?;
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

/// Builds the OCI runtime spec of a [`RunSpec`] (pure: touches no file).
pub fn build_spec(spec: &RunSpec) -> anyhow::Result<Spec> {
    if spec.args.is_empty() || spec.args[0].is_empty() {
        bail!("no command given: a container needs at least one argument");
    }
    let mut annotations = HashMap::new();
    for (k, v) in &spec.labels {
        if k.is_empty() || k.starts_with("io.weft.") {
            bail!("label key {k:?} is empty or uses the reserved prefix io.weft.");
        }
        annotations.insert(k.clone(), v.clone());
    }
    if !spec.rootfs_lower.is_empty() {
        let mut lowers = Vec::new();
        for l in &spec.rootfs_lower {
            let s = l
                .to_str()
                .filter(|s| l.is_absolute() && !s.contains([':', ',']));
            let Some(s) = s else {
                bail!(
                    "image layer {} must be an absolute UTF-8 path without ':' or ','",
                    l.display()
                );
            };
            lowers.push(s.to_string());
        }
        annotations.insert(ANNOTATION_OVERLAY_LOWER.to_string(), lowers.join(":"));
    }

    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    if !cwd.starts_with('/') {
        bail!("working directory {cwd:?} must be an absolute path");
    }
    let process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(UserBuilder::default().uid(0u32).gid(0u32).build()?)
        .args(spec.args.clone())
        .env(env)
        .cwd(cwd)
        .build()?;

    let mut namespaces = vec![
        ns(LinuxNamespaceType::Pid, None)?,
        ns(LinuxNamespaceType::Ipc, None)?,
        ns(LinuxNamespaceType::Uts, None)?,
        ns(LinuxNamespaceType::Mount, None)?,
    ];
    namespaces.push(match &spec.netns {
        NsMode::New => ns(LinuxNamespaceType::Network, None)?,
        NsMode::Join(p) => ns(LinuxNamespaceType::Network, Some(p))?,
    });
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .build()?;

    let mut builder = SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()?,
        )
        .mounts(default_mounts()?)
        .linux(linux)
        .annotations(annotations);
    if !spec.hostname.is_empty() {
        builder = builder.hostname(spec.hostname.clone());
    }
    Ok(builder.build()?)
}

fn ns(typ: LinuxNamespaceType, path: Option<&PathBuf>) -> anyhow::Result<LinuxNamespace> {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    Ok(match path {
        Some(p) => b.path(p.clone()).build()?,
        None => b.build()?,
    })
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> anyhow::Result<Mount> {
    Ok(MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// The mounts every weft container gets, in order.
fn default_mounts() -> anyhow::Result<Vec<Mount>> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec {
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["A=1".into()],
            cwd: "/tmp".into(),
            hostname: "c1".into(),
            rootfs_lower: vec!["/layers/top".into(), "/layers/base".into()],
            netns: NsMode::New,
            tty: false,
            labels: [("app".to_string(), "web".to_string())].into(),
        }
    }

    fn json(s: &RunSpec) -> serde_json::Value {
        serde_json::to_value(build_spec(s).expect("build")).expect("json")
    }

    #[test]
    fn config_process_root_hostname() {
        let v = json(&spec());
        assert_eq!(
            v["process"]["args"],
            serde_json::json!(["sh", "-c", "echo hi"])
        );
        assert_eq!(v["process"]["env"][0], DEFAULT_PATH);
        assert_eq!(v["process"]["env"][1], "A=1");
        assert_eq!(v["process"]["cwd"], "/tmp");
        assert_eq!(v["process"]["user"]["uid"], 0);
        assert_eq!(v["root"]["path"], "rootfs");
        assert_eq!(v["root"]["readonly"], false);
        assert_eq!(v["hostname"], "c1");
    }

    #[test]
    fn config_namespaces() {
        let v = json(&spec());
        let types: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|n| n["type"].as_str().expect("type"))
            .collect();
        assert_eq!(types, ["pid", "ipc", "uts", "mount", "network"]);
        assert!(v["linux"]["namespaces"][4].get("path").is_none());

        let mut s = spec();
        s.netns = NsMode::Join("/proc/42/ns/net".into());
        let v = json(&s);
        assert_eq!(v["linux"]["namespaces"][4]["type"], "network");
        assert_eq!(v["linux"]["namespaces"][4]["path"], "/proc/42/ns/net");
    }

    #[test]
    fn config_mounts() {
        let v = json(&spec());
        let mounts = v["mounts"].as_array().expect("mounts");
        let dests: Vec<&str> = mounts
            .iter()
            .map(|m| m["destination"].as_str().expect("dest"))
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys"
            ]
        );
        assert_eq!(mounts[1]["type"], "tmpfs");
        assert_eq!(mounts[2]["type"], "devpts");
        assert!(mounts[2]["options"]
            .as_array()
            .expect("opts")
            .contains(&"newinstance".into()));
        assert_eq!(mounts[5]["type"], "sysfs");
        assert!(mounts[5]["options"]
            .as_array()
            .expect("opts")
            .contains(&"ro".into()));
    }

    #[test]
    fn config_annotations() {
        let v = json(&spec());
        assert_eq!(
            v["annotations"][ANNOTATION_OVERLAY_LOWER],
            "/layers/top:/layers/base"
        );
        assert_eq!(v["annotations"]["app"], "web");

        let mut s = spec();
        s.rootfs_lower.clear();
        assert!(json(&s)["annotations"]
            .get(ANNOTATION_OVERLAY_LOWER)
            .is_none());
    }

    #[test]
    fn rejects_bad_input() {
        let mut s = spec();
        s.rootfs_lower = vec!["/a:b".into()];
        assert!(build_spec(&s).is_err());
        let mut s = spec();
        s.rootfs_lower = vec!["relative".into()];
        assert!(build_spec(&s).is_err());
        let mut s = spec();
        s.args.clear();
        assert!(build_spec(&s).is_err());
        let mut s = spec();
        s.labels.insert("io.weft.overlay.lower".into(), "x".into());
        assert!(build_spec(&s).is_err());
    }

    #[test]
    fn write_creates_dirs_and_round_trips() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("b");
        let b = Bundle::write(&dir, &spec()).expect("write");
        for sub in ["rootfs", "upper", "work"] {
            assert!(b.dir.join(sub).is_dir(), "{sub}");
        }
        let loaded = Bundle::open(&dir).expect("open").spec().expect("load");
        assert_eq!(loaded, build_spec(&spec()).expect("build"));
        b.remove().expect("remove");
        assert!(!dir.exists());
    }
}
