//! The container's file systems: a plan (the ordered list of operations, decided from the
//! config alone) and its execution through a [`Syscall`] implementation.
//!
//! Everything runs in the init process, inside its own mount namespace, so nothing stays
//! mounted on the host when the container dies.

pub(crate) mod path;
pub(crate) mod sys;

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::MsFlags;

use crate::config::{Device, InitConfig, MountEntry};
pub(crate) use sys::{FileKind, RealSyscall, Syscall};

/// Longest mount data the kernel takes (one page, with room for the terminating NUL).
const MAX_MOUNT_DATA: usize = 4000;

/// One step of the file-system setup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// Make every mount private, recursively: nothing propagates back to the host.
    MakeRprivate,
    /// Mount the overlay rootfs on `target`; when `cwd` is set the paths in `data` are
    /// relative to it (to fit a long layer list in one page).
    Overlay {
        target: PathBuf,
        data: String,
        cwd: Option<PathBuf>,
    },
    /// Bind the rootfs onto itself so that it is a mount point (pivot_root needs one).
    BindRootfs { target: PathBuf },
    /// One entry of the spec's `mounts`, its destination inside the rootfs.
    Mount(MountEntry),
    /// A device node inside the rootfs: mknod, or a bind of the host's node when mknod is
    /// not allowed.
    Device(Device),
    /// A symlink at `link` (inside the rootfs) pointing to `to`.
    Symlink { link: PathBuf, to: PathBuf },
    /// pivot_root into the rootfs and detach the old root.
    PivotRoot,
    /// After pivot: hide a path (tmpfs over a directory, /dev/null over a file).
    Mask(PathBuf),
    /// After pivot: make a path read-only.
    ReadOnly(PathBuf),
    /// After pivot: remount `/` read-only.
    RootReadOnly,
    /// Set the hostname (in the container's UTS namespace).
    Hostname(String),
}

/// The ordered file-system setup of a container.
pub(crate) fn plan(cfg: &InitConfig) -> Result<Vec<Op>, String> {
    let mut ops = vec![Op::MakeRprivate];
    match &cfg.overlay {
        Some(ov) => {
            let (data, cwd) = overlay_data(&ov.lower, &ov.upper, &ov.work)?;
            ops.push(Op::Overlay {
                target: cfg.rootfs.clone(),
                data,
                cwd,
            });
        }
        None => ops.push(Op::BindRootfs {
            target: cfg.rootfs.clone(),
        }),
    }
    ops.extend(cfg.mounts.iter().cloned().map(Op::Mount));
    let dev_is_bind = cfg
        .mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev") && m.is_bind());
    if !dev_is_bind {
        ops.extend(cfg.devices.iter().cloned().map(Op::Device));
        for (link, to) in [
            ("/dev/fd", "/proc/self/fd"),
            ("/dev/stdin", "/proc/self/fd/0"),
            ("/dev/stdout", "/proc/self/fd/1"),
            ("/dev/stderr", "/proc/self/fd/2"),
            ("/dev/ptmx", "pts/ptmx"),
        ] {
            ops.push(Op::Symlink {
                link: link.into(),
                to: to.into(),
            });
        }
    }
    ops.push(Op::PivotRoot);
    ops.extend(cfg.masked_paths.iter().cloned().map(Op::Mask));
    ops.extend(cfg.readonly_paths.iter().cloned().map(Op::ReadOnly));
    if cfg.root_readonly {
        ops.push(Op::RootReadOnly);
    }
    if let Some(h) = &cfg.hostname {
        ops.push(Op::Hostname(h.clone()));
    }
    Ok(ops)
}

