//! The per-container shim: `weft shim <root> <id> <bundle>`.
//!
//! Spawned by `create` in a new session; it forks once more (so it is nobody's child but
//! init's), creates the container's cgroup, joins the namespaces the container shares,
//! clones the container's init into new ones, reports the pid to `create`, serves
//! `start`, `attach` and `norestart` on its socket, forwards SIGTERM, copies a terminal
//! container's output to the log, reaps the container, restarts it as its restart policy
//! says, records the exit in state.json and exits. Single-threaded.

mod serve;
pub(crate) mod spawn;

use std::fs::{File, OpenOptions};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::sched::CloneFlags;
use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::ForkResult;

use crate::bundle::RestartPolicy;
use crate::cgroups::Cgroup;
use crate::channel::Reporter;
use crate::config::InitConfig;
use crate::state::{State, StateDir, Status};
use crate::{mounts, procfs, sock};
use serve::Shim;
use spawn::{Inherit, KillOnDrop};

/// Environment variable carrying the fd of the pipe on which the shim reports to `create`.
pub(crate) const REPORT_FD_ENV: &str = "WEFT_SHIM_REPORT_FD";

/// Entry point of `weft shim <root> <id> <bundle>`; `args` are the words after `shim`.
/// Returns the process exit code. Call it before any other thread exists.
pub fn shim_main(args: &[String]) -> i32 {
    let [root, id, bundle] = args else {
        eprintln!("usage: weft shim ROOT ID BUNDLE (started by the runtime, not by hand)");
        return 2;
    };
    let report_fd = std::env::var(REPORT_FD_ENV)
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .filter(|fd| *fd > 2);
    // Hold nothing of the caller's (pipes, sockets) but the report pipe.
    crate::process::close_above_stdio_except(report_fd);
    let report = report_fd
        // SAFETY: `create` passed us this inherited pipe end, which nothing else owns.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    if let Some(fd) = &report {
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    let mut reporter = Reporter(report);
    // Detach: the process `create` spawned exits now; the shim goes on in its child, which
    // is reparented to init and outlives any weft process.
    // SAFETY: the shim is single-threaded at this point.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { .. }) => return 0,
        Ok(ForkResult::Child) => {}
        Err(e) => {
            reporter.error(&format!("fork the shim: {}", e.desc()));
            return 1;
        }
    }
    let _ = std::env::set_current_dir("/");
    let sd = StateDir::new(Path::new(root), id);
    match run(&sd, id, Path::new(bundle), &mut reporter) {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("{} shim {id}: {msg}", procfs::now_rfc3339());
            reporter.error(&msg);
            1
        }
    }
}

/// Removes the cgroup on drop (when setup fails half-way), after the init is reaped.
pub(crate) struct CgroupGuard(pub Option<Cgroup>);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Some(cg) = self.0.take() {
            cg.kill_all();
            if let Err(e) = cg.remove() {
                eprintln!("{} shim: {e}", procfs::now_rfc3339());
            }
        }
    }
}

