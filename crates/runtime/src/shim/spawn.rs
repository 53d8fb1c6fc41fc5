//! Cloning the container's init: pipes, clone, id maps, cgroup, and the wait for it to
//! be set up (used for the first run and for every restart).

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{self, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::cgroups::Cgroup;
use crate::channel::{read_frame, Frame};
use crate::config::InitConfig;
use crate::mounts::Op;
use crate::process::{init_main, InitFds};
use crate::tty;

/// Stack of the cloned init (the memory is only touched as it is used).
const INIT_STACK: usize = 8 << 20;

/// A container init that is set up and waits for `G`.
pub(crate) struct Child {
    pub pid: Pid,
    /// Write end of the sync pipe (`G` = exec); `None` once used.
    pub sync_w: Option<OwnedFd>,
    /// Read end of the report pipe: an `E` frame or end of file after `G`.
    pub from_init: File,
    /// The pty master of a terminal container (unless it went to a console socket).
    pub console: Option<OwnedFd>,
}

/// What the init inherits from the shim (or, without a shim, from the caller).
pub(crate) struct Inherit<'a> {
    /// The container log and /dev/null as its stdio; `None`: the caller's stdio.
    pub log_null: Option<(&'a File, &'a File)>,
    pub cgroup: Option<&'a Cgroup>,
    /// A connected socket to send a terminal container's pty master to; `None`: the
    /// master comes back to the caller (in [`Child::console`]).
    pub console_socket: Option<BorrowedFd<'a>>,
    /// Without a shim: the start fifo (see [`crate::process::InitFds::start_fifo`]).
    pub start_fifo: Option<BorrowedFd<'a>>,
}

/// Kills and reaps an init whose setup failed half-way.
pub(crate) struct KillOnDrop(pub Option<Pid>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// Clones the init with `flags` (it joins the cgroup first thing), maps its ids, lets it set
/// up its file systems, and returns it blocked before exec. On failure nothing is left
/// running.
pub(crate) fn spawn(
    cfg: &InitConfig,
    ops: &[Op],
    flags: CloneFlags,
    with: &Inherit<'_>,
) -> Result<Child, String> {
    let (sync_r, sync_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (rep_r, rep_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let console = if cfg.tty && with.console_socket.is_none() {
        Some(
            socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| format!("socketpair for the terminal: {e}"))?,
        )
    } else {
        None
    };
    // The init joins the cgroup itself, through files opened here (see
    // `Cgroup::join_files`: far cheaper on v1 than writing its pid from here).
    let cgroup_join = match with.cgroup {
        Some(cg) => cg.open_join_files()?,
        None => Vec::new(),
    };
    let fds = InitFds {
        sync_r: sync_r.as_raw_fd(),
        report_w: rep_w.as_raw_fd(),
        log_null: with
            .log_null
            .map(|(log, null)| (log.as_raw_fd(), null.as_raw_fd())),
        console: match (&console, with.console_socket) {
            (Some((_, child)), _) => Some(child.as_raw_fd()),
            (None, Some(sock)) if cfg.tty => Some(sock.as_raw_fd()),
            (None, _) => None,
        },
        start_fifo: with.start_fifo.map(|f| f.as_raw_fd()),
        cgroup_join: cgroup_join.iter().map(|f| f.as_raw_fd()).collect(),
    };
    let mut stack = vec![0u8; INIT_STACK];
    // SAFETY: the shim is single-threaded, so the child gets a consistent copy of memory;
    // the callback never returns (it execs or _exits).
    let pid = unsafe {
        nix::sched::clone(
            Box::new(|| init_main(cfg, ops, &fds)),
            &mut stack,
            flags,
            Some(libc::SIGCHLD),
        )
    }
    .map_err(|e| format!("clone the container init: {}", e.desc()))?;
    let mut guard = KillOnDrop(Some(pid));
    drop((sync_r, rep_w, stack, cgroup_join));
    let console_parent = console.map(|(parent, child)| {
        drop(child);
        parent
    });

    if let Some(maps) = &cfg.userns {
        for (file, map) in [("uid_map", &maps.uid_map), ("gid_map", &maps.gid_map)] {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, map).map_err(|e| format!("write {map:?} to {path}: {e}"))?;
        }
    }
    nix::unistd::write(&sync_w, b"C").map_err(|e| format!("release the init: {e}"))?;

    let mut from_init = File::from(rep_r);
    match read_frame(&mut from_init) {
        Ok(Frame::Ready) => {}
        Ok(Frame::Error(msg)) => return Err(msg),
        Ok(Frame::Eof) => return Err("the container init died during setup".into()),
        Err(e) => return Err(format!("read from the container init: {e}")),
    }
    let console = match console_parent {
        None => None,
        Some(sock) => Some(
            tty::recv_fd(sock.as_raw_fd())
                .map_err(|e| format!("receive the container's terminal: {}", e.desc()))?
                .ok_or("the container init did not send its terminal")?,
        ),
    };
    guard.0 = None;
    Ok(Child {
        pid,
        sync_w: Some(sync_w),
        from_init,
        console,
    })
}
