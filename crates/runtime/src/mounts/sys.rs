//! The system calls of the container's file-system setup, behind a trait so the mount plan
//! can be executed against a recording fake in unit tests.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::{Mode, SFlag};

/// Kind of an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Dir,
    Other,
}

/// What the setup of a container's file systems asks of the kernel.
pub(crate) trait Syscall {
    /// mount(2).
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()>;
    /// umount2(target, MNT_DETACH).
    fn umount_detach(&self, target: &Path) -> io::Result<()>;
    /// pivot_root(2).
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    /// chdir(2).
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// mkdir -p with mode 0755.
    fn mkdir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates an empty file (and its parent directories) if it does not exist.
    fn create_file(&self, path: &Path) -> io::Result<()>;
    /// mknod(2) of a device or fifo, then chmod to `mode`.
    fn mknod(&self, path: &Path, kind: char, mode: u32, major: u64, minor: u64) -> io::Result<()>;
    /// symlink(2): `link` pointing to `to`.
    fn symlink(&self, to: &Path, link: &Path) -> io::Result<()>;
    /// sethostname(2).
    fn sethostname(&self, name: &str) -> io::Result<()>;
    /// What `path` is (following symlinks), `None` if it does not exist.
    fn kind(&self, path: &Path) -> Option<FileKind>;
    /// Resolves a container path inside `root` (see [`super::path::resolve_in_root`]).
    fn resolve(&self, root: &Path, path: &Path) -> io::Result<PathBuf>;
    /// Resolves the parent of a container path inside `root`, keeping the last component.
    fn resolve_parent(&self, root: &Path, path: &Path) -> io::Result<PathBuf>;
    /// The flags of the mount holding `path` that a bind remount must keep (nosuid,
    /// nodev, noexec, atime flags): in a user namespace they are locked.
    fn locked_flags(&self, _path: &Path) -> MsFlags {
        MsFlags::empty()
    }
}

/// The real system calls.
pub(crate) struct RealSyscall;

impl Syscall for RealSyscall {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> io::Result<()> {
        Ok(nix::mount::mount(source, target, fstype, flags, data)?)
    }

    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        Ok(nix::mount::umount2(target, MntFlags::MNT_DETACH)?)
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        Ok(nix::unistd::pivot_root(new_root, put_old)?)
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        Ok(nix::unistd::chdir(path)?)
    }

    fn mkdir_all(&self, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            self.mkdir_all(parent)?;
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
    }

    fn mknod(&self, path: &Path, kind: char, mode: u32, major: u64, minor: u64) -> io::Result<()> {
        let sflag = match kind {
            'b' => SFlag::S_IFBLK,
            'p' => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let perm = Mode::from_bits_truncate(mode & 0o7777);
        let dev = nix::sys::stat::makedev(major, minor);
        nix::sys::stat::mknod(path, sflag, perm, dev)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
    }

    fn symlink(&self, to: &Path, link: &Path) -> io::Result<()> {
        std::os::unix::fs::symlink(to, link)
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        Ok(nix::unistd::sethostname(name)?)
    }

    fn kind(&self, path: &Path) -> Option<FileKind> {
        std::fs::metadata(path).ok().map(|m| {
            if m.is_dir() {
                FileKind::Dir
            } else {
                FileKind::Other
            }
        })
    }

    fn resolve(&self, root: &Path, path: &Path) -> io::Result<PathBuf> {
        super::path::resolve_in_root(root, path)
    }

    fn resolve_parent(&self, root: &Path, path: &Path) -> io::Result<PathBuf> {
        super::path::resolve_parent_in_root(root, path)
    }

    fn locked_flags(&self, path: &Path) -> MsFlags {
        use nix::sys::statvfs::{statvfs, FsFlags};
        let Ok(st) = statvfs(path) else {
            return MsFlags::empty();
        };
        let f = st.flags();
        let mut out = MsFlags::empty();
        for (fs, ms) in [
            (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if f.contains(fs) {
                out |= ms;
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake that records every call as a line of text.

    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    /// Records calls; paths in `files` are regular files, paths in `missing` do not exist,
    /// everything else is a directory; `deny_mknod` makes mknod fail with EPERM.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub calls: RefCell<Vec<String>>,
        pub files: BTreeSet<PathBuf>,
        pub missing: BTreeSet<PathBuf>,
        pub deny_mknod: bool,
    }

    impl Recorder {
        fn rec(&self, s: String) -> io::Result<()> {
            self.calls.borrow_mut().push(s);
            Ok(())
        }
    }

    fn opt<T: std::fmt::Debug>(o: Option<T>) -> String {
        o.map(|v| format!("{v:?}").trim_matches('"').to_string())
            .unwrap_or_else(|| "-".into())
    }

    fn flags_str(f: MsFlags) -> String {
        if f.is_empty() {
            return "0".into();
        }
        f.iter_names().map(|(n, _)| n).collect::<Vec<_>>().join("|")
    }

    impl Syscall for Recorder {
        fn mount(
            &self,
            source: Option<&Path>,
            target: &Path,
            fstype: Option<&str>,
            flags: MsFlags,
            data: Option<&str>,
        ) -> io::Result<()> {
            self.rec(format!(
                "mount {} {} {} {} {}",
                opt(source),
                target.display(),
                opt(fstype),
                flags_str(flags),
                opt(data)
            ))
        }
        fn umount_detach(&self, target: &Path) -> io::Result<()> {
            self.rec(format!("umount {}", target.display()))
        }
        fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
            self.rec(format!(
                "pivot_root {} {}",
                new_root.display(),
                put_old.display()
            ))
        }
        fn chdir(&self, path: &Path) -> io::Result<()> {
            self.rec(format!("chdir {}", path.display()))
        }
        fn mkdir_all(&self, path: &Path) -> io::Result<()> {
            self.rec(format!("mkdir {}", path.display()))
        }
        fn create_file(&self, path: &Path) -> io::Result<()> {
            self.rec(format!("touch {}", path.display()))
        }
        fn mknod(
            &self,
            path: &Path,
            kind: char,
            mode: u32,
            major: u64,
            minor: u64,
        ) -> io::Result<()> {
            if self.deny_mknod {
                return Err(nix::errno::Errno::EPERM.into());
            }
            self.rec(format!(
                "mknod {} {kind} {mode:o} {major}:{minor}",
                path.display()
            ))
        }
        fn symlink(&self, to: &Path, link: &Path) -> io::Result<()> {
            self.rec(format!("symlink {} -> {}", link.display(), to.display()))
        }
        fn sethostname(&self, name: &str) -> io::Result<()> {
            self.rec(format!("sethostname {name}"))
        }
        fn kind(&self, path: &Path) -> Option<FileKind> {
            if self.missing.contains(path) {
                None
            } else if self.files.contains(path) {
                Some(FileKind::Other)
            } else {
                Some(FileKind::Dir)
            }
        }
        fn resolve(&self, root: &Path, path: &Path) -> io::Result<PathBuf> {
            Ok(root.join(path.strip_prefix("/").unwrap_or(path)))
        }
        fn resolve_parent(&self, root: &Path, path: &Path) -> io::Result<PathBuf> {
            self.resolve(root, path)
        }
    }
}
