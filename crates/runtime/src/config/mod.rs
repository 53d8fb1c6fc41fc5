//! What the container's init needs, derived from an OCI spec before the clone (pure code,
//! so that everything that can be rejected is rejected before any process exists).

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::bundle::{
    RestartPolicy, ANNOTATION_CGROUP_PARENT, ANNOTATION_OVERLAY_LOWER, ANNOTATION_RESTART,
    DEFAULT_CGROUP_PARENT, DEFAULT_PATH,
};
use crate::cgroups::{self, Resources};
use crate::security::Security;

mod options;
pub(crate) mod rlimits;
pub(crate) use options::parse_options;

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
    /// User, capabilities, no_new_privs, seccomp.
    pub security: Security,
    /// `process.rlimits`, set just before the capabilities are dropped.
    pub rlimits: Vec<rlimits::Rlimit>,
}

/// The uid and gid maps of a user-namespaced container, as written to
/// `/proc/<pid>/{uid,gid}_map`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IdMaps {
    pub uid_map: String,
    pub gid_map: String,
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
    /// Namespaces to join: (type, path), all joined by the shim before the clone (so that
    /// the init is born in them, whatever user namespace it gets).
    pub join: Vec<(CloneFlags, PathBuf)>,
    pub process: ProcessConfig,
    /// The process gets a pty as its terminal.
    pub tty: bool,
    /// Id maps when the container has its own user namespace.
    pub userns: Option<IdMaps>,
    /// The container's cgroup path (e.g. `/weft/c1`) and its limits.
    pub cgroup_path: String,
    pub resources: Resources,
    /// What the shim does when the process exits.
    pub restart: RestartPolicy,
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
    /// Derives the init's work from `spec` of the bundle at `bundle` (absolute), for
    /// container `id`.
    pub fn from_spec(spec: &Spec, bundle: &Path, id: &str) -> Result<InitConfig, String> {
        let root = spec.root().as_ref().ok_or("config.json has no root")?;
        let rootfs = bundle.join(root.path());
        let process = spec
            .process()
            .as_ref()
            .ok_or("config.json has no process")?;
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
                LinuxNamespaceType::User if ns.path().is_some() => {
                    return Err("joining an existing user namespace is not supported by this runtime; let it create one".into())
                }
                LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
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
        let userns = if clone_flags.contains(CloneFlags::CLONE_NEWUSER) {
            let maps = |m: Option<&Vec<LinuxIdMapping>>, what: &str| -> Result<String, String> {
                let m = m.filter(|m| !m.is_empty()).ok_or_else(|| {
                    format!("a user namespace needs linux.{what}Mappings (e.g. 0 100000 65536)")
                })?;
                Ok(m.iter()
                    .map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size()))
                    .collect())
            };
            Some(IdMaps {
                uid_map: maps(linux.and_then(|l| l.uid_mappings().as_ref()), "uid")?,
                gid_map: maps(linux.and_then(|l| l.gid_mappings().as_ref()), "gid")?,
            })
        } else {
            None
        };
        let annotations = spec.annotations().as_ref();
        let restart = match annotations.and_then(|a| a.get(ANNOTATION_RESTART)) {
            Some(r) => RestartPolicy::parse(r)?,
            None => RestartPolicy::No,
        };
        let resources = Resources::from_spec(linux.and_then(|l| l.resources().as_ref()))?;
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
                security: Security::from_spec(process, linux)?,
                rlimits: rlimits::from_spec(process.rlimits().as_ref())?,
            },
            tty: process.terminal().unwrap_or(false),
            userns,
            cgroup_path: cgroup_path(spec, id)?,
            resources,
            restart,
        })
    }
}

/// The cgroup of container `id`: `linux.cgroupsPath` when the spec names one, else
/// `/<parent>/<id>` with the parent from the bundle's annotation (default `weft`).
pub(crate) fn cgroup_path(spec: &Spec, id: &str) -> Result<String, String> {
    if let Some(p) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
    {
        let s = p
            .to_str()
            .ok_or_else(|| format!("linux.cgroupsPath {} is not UTF-8", p.display()))?;
        cgroups::validate_path(s).map_err(|e| format!("linux.cgroupsPath: {e}"))?;
        return Ok(format!("/{}", s.trim_matches('/')));
    }
    let parent = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_CGROUP_PARENT))
        .map(String::as_str)
        .unwrap_or(DEFAULT_CGROUP_PARENT);
    cgroups::validate_path(parent).map_err(|e| format!("cgroup parent: {e}"))?;
    Ok(format!("/{}/{id}", parent.trim_matches('/')))
}

#[cfg(test)]
mod tests;
