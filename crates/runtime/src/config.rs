//! What the container's init needs, derived from an OCI spec before the clone (pure code,
//! so that everything that can be rejected is rejected before any process exists).

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Spec};

use crate::bundle::{ANNOTATION_OVERLAY_LOWER, DEFAULT_PATH};

/// The overlay rootfs of a bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Overlay {
    /// Lower dirs, topmost first.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// One entry of `mounts`, with its options parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountEntry {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub fstype: Option<String>,
    /// For bind mounts: a host path (made absolute against the bundle).
    pub source: Option<PathBuf>,
    /// Flags for mount(2), without propagation flags.
    pub flags: MsFlags,
    /// Propagation flags to apply after the mount (MS_PRIVATE, MS_SLAVE, ...).
    pub propagation: MsFlags,
    /// Comma-joined filesystem-specific options.
    pub data: Option<String>,
}

impl MountEntry {
    /// A bind mount (`type: bind` or a `bind`/`rbind` option).
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// A device node to create in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Device {
    /// Absolute path inside the container.
    pub path: PathBuf,
    /// `'c'` (character), `'b'` (block) or `'p'` (fifo).
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
}

/// The process to exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProcessConfig {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub no_new_privileges: bool,
}

/// Everything the container's init does, decided in advance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InitConfig {
    pub bundle: PathBuf,
    /// Absolute path of the rootfs directory.
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    pub overlay: Option<Overlay>,
    pub mounts: Vec<MountEntry>,
    pub devices: Vec<Device>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub hostname: Option<String>,
    /// Namespaces to create (CLONE_NEW* flags).
    pub clone_flags: CloneFlags,
    /// Namespaces to join: (type, path). A pid namespace is joined by the shim before the
    /// clone, all others by the init right after it.
    pub join: Vec<(CloneFlags, PathBuf)>,
    pub process: ProcessConfig,
}

/// The devices every container gets in its /dev.
fn default_devices() -> Vec<Device> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| Device {
        path: p.into(),
        kind: 'c',
        major,
        minor,
        mode: 0o666,
    })
    .collect()
}

impl InitConfig {
    /// Derives the init's work from `spec` of the bundle at `bundle` (absolute).
    pub fn from_spec(spec: &Spec, bundle: &Path) -> Result<InitConfig, String> {
        let root = spec.root().as_ref().ok_or("config.json has no root")?;
        let rootfs = bundle.join(root.path());
        let process = spec
            .process()
            .as_ref()
            .ok_or("config.json has no process")?;
        if process.terminal().unwrap_or(false) {
            return Err(
                "terminal (tty) containers are not supported by this runtime yet; run without a tty"
                    .into(),
            );
        }
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() || args[0].is_empty() {
            return Err("process.args is empty: nothing to run".into());
        }
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(DEFAULT_PATH.to_string());
        }
        let cwd = process.cwd().clone();
        if !cwd.is_absolute() {
            return Err(format!("process.cwd {} must be absolute", cwd.display()));
        }
        let user = process.user();

        let overlay = spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_OVERLAY_LOWER))
            .filter(|s| !s.is_empty())
            .map(|s| Overlay {
                lower: s.split(':').map(PathBuf::from).collect(),
                upper: bundle.join("upper"),
                work: bundle.join("work"),
            });

        let linux = spec.linux().as_ref();
        let mut clone_flags = CloneFlags::empty();
        let mut join = Vec::new();
        let mut has_mount_ns = false;
        for ns in linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            let flag = match ns.typ() {
                LinuxNamespaceType::Mount => {
                    has_mount_ns = true;
                    CloneFlags::CLONE_NEWNS
                }
                LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
                LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
                LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
                LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
                LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
                other => {
                    return Err(format!(
                        "namespace type {other} is not supported by this runtime yet"
                    ))
                }
            };
            match ns.path() {
                Some(p) => join.push((flag, p.clone())),
                None => clone_flags |= flag,
            }
        }
        if !has_mount_ns || join.iter().any(|(f, _)| *f == CloneFlags::CLONE_NEWNS) {
            return Err(
                "a new mount namespace is required (the rootfs is mounted inside it)".into(),
            );
        }

        let mut mounts = Vec::new();
        for m in spec.mounts().iter().flatten() {
            let typ = m.typ().clone();
            if matches!(typ.as_deref(), Some("cgroup") | Some("cgroup2")) {
                // cgroups come with the cgroup support of the runtime.
                continue;
            }
            let dest = m.destination();
            if !dest.is_absolute() {
                return Err(format!(
                    "mount destination {} must be absolute",
                    dest.display()
                ));
            }
            let opts = m.options().clone().unwrap_or_default();
            let mut parsed = parse_options(&opts);
            if typ.as_deref() == Some("bind") {
                parsed.0 |= MsFlags::MS_BIND;
            }
            let (flags, propagation, data) = parsed;
            let source = m.source().as_ref().map(|s| {
                if flags.contains(MsFlags::MS_BIND) && s.is_relative() {
                    bundle.join(s)
                } else {
                    s.clone()
                }
            });
            mounts.push(MountEntry {
                destination: dest.clone(),
                fstype: typ.filter(|t| t != "bind"),
                source,
                flags,
                propagation,
                data,
            });
        }

        let mut devices = default_devices();
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            let kind = match d.typ() {
                LinuxDeviceType::C | LinuxDeviceType::U => 'c',
                LinuxDeviceType::B => 'b',
                LinuxDeviceType::P => 'p',
                LinuxDeviceType::A => {
                    return Err(format!("device {} has type 'a'", d.path().display()))
                }
            };
            devices.retain(|x| x.path != *d.path());
            devices.push(Device {
                path: d.path().clone(),
                kind,
                major: d.major() as u64,
                minor: d.minor() as u64,
                mode: d.file_mode().unwrap_or(0o666),
            });
        }

        let paths = |v: Option<&Vec<String>>| -> Vec<PathBuf> {
            v.into_iter().flatten().map(PathBuf::from).collect()
        };
        Ok(InitConfig {
            bundle: bundle.to_path_buf(),
            rootfs,
            root_readonly: root.readonly().unwrap_or(false),
            overlay,
            mounts,
            devices,
            masked_paths: paths(linux.and_then(|l| l.masked_paths().as_ref())),
            readonly_paths: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
            hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
            clone_flags,
            join,
            process: ProcessConfig {
                args,
                env,
                cwd,
                uid: user.uid(),
                gid: user.gid(),
                additional_gids: user.additional_gids().clone().unwrap_or_default(),
                no_new_privileges: process.no_new_privileges().unwrap_or(false),
            },
        })
    }
}

