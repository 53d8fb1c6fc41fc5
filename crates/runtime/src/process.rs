//! The container's init: runs in the child the shim clones into the new namespaces, sets up
//! the file systems, waits for `start`, then execs the user's process.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;

use crate::channel::write_frame;
use crate::config::{InitConfig, ProcessConfig};
use crate::mounts::{self, Op, RealSyscall};
use crate::program::{self, exec_candidates, ExecArgs};
use crate::tty;

/// File descriptors the init works with (all inherited from the shim); every other fd
/// is closed as the init starts.
pub(crate) struct InitFds {
    /// Read end of the sync pipe: one byte `C` (continue: ids mapped),
    /// later one byte `G` (exec now).
    pub sync_r: RawFd,
    /// Write end of the report pipe (close-on-exec).
    pub report_w: RawFd,
    /// The container log (stdout, stderr) and /dev/null (stdin); `None`: the init keeps
    /// the standard streams it inherited (the caller's, without a shim).
    pub log_null: Option<(RawFd, RawFd)>,
    /// For a terminal container: the socket on which the pty master goes (to the shim, or
    /// to the engine's console socket).
    pub console: Option<RawFd>,
    /// Without a shim: the fifo (opened read-write) on which `start` writes `G`. The init
    /// then has no parent-death signal (its parent, the caller of `create`, exits), and it
    /// checks before `R` that its command can be found, so that `create` reports a
    /// missing executable as runc does.
    pub start_fifo: Option<RawFd>,
    /// The cgroup's [`crate::cgroups::Cgroup::join_files`], opened by the shim: the init
    /// writes `0` into each before anything else, joining the cgroup itself.
    pub cgroup_join: Vec<RawFd>,
}

/// Entry point of the init in the cloned child. Never returns: execs or exits 127.
pub(crate) fn init_main(cfg: &InitConfig, ops: &[Op], fds: &InitFds) -> ! {
    match run(cfg, ops, fds) {
        Ok(never) => match never {},
        Err(msg) => write_frame(fds.report_w, b'E', &msg),
    }
    // SAFETY: _exit is always safe; it skips the shim's atexit handlers and buffers.
    unsafe { libc::_exit(127) }
}

/// Joins the cgroup: `0` into each of its join files, as this process is still
/// single-threaded (see [`crate::cgroups::Cgroup::join_files`]).
fn join_cgroup(files: &[RawFd]) -> Result<(), String> {
    for &f in files {
        // SAFETY: write(2) of one byte on an fd the shim opened for this.
        if unsafe { libc::write(f, b"0".as_ptr().cast(), 1) } < 0 {
            return Err(format!("join the cgroup: {}", Errno::last().desc()));
        }
    }
    Ok(())
}

/// Waits for one byte `want` on the sync pipe; exits quietly if the shim is gone.
fn wait_for(sync_r: RawFd, want: u8) {
    let mut b = [0u8; 1];
    loop {
        // SAFETY: sync_r is an open pipe end.
        let fd = unsafe { BorrowedFd::borrow_raw(sync_r) };
        match nix::unistd::read(fd, &mut b) {
            Ok(1) if b[0] == want => return,
            Err(Errno::EINTR) => continue,
            // The shim is gone or gave up: never run the process.
            _ => unsafe { libc::_exit(0) },
        }
    }
}

fn run(cfg: &InitConfig, ops: &[Op], fds: &InitFds) -> Result<Infallible, String> {
    join_cgroup(&fds.cgroup_join)?;
    // Until it execs, this process runs the runtime's binary in the container's namespaces:
    // no process of the container may open its /proc/<pid>/exe (see `program`). The
    // binary's identity is read before the root changes.
    program::make_non_dumpable().map_err(|e| format!("make the init non-dumpable: {e}"))?;
    let _ = program::runtime_identity();
    let mut keep = vec![fds.sync_r, fds.report_w];
    keep.extend(fds.log_null.iter().flat_map(|(l, n)| [*l, *n]));
    keep.extend(fds.console);
    keep.extend(fds.start_fifo);
    close_all_except(&keep);
    // Die with the shim, so a container never outlives the process that reaps it. (Should
    // the shim die before this, the init finds the sync pipe closed and exits.)
    if fds.start_fifo.is_none() {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
            .map_err(|e| format!("set pdeathsig: {e}"))?;
    }
    reset_signals();
    // The shim writes the id maps, then lets us go on.
    wait_for(fds.sync_r, b'C');
    if cfg.userns.is_some() {
        // Become root of the new user namespace (host uid of its range).
        // SAFETY: raw setresgid/setresuid on this single-threaded process.
        unsafe {
            if libc::syscall(libc::SYS_setresgid, 0, 0, 0) < 0
                || libc::syscall(libc::SYS_setresuid, 0, 0, 0) < 0
            {
                return Err(format!(
                    "become root in the user namespace: {}",
                    Errno::last().desc()
                ));
            }
        }
    }
    nix::unistd::setsid().map_err(|e| format!("setsid: {}", e.desc()))?;
    if let Some((log, null)) = fds.log_null {
        for (from, to) in [(null, 0), (log, 1), (log, 2)] {
            // SAFETY: both fds are open; dup2 onto the standard descriptors.
            if unsafe { libc::dup2(from, to) } < 0 {
                return Err(format!("redirect fd {to}: {}", Errno::last().desc()));
            }
        }
    }
    nix::sys::stat::umask(Mode::empty());
    mounts::apply(&RealSyscall, &cfg.rootfs, ops)?;
    if fds.start_fifo.is_some() {
        check_executable(&cfg.process)?;
    }
    if let Some(sock) = fds.console {
        setup_console(sock)?;
    }

    write_frame(fds.report_w, b'R', "");
    match fds.start_fifo {
        Some(fifo) => wait_for(fifo, b'G'),
        None => wait_for(fds.sync_r, b'G'),
    }
    exec_process(&cfg.process, fds.start_fifo.is_none())
}

