//! Network namespace handles, named namespaces under `/run/netns`, and running code
//! inside a namespace on a short-lived thread.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::error::{Context, Error, Result};
use crate::Handle;

/// Directory of named namespaces, as used by iproute2 (`ip netns`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// The calling thread's own network namespace.
const THREAD_SELF_NET: &str = "/proc/thread-self/ns/net";

/// Serialises the set-up of `/run/netns` within this process.
static RUN_DIR_LOCK: Mutex<()> = Mutex::new(());
/// Set once `/run/netns` is known to be a shared mount point.
static RUN_DIR_READY: AtomicBool = AtomicBool::new(false);

/// An open handle (file descriptor) on a network namespace.
///
/// Holding it keeps the namespace alive. It is used to join the namespace on a
/// short-lived thread ([`run_in_netns`]), to open a [`Handle`] there, or as the
/// target of `IFLA_NET_NS_FD` (moving or creating links in it).
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    path: Option<PathBuf>,
}

impl Netns {
    /// The calling thread's network namespace (`/proc/thread-self/ns/net`).
    pub fn current() -> Result<Netns> {
        let fd = open_nsfs(Path::new(THREAD_SELF_NET), "open current netns")?;
        Ok(Netns { fd, path: None })
    }

    /// Opens any nsfs path, e.g. `/proc/<pid>/ns/net` or `/run/netns/<name>`.
    /// Fails with `EINVAL` when the path is not a network namespace (for example
    /// a stale `/run/netns` file that is no longer a bind mount).
    pub fn open(path: &Path) -> Result<Netns> {
        let fd = open_nsfs(path, "open netns")?;
        Ok(Netns {
            fd,
            path: Some(path.to_path_buf()),
        })
    }

    /// The network namespace of process `pid`.
    pub fn from_pid(pid: i32) -> Result<Netns> {
        Netns::open(&PathBuf::from(format!("/proc/{pid}/ns/net")))
    }

    /// The named namespace `/run/netns/<name>` (as made by `ip netns add`).
    pub fn named(name: &str) -> Result<Netns> {
        Netns::open(&named_path(name, "open netns")?)
    }

    /// Creates the named namespace `/run/netns/<name>` like `ip netns add` does and
    /// brings its `lo` up. Fails with `EEXIST` when the name is taken.
    ///
    /// `/run/netns` is created when missing and made a shared bind mount of itself
    /// (so that namespace mounts propagate to and unmount from other mount
    /// namespaces). The namespace is made by a short-lived thread that unshares its
    /// network namespace, bind-mounts it onto the file, and ends.
    pub fn create_named(name: &str) -> Result<Netns> {
        const OP: &str = "create netns";
        let path = named_path(name, OP)?;
        ensure_run_dir()?;
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)
            .ctx(OP, &path.display())?;
        match make_ns_on(&path) {
            Ok(fd) => Ok(Netns {
                fd,
                path: Some(path),
            }),
            Err(e) => {
                let _ = umount2(&path, MntFlags::MNT_DETACH);
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Deletes the named namespace (lazy unmount, then unlink). `Ok` when it does
    /// not exist. The namespace itself lives on while something still holds it
    /// (a process inside, an open [`Netns`]).
    pub fn delete_named(name: &str) -> Result<()> {
        const OP: &str = "delete netns";
        let path = named_path(name, OP)?;
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(Error::from_errno(OP, path.display().to_string(), e as i32)),
        }
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::new(OP, path.display().to_string(), e)),
        }
    }

    /// Names of the namespaces under `/run/netns`, sorted. Empty when the directory
    /// does not exist.
    pub fn list_named() -> Result<Vec<String>> {
        let rd = match fs::read_dir(NETNS_RUN_DIR) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::new("list netns", NETNS_RUN_DIR, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.ctx("list netns", &NETNS_RUN_DIR)?;
            if let Some(n) = entry.file_name().to_str() {
                names.push(n.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The namespace file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The path it was opened from (`None` for [`Netns::current`]).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The name under `/run/netns`, when it was opened from there.
    pub fn name(&self) -> Option<&str> {
        let p = self.path.as_deref()?;
        if p.parent() == Some(Path::new(NETNS_RUN_DIR)) {
            p.file_name()?.to_str()
        } else {
            None
        }
    }

    /// The namespace's inode number: two handles with the same inode (and the nsfs
    /// device) refer to the same namespace.
    pub fn inode(&self) -> Result<u64> {
        let f = File::from(self.fd.try_clone().ctx("stat netns", self)?);
        Ok(f.metadata().ctx("stat netns", self)?.ino())
    }

    /// True when both handles refer to the same namespace.
    pub fn same_as(&self, other: &Netns) -> Result<bool> {
        Ok(self.inode()? == other.inode()?)
    }

    /// A second handle on the same namespace.
    pub fn try_clone(&self) -> Result<Netns> {
        Ok(Netns {
            fd: self.fd.try_clone().ctx("duplicate netns fd", self)?,
            path: self.path.clone(),
        })
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "netns {}", p.display()),
            None => write!(f, "current netns"),
        }
    }
}

/// Runs `f` on a fresh thread that has joined `ns`; the thread ends afterwards, so
/// no thread is ever left in a foreign namespace. A panic in `f` is propagated.
pub fn run_in_netns<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> Result<T> {
    let fd = ns.fd();
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("weft-netns".into())
            .spawn_scoped(s, move || -> Result<T> {
                setns(fd, CloneFlags::CLONE_NEWNET).ctx("join", ns)?;
                Ok(f())
            })
            .ctx("spawn thread to enter", ns)?;
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Checks a namespace name and returns its path under `/run/netns`.
pub(crate) fn named_path(name: &str, op: &str) -> Result<PathBuf> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.len() > 255
        || name.contains(['/', '\0']);
    if bad {
        return Err(Error::from_errno(op, format!("{name:?}"), libc::EINVAL)
            .with_detail("a netns name is 1-255 characters without '/'"));
    }
    Ok(Path::new(NETNS_RUN_DIR).join(name))
}

/// Opens `path` and checks that it is a namespace file (nsfs).
fn open_nsfs(path: &Path, op: &str) -> Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .ctx(op, &path.display())?;
    let st = fstatfs(&f).ctx(op, &path.display())?;
    if st.filesystem_type() != NSFS_MAGIC {
        return Err(
            Error::from_errno(op, path.display().to_string(), libc::EINVAL)
                .with_detail("not a namespace file; is the netns mounted?"),
        );
    }
    Ok(OwnedFd::from(f))
}