/// Splits fstab-style options into mount flags, propagation flags and data.
pub(crate) fn parse_options(opts: &[String]) -> (MsFlags, MsFlags, Option<String>) {
    let mut flags = MsFlags::empty();
    let mut prop = MsFlags::empty();
    let mut data = Vec::new();
    for o in opts {
        let (set, clear, p) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, MsFlags::empty()),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, MsFlags::empty()),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty(), MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty(), MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty(), MsFlags::empty()),
            "rbind" => (
                MsFlags::MS_BIND | MsFlags::MS_REC,
                MsFlags::empty(),
                MsFlags::empty(),
            ),
            "private" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_PRIVATE),
            "rprivate" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            ),
            "shared" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SHARED),
            "rshared" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
            ),
            "slave" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SLAVE),
            "rslave" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
            ),
            "unbindable" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_UNBINDABLE),
            "runbindable" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            ),
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) & !clear;
        prop |= p;
    }
    let data = (!data.is_empty()).then(|| data.join(","));
    (flags, prop, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{build_spec, NsMode, RunSpec};

    fn run_spec() -> RunSpec {
        RunSpec {
            args: vec!["sleep".into(), "1".into()],
            hostname: "h".into(),
            rootfs_lower: vec!["/l/top".into(), "/l/base".into()],
            ..RunSpec::default()
        }
    }

    #[test]
    fn from_weft_bundle() {
        let spec = build_spec(&run_spec()).expect("spec");
        let cfg = InitConfig::from_spec(&spec, Path::new("/b")).expect("cfg");
        assert_eq!(cfg.rootfs, PathBuf::from("/b/rootfs"));
        assert_eq!(
            cfg.overlay,
            Some(Overlay {
                lower: vec!["/l/top".into(), "/l/base".into()],
                upper: "/b/upper".into(),
                work: "/b/work".into(),
            })
        );
        assert_eq!(
            cfg.clone_flags,
            CloneFlags::CLONE_NEWPID
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWNET
        );
        assert!(cfg.join.is_empty());
        assert_eq!(cfg.hostname.as_deref(), Some("h"));
        assert_eq!(cfg.mounts.len(), 6);
        let sys = &cfg.mounts[5];
        assert!(sys.flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
        assert_eq!(
            cfg.mounts[2].data.as_deref(),
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
        );
        assert_eq!(cfg.devices.len(), 6);
        assert!(cfg.masked_paths.contains(&PathBuf::from("/proc/kcore")));
    }

    #[test]
    fn join_netns() {
        let mut rs = run_spec();
        rs.netns = NsMode::Join("/run/netns/x".into());
        let spec = build_spec(&rs).expect("spec");
        let cfg = InitConfig::from_spec(&spec, Path::new("/b")).expect("cfg");
        assert!(!cfg.clone_flags.contains(CloneFlags::CLONE_NEWNET));
        assert_eq!(
            cfg.join,
            vec![(CloneFlags::CLONE_NEWNET, PathBuf::from("/run/netns/x"))]
        );
    }

    #[test]
    fn rejects_tty_and_empty_args() {
        let mut rs = run_spec();
        rs.tty = true;
        let spec = build_spec(&rs).expect("spec");
        let err = InitConfig::from_spec(&spec, Path::new("/b")).expect_err("tty");
        assert!(err.contains("tty"), "{err}");
    }

    #[test]
    fn options() {
        let o = |v: &[&str]| parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let (f, p, d) = o(&["rbind", "ro", "nosuid", "rprivate", "size=1k", "mode=755"]);
        assert_eq!(
            f,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert_eq!(p, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(d.as_deref(), Some("size=1k,mode=755"));
        let (f, _, d) = o(&["ro", "rw"]);
        assert_eq!(f, MsFlags::empty());
        assert_eq!(d, None);
    }
}