/// Creates the container's cgroup with its limits. Without any cgroup file system, a
/// container without limits runs without a cgroup.
pub(crate) fn setup_cgroup(sd: &StateDir, cfg: &InitConfig) -> Result<Option<Cgroup>, String> {
    let cg = match Cgroup::open(&cfg.cgroup_path) {
        Ok(cg) => cg,
        Err(e) if cfg.resources.is_empty() => {
            eprintln!(
                "{} shim: running without a cgroup: {e}",
                procfs::now_rfc3339()
            );
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    // Recorded first, so that `delete --force` finds the cgroup whatever happens next.
    std::fs::write(sd.cgroup(), &cfg.cgroup_path)
        .map_err(|e| format!("write {}: {e}", sd.cgroup().display()))?;
    if cg.dirs().iter().any(|d| d.exists()) {
        return Err(format!(
            "cgroup {} already exists; another container uses it, or delete the stale one",
            cfg.cgroup_path
        ));
    }
    match cg.create(&cfg.resources) {
        Ok(()) => Ok(Some(cg)),
        // Limits need the cgroup; a container without limits can do without.
        Err(e) if cfg.resources.is_empty() => {
            eprintln!(
                "{} shim: running without a cgroup: {e}",
                procfs::now_rfc3339()
            );
            let _ = std::fs::remove_file(sd.cgroup());
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Hands the writable layer of a user-namespaced container to its root user.
pub(crate) fn chown_for_userns(cfg: &InitConfig) -> Result<(), String> {
    let Some(maps) = &cfg.userns else {
        return Ok(());
    };
    let host_of_root = |map: &str| -> Option<u32> {
        map.lines().find_map(|l| {
            let f: Vec<u32> = l
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (f.len() == 3 && f[0] == 0).then_some(f[1])
        })
    };
    let (Some(uid), Some(gid)) = (host_of_root(&maps.uid_map), host_of_root(&maps.gid_map)) else {
        return Err("the user namespace maps no host id to container root (0)".into());
    };
    let mut dirs: Vec<PathBuf> = vec![cfg.rootfs.clone()];
    if let Some(ov) = &cfg.overlay {
        dirs.push(ov.upper.clone());
        dirs.push(ov.work.clone());
    }
    for d in dirs {
        std::os::unix::fs::chown(&d, Some(uid), Some(gid))
            .map_err(|e| format!("chown {} to {uid}:{gid}: {e}", d.display()))?;
    }
    Ok(())
}

/// Joins the namespaces the container shares, before the clone, so that the init is born
/// in them (a user-namespaced init could not join them itself).
pub(crate) fn join_namespaces(cfg: &InitConfig) -> Result<(), String> {
    for (flag, path) in &cfg.join {
        let f = File::open(path).map_err(|e| {
            format!(
                "open namespace {}: {}",
                path.display(),
                mounts::describe(&e)
            )
        })?;
        nix::sched::setns(&f, *flag)
            .map_err(|e| format!("join namespace {}: {}", path.display(), e.desc()))?;
    }
    Ok(())
}

/// Sets everything up, clones the init and serves until the container exits.
fn run(sd: &StateDir, id: &str, bundle: &Path, reporter: &mut Reporter) -> Result<(), String> {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
        .map_err(|e| format!("load {}/config.json: {e}", bundle.display()))?;
    let cfg = InitConfig::from_spec(&spec, bundle, id)?;
    // The parsed spec is large and the shim idles for the container's lifetime: keep only
    // what restarts need (cfg, ops).
    drop(spec);
    let ops = mounts::plan(&cfg)?;

    // SAFETY: SIG_IGN installs no handler code.
    unsafe {
        let _ = signal::signal(Signal::SIGHUP, SigHandler::SigIgn);
        let _ = signal::signal(Signal::SIGINT, SigHandler::SigIgn);
        let _ = signal::signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGTERM);
    mask.thread_block()
        .map_err(|e| format!("block signals: {e}"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("signalfd: {e}"))?;

    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(sd.log())
        .map_err(|e| format!("open log {}: {e}", sd.log().display()))?;
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("open /dev/null: {e}"))?;

    let cgroup = CgroupGuard(setup_cgroup(sd, &cfg)?);
    chown_for_userns(&cfg)?;
    join_namespaces(&cfg)?;
    let inherit = Inherit {
        log_null: Some((&log, &null)),
        cgroup: cgroup.0.as_ref(),
        console_socket: None,
        start_fifo: None,
    };
    let child = spawn::spawn(&cfg, &ops, cfg.clone_flags, &inherit)?;
    let mut guard = KillOnDrop(Some(child.pid));
    let pid = child.pid;

    // A restarted process keeps the network namespace: the shim moves into it and later
    // clones without a new one.
    let mut restart_flags = cfg.clone_flags;
    if cfg.restart != RestartPolicy::No && cfg.clone_flags.contains(CloneFlags::CLONE_NEWNET) {
        let path = format!("/proc/{pid}/ns/net");
        let f = File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
        nix::sched::setns(&f, CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("hold the network namespace of the container: {e}"))?;
        restart_flags.remove(CloneFlags::CLONE_NEWNET);
    }

    let lock =
        File::create(sd.lock()).map_err(|e| format!("create {}: {e}", sd.lock().display()))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("lock {}: {}", sd.lock().display(), e.desc()))?;
    let me = nix::unistd::getpid().as_raw();
    let state = State {
        id: id.to_string(),
        status: Status::Created,
        pid: pid.as_raw(),
        shim_pid: me,
        bundle: bundle.to_path_buf(),
        exit_code: None,
        created: procfs::now_rfc3339(),
        started: None,
        finished: None,
        error: None,
        pid_start: procfs::start_time(pid.as_raw()).unwrap_or(0),
        shim_start: procfs::start_time(me).unwrap_or(0),
        oom_killed: false,
        cgroup: cgroup.0.as_ref().map(|c| c.path.clone()),
        restart_count: 0,
    };
    sd.write(&state).map_err(|e| e.to_string())?;
    let listener = sock::bind(&sd.sock())
        .map_err(|e| format!("bind control socket {}: {e}", sd.sock().display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control socket: {e}"))?;
    guard.0 = None;
    reporter.ok(pid.as_raw());

    let mut cgroup = cgroup;
    let mut shim = Shim::new(
        sd.clone(),
        state,
        cfg,
        ops,
        restart_flags,
        child,
        (log, null),
        cgroup.0.take(),
    );
    // The shim idles for the container's lifetime: give back the heap its setup used
    // (parsing the bundle, building the mounts) and no longer needs. Measured: 392 → 312 kB
    // private memory per idle shim (bench/README.md, "runtime" c).
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    release_unused_stack();
    shim.serve(&listener, &sfd);
    let _ = std::fs::remove_file(sd.sock());
    Ok(())
}

/// Gives back the pages of the main thread's stack that setup used deep below where the
/// shim now runs (parsing and building the container touched about 50 KB; serving needs a
/// few). The pages stay mapped and read as zeros if touched again. A margin of 16 KB below
/// the current frame is kept for the serve loop, its calls and signal frames.
fn release_unused_stack() {
    const MARGIN: usize = 16 << 10;
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    // SAFETY: sysconf has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => return,
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let Some(start) = maps
        .lines()
        .find(|l| l.ends_with("[stack]"))
        .and_then(|l| l.split('-').next())
        .and_then(|a| usize::from_str_radix(a, 16).ok())
    else {
        return;
    };
    let end = sp.saturating_sub(MARGIN) & !(page - 1);
    if end > start {
        // SAFETY: the range lies in this thread's own stack mapping, wholly below the live
        // frames (MARGIN below the current one); MADV_DONTNEED on private anonymous memory
        // only drops pages, which read back as zeros.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }
}

/// The program to run as the shim: `$WEFT_EXE`, else this executable.
pub(crate) fn shim_exe() -> std::io::Result<PathBuf> {
    match std::env::var_os("WEFT_EXE") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => std::env::current_exe(),
    }
}