/// The overlayfs mount data, with paths relative to a common ancestor when the absolute
/// form does not fit in a page.
fn overlay_data(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<(String, Option<PathBuf>), String> {
    let join = |strip: &Path| -> String {
        let rel = |p: &Path| {
            p.strip_prefix(strip)
                .map(|r| r.to_path_buf())
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        let lowers: Vec<String> = lower.iter().map(|l| rel(l)).collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            rel(upper),
            rel(work)
        )
    };
    let data = join(Path::new(""));
    if data.len() <= MAX_MOUNT_DATA {
        return Ok((data, None));
    }
    let mut common = upper.to_path_buf();
    for p in lower.iter().map(PathBuf::as_path).chain([work]) {
        while !p.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    let data = join(&common);
    if data.len() > MAX_MOUNT_DATA || common.as_os_str().is_empty() {
        return Err(format!(
            "the {} image layers give overlay options longer than a page ({} bytes); use fewer layers or shorter layer paths",
            lower.len(),
            data.len()
        ));
    }
    Ok((data, Some(common)))
}

/// Runs the plan with `rootfs` as the container's root (before pivot).
pub(crate) fn apply(sys: &dyn Syscall, rootfs: &Path, ops: &[Op]) -> Result<(), String> {
    for op in ops {
        apply_one(sys, rootfs, op)?;
    }
    Ok(())
}

fn ctx<T>(r: io::Result<T>, what: impl FnOnce() -> String) -> Result<T, String> {
    r.map_err(|e| format!("{}: {}", what(), describe(&e)))
}

/// An error as the C library words it ("No such file or directory"), without Rust's
/// "(os error N)" suffix.
pub(crate) fn describe(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

fn apply_one(sys: &dyn Syscall, rootfs: &Path, op: &Op) -> Result<(), String> {
    let root = Path::new("/");
    match op {
        Op::MakeRprivate => ctx(
            sys.mount(
                None,
                root,
                None,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None,
            ),
            || "make / private in the container's mount namespace".into(),
        ),
        Op::Overlay { target, data, cwd } => {
            if let Some(cwd) = cwd {
                ctx(sys.chdir(cwd), || format!("chdir {}", cwd.display()))?;
            }
            ctx(
                sys.mount(
                    Some(Path::new("overlay")),
                    target,
                    Some("overlay"),
                    MsFlags::empty(),
                    Some(data),
                ),
                || format!("mount overlay rootfs on {} ({data})", target.display()),
            )
        }
        Op::BindRootfs { target } => ctx(
            sys.mount(
                Some(target),
                target,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            ),
            || format!("bind rootfs {} onto itself", target.display()),
        ),
        Op::Mount(m) => apply_mount(sys, rootfs, m),
        Op::Device(d) => apply_device(sys, rootfs, d),
        Op::Symlink { link, to } => {
            let at = ctx(sys.resolve_parent(rootfs, link), || {
                format!("resolve {} in the rootfs", link.display())
            })?;
            match sys.symlink(to, &at) {
                Err(e) if e.raw_os_error() == Some(Errno::EEXIST as i32) => Ok(()),
                r => ctx(r, || {
                    format!("symlink {} -> {}", link.display(), to.display())
                }),
            }
        }
        Op::PivotRoot => {
            ctx(sys.chdir(rootfs), || format!("chdir {}", rootfs.display()))?;
            let dot = Path::new(".");
            ctx(sys.pivot_root(dot, dot), || {
                format!("pivot_root into {}", rootfs.display())
            })?;
            ctx(sys.umount_detach(dot), || "detach the old root".into())?;
            ctx(sys.chdir(root), || "chdir / in the new root".into())
        }
        Op::Mask(p) => match sys.kind(p) {
            None => Ok(()),
            Some(FileKind::Dir) => ctx(
                sys.mount(
                    Some(Path::new("tmpfs")),
                    p,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    None,
                ),
                || format!("mask directory {}", p.display()),
            ),
            Some(FileKind::Other) => ctx(
                sys.mount(
                    Some(Path::new("/dev/null")),
                    p,
                    None,
                    MsFlags::MS_BIND,
                    None,
                ),
                || format!("mask file {}", p.display()),
            ),
        },
        Op::ReadOnly(p) => {
            if sys.kind(p).is_none() {
                return Ok(());
            }
            let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
            ctx(sys.mount(Some(p), p, None, bind, None), || {
                format!("bind {} for read-only", p.display())
            })?;
            ctx(
                sys.mount(
                    Some(p),
                    p,
                    None,
                    bind | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | sys.locked_flags(p),
                    None,
                ),
                || format!("remount {} read-only", p.display()),
            )
        }
        Op::RootReadOnly => ctx(
            sys.mount(
                None,
                root,
                None,
                MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | sys.locked_flags(root),
                None,
            ),
            || "remount the rootfs read-only".into(),
        ),
        Op::Hostname(h) => ctx(sys.sethostname(h), || format!("set hostname {h:?}")),
    }
}

fn apply_mount(sys: &dyn Syscall, rootfs: &Path, m: &MountEntry) -> Result<(), String> {
    let what = m.fstype.as_deref().unwrap_or("bind");
    let dest = ctx(sys.resolve(rootfs, &m.destination), || {
        format!(
            "resolve mount destination {} in the rootfs",
            m.destination.display()
        )
    })?;
    if m.is_bind() {
        let src = m
            .source
            .as_deref()
            .ok_or_else(|| format!("bind mount on {} has no source", m.destination.display()))?;
        match sys.kind(src) {
            None => {
                return Err(format!(
                    "bind mount source {} does not exist",
                    src.display()
                ))
            }
            Some(FileKind::Dir) => {
                ctx(sys.mkdir_all(&dest), || format!("mkdir {}", dest.display()))?
            }
            Some(FileKind::Other) => ctx(sys.create_file(&dest), || {
                format!("create {}", dest.display())
            })?,
        }
        let base = m.flags & (MsFlags::MS_BIND | MsFlags::MS_REC);
        ctx(sys.mount(Some(src), &dest, None, base, None), || {
            format!("bind {} on {}", src.display(), m.destination.display())
        })?;
        let extra = m.flags - base;
        if !extra.is_empty() {
            ctx(
                sys.mount(Some(src), &dest, None, m.flags | MsFlags::MS_REMOUNT, None),
                || format!("remount bind {} with {:?}", m.destination.display(), extra),
            )?;
        }
    } else {
        ctx(sys.mkdir_all(&dest), || format!("mkdir {}", dest.display()))?;
        let source = m.source.as_deref().unwrap_or(Path::new(what));
        let r = sys.mount(
            Some(source),
            &dest,
            m.fstype.as_deref(),
            m.flags,
            m.data.as_deref(),
        );
        match r {
            // A user-namespaced container that joined a network namespace it does not own
            // may not mount sysfs: it gets the host's /sys, bound read-only.
            Err(e)
                if m.fstype.as_deref() == Some("sysfs")
                    && e.raw_os_error() == Some(Errno::EPERM as i32) =>
            {
                let sys_dir = Path::new("/sys");
                let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
                ctx(sys.mount(Some(sys_dir), &dest, None, rbind, None), || {
                    format!("bind the host's /sys on {}", m.destination.display())
                })?;
                let ro = rbind | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                ctx(
                    sys.mount(
                        Some(sys_dir),
                        &dest,
                        None,
                        ro | sys.locked_flags(sys_dir),
                        None,
                    ),
                    || format!("remount {} read-only", m.destination.display()),
                )?;
            }
            r => ctx(r, || format!("mount {what} on {}", m.destination.display()))?,
        }
    }
    if !m.propagation.is_empty() {
        ctx(sys.mount(None, &dest, None, m.propagation, None), || {
            format!("set propagation of {}", m.destination.display())
        })?;
    }
    Ok(())
}

fn apply_device(sys: &dyn Syscall, rootfs: &Path, d: &Device) -> Result<(), String> {
    let at = ctx(sys.resolve_parent(rootfs, &d.path), || {
        format!("resolve {} in the rootfs", d.path.display())
    })?;
    if let Some(parent) = at.parent() {
        ctx(sys.mkdir_all(parent), || {
            format!("mkdir {}", parent.display())
        })?;
    }
    match sys.mknod(&at, d.kind, d.mode, d.major, d.minor) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(Errno::EEXIST as i32) => Ok(()),
        Err(e) if e.raw_os_error() == Some(Errno::EPERM as i32) => {
            // No right to create device nodes (e.g. in a user namespace): bind the host's.
            ctx(sys.create_file(&at), || format!("create {}", at.display()))?;
            ctx(
                sys.mount(Some(&d.path), &at, None, MsFlags::MS_BIND, None),
                || format!("bind host device {} into the container", d.path.display()),
            )
        }
        Err(e) => Err(format!("mknod {}: {}", d.path.display(), describe(&e))),
    }
}

#[cfg(test)]
mod tests;