/// Checks that the process's command exists and is executable (inside the container's
/// root, relative to its working directory), with runc's wording when it is not.
fn check_executable(p: &ProcessConfig) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let arg0 = &p.args[0];
    let found = exec_candidates(arg0, &p.env).iter().any(|c| {
        std::fs::metadata(p.cwd.join(c))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    });
    match (found, arg0.contains('/')) {
        (true, _) => Ok(()),
        (false, true) => Err(format!(
            "exec: {arg0:?}: stat {arg0}: no such file or directory (or not executable)"
        )),
        (false, false) => Err(format!(
            "exec: {arg0:?}: executable file not found in $PATH"
        )),
    }
}

/// Gives the process a terminal: a pty of the container's own devpts, the slave as its
/// controlling terminal, stdin, stdout, stderr and /dev/console; the master goes to the
/// shim over `sock`.
fn setup_console(sock: RawFd) -> Result<(), String> {
    let pty = tty::open_pty(Path::new("/dev/pts/ptmx"))
        .map_err(|e| format!("allocate a terminal in /dev/pts: {}", e.desc()))?;
    let slave_path = format!("/dev/pts/{}", pty.number);
    let console = Path::new("/dev/console");
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(console);
    nix::mount::mount(
        Some(Path::new(&slave_path)),
        console,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| format!("bind {slave_path} on /dev/console: {}", e.desc()))?;
    tty::send_fd(sock, pty.master.as_raw_fd(), slave_path.as_bytes())
        .map_err(|e| format!("send the terminal to the shim: {}", e.desc()))?;
    drop(pty.master);
    // SAFETY: closing our end of the console socket, which is not used again.
    unsafe { libc::close(sock) };
    tty::make_controlling(pty.slave.as_raw_fd())
        .map_err(|e| format!("make {slave_path} the controlling terminal: {}", e.desc()))?;
    Ok(())
}

/// Closes every fd above 2 except those in `keep`.
pub(crate) fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd > 2).collect();
    keep.sort_unstable();
    keep.dedup();
    let close = |from: u32, to: u32| -> bool {
        // SAFETY: close_range(2) on fds this process does not use.
        from > to || unsafe { libc::syscall(libc::SYS_close_range, from, to, 0u32) } == 0
    };
    let mut from: u32 = 3;
    let mut ok = true;
    for &k in &keep {
        let k = k as u32;
        if from < k {
            ok &= close(from, k - 1);
        }
        from = k + 1;
    }
    ok &= close(from, u32::MAX);
    if ok {
        return;
    }
    // Kernels without close_range: walk the fd table.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<RawFd> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2 && !keep.contains(fd))
            .collect();
        for fd in fds {
            // SAFETY: closing an fd this process does not use.
            unsafe { libc::close(fd) };
        }
    }
}

/// Marks every fd above 2 close-on-exec, so the process gets only stdin, stdout and
/// stderr, whatever its parent inherited. Async-signal-safe; best effort.
pub(crate) fn cloexec_above_stdio() {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only changes fd flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    // Older kernels: walk the fd table (not async-signal-safe, so only in the init).
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<RawFd> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: setting FD_CLOEXEC on an fd number; harmless if it is not open.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// Closes every fd above 2 except `keep` (for the shim, which must not hold its caller's
/// pipes or sockets open).
pub(crate) fn close_above_stdio_except(keep: Option<RawFd>) {
    close_all_except(&keep.into_iter().collect::<Vec<_>>());
}

/// Unblocks all signals and restores default dispositions (the shim ignores some, and
/// ignored signals stay ignored across exec), real-time ones included.
fn reset_signals() {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // The kernel's struct sigaction, all zero: SIG_DFL, no flags, empty mask. The raw
    // system call also reaches the signals the C library reserves for itself (32, 33).
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction with a valid struct and no old-action pointer.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null::<u64>(),
                8usize,
            )
        };
    }
}

/// Execs the process; `die_with_parent` arms the parent-death signal again after the
/// change of user (which clears it).
fn exec_process(p: &ProcessConfig, die_with_parent: bool) -> Result<Infallible, String> {
    // Docker creates a missing working directory (not possible on a read-only root, where
    // chdir then names the problem).
    let _ = std::fs::create_dir_all(&p.cwd);
    nix::unistd::chdir(&p.cwd)
        .map_err(|e| format!("chdir to cwd {:?}: {}", p.cwd.display(), e.desc()))?;
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    let exec = ExecArgs::new(&p.args, &p.env)?;
    // Before the capabilities go: raising a hard limit needs CAP_SYS_RESOURCE.
    crate::config::rlimits::apply(&p.rlimits)?;
    let mut security = p.security.clone();
    // A change of user clears the parent-death signal: arm it again.
    security.pdeathsig = die_with_parent.then_some(libc::SIGKILL);
    security.apply().map_err(|(step, e)| {
        format!(
            "{} for user {}:{}: {}",
            step.describe(),
            security.uid,
            security.gid,
            e.desc()
        )
    })?;
    cloexec_above_stdio();
    let err = exec.exec();
    Err(exec.error_message(err))
}