/// Makes sure `/run/netns` exists and is a shared mount point, like iproute2.
fn ensure_run_dir() -> Result<()> {
    const OP: &str = "prepare";
    if RUN_DIR_READY.load(Ordering::Acquire) {
        return Ok(());
    }
    let _guard = RUN_DIR_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if RUN_DIR_READY.load(Ordering::Acquire) {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(NETNS_RUN_DIR)
        .ctx(OP, &NETNS_RUN_DIR)?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => {}
        Err(Errno::EINVAL) => {
            // Not a mount point yet: bind it onto itself, then make it shared.
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .ctx("bind-mount", &NETNS_RUN_DIR)?;
            shared().ctx("make shared mount", &NETNS_RUN_DIR)?;
        }
        Err(e) => {
            return Err(Error::from_errno(
                "make shared mount",
                NETNS_RUN_DIR,
                e as i32,
            ))
        }
    }
    RUN_DIR_READY.store(true, Ordering::Release);
    Ok(())
}

/// On a short-lived thread: unshare a new network namespace, bind-mount it onto
/// `path`, bring `lo` up, and return an fd on it.
fn make_ns_on(path: &Path) -> Result<OwnedFd> {
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("weft-netns-new".into())
            .spawn_scoped(s, || -> Result<OwnedFd> {
                let shown = path.display();
                unshare(CloneFlags::CLONE_NEWNET).ctx("unshare netns for", &shown)?;
                mount(
                    Some(THREAD_SELF_NET),
                    path,
                    Some("none"),
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .ctx("bind-mount netns onto", &shown)?;
                let fd = open_nsfs(Path::new(THREAD_SELF_NET), "open new netns")?;
                let mut h = Handle::new()?;
                // The loopback device is always ifindex 1 in a fresh namespace.
                h.set_up(crate::LOOPBACK_INDEX)?;
                Ok(fd)
            })
            .ctx("spawn thread to create", &path.display())?;
        match h.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for bad in ["", ".", "..", "a/b", "x\0y"] {
            assert!(named_path(bad, "t").is_err(), "{bad:?}");
        }
        assert_eq!(
            named_path("weft-a", "t").ok(),
            Some(PathBuf::from("/run/netns/weft-a"))
        );
        let e = named_path("a/b", "open netns").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("open netns \"a/b\": Invalid argument (os error 22) (a netns name is 1-255 characters without '/')")
        );
    }

    #[test]
    fn current_netns_opens_and_compares() {
        // Opening our own namespace needs no privilege.
        let a = Netns::current().expect("open current netns");
        let b = a.try_clone().expect("clone");
        assert!(a.same_as(&b).expect("compare"));
        assert_eq!(a.path(), None);
        assert_eq!(a.to_string(), "current netns");
    }

    #[test]
    fn open_rejects_non_namespace_files() {
        let e = Netns::open(Path::new("/proc/self/status")).expect_err("not nsfs");
        assert_eq!(e.errno(), Some(libc::EINVAL));
    }

    #[test]
    fn run_in_own_netns_returns_value() {
        let ns = Netns::current().expect("open current netns");
        // Joining our own namespace is allowed for root only; skip otherwise.
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let v = run_in_netns(&ns, || 41 + 1).expect("run");
        assert_eq!(v, 42);
    }
}
