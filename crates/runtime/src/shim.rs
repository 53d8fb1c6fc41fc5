//! The per-container shim: `weft shim <root> <id> <bundle>`.
//!
//! Spawned by `create` in a new session; it forks once more (so it is nobody's child but
//! init's), clones the container's init into its namespaces, reports the pid to `create`,
//! serves `start` on its socket, forwards SIGTERM, reaps the container, records the exit
//! in state.json and exits. Single-threaded.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{self, SigHandler, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::channel::{read_frame, Frame, Reporter};
use crate::config::InitConfig;
use crate::process::{init_main, InitFds};
use crate::state::{State, StateDir, Status};
use crate::{mounts, procfs, sock};

/// Environment variable carrying the fd of the pipe on which the shim reports to `create`.
pub(crate) const REPORT_FD_ENV: &str = "WEFT_SHIM_REPORT_FD";

/// Stack of the cloned init (the memory is only touched as it is used).
const INIT_STACK: usize = 8 << 20;

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

/// Sets everything up, clones the init and serves until the container exits.
fn run(sd: &StateDir, id: &str, bundle: &Path, reporter: &mut Reporter) -> Result<(), String> {
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
        .map_err(|e| format!("load {}/config.json: {e}", bundle.display()))?;
    let cfg = InitConfig::from_spec(&spec, bundle)?;
    let ops = mounts::plan(&cfg)?;

    // SAFETY: SIG_IGN installs no handler code.
    unsafe {
        let _ = signal::signal(Signal::SIGHUP, SigHandler::SigIgn);
        let _ = signal::signal(Signal::SIGINT, SigHandler::SigIgn);
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
    let (sync_r, sync_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let (rep_r, rep_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;

    for (flag, path) in &cfg.join {
        if *flag == CloneFlags::CLONE_NEWPID {
            let f = File::open(path)
                .map_err(|e| format!("open pid namespace {}: {e}", path.display()))?;
            nix::sched::setns(&f, CloneFlags::CLONE_NEWPID)
                .map_err(|e| format!("join pid namespace {}: {}", path.display(), e.desc()))?;
        }
    }

    let shim_pid = nix::unistd::getpid();
    let mut close = vec![
        sync_w.as_raw_fd(),
        rep_r.as_raw_fd(),
        sfd.as_fd().as_raw_fd(),
    ];
    close.extend(reporter.raw());
    let fds = InitFds {
        sync_r: sync_r.as_raw_fd(),
        report_w: rep_w.as_raw_fd(),
        log: log.as_raw_fd(),
        null: null.as_raw_fd(),
        close,
    };
    let mut stack = vec![0u8; INIT_STACK];
    // SAFETY: the shim is single-threaded, so the child gets a consistent copy of memory;
    // the callback never returns (it execs or _exits).
    let pid = unsafe {
        nix::sched::clone(
            Box::new(|| init_main(&cfg, &ops, &fds)),
            &mut stack,
            cfg.clone_flags,
            Some(libc::SIGCHLD),
        )
    }
    .map_err(|e| format!("clone the container init: {}", e.desc()))?;
    drop((sync_r, rep_w, log, null, stack));
    let mut guard = KillOnDrop(Some(pid));

    let mut from_init = File::from(rep_r);
    match read_frame(&mut from_init) {
        Ok(Frame::Ready) => {}
        Ok(Frame::Error(msg)) => return Err(msg),
        Ok(Frame::Eof) => return Err("the container init died during setup".into()),
        Err(e) => return Err(format!("read from the container init: {e}")),
    }

    let lock =
        File::create(sd.lock()).map_err(|e| format!("create {}: {e}", sd.lock().display()))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("lock {}: {}", sd.lock().display(), e.desc()))?;
    let me = shim_pid.as_raw();
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
    };
    sd.write(&state).map_err(|e| e.to_string())?;
    let listener = sock::bind(&sd.sock())
        .map_err(|e| format!("bind control socket {}: {e}", sd.sock().display()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control socket: {e}"))?;
    guard.0 = None;
    reporter.ok(pid.as_raw());

    let mut shim = Shim {
        sd: sd.clone(),
        state,
        pid,
        sync_w: Some(sync_w),
        from_init,
    };
    shim.serve(&listener, &sfd);
    let _ = std::fs::remove_file(sd.sock());
    Ok(())
}

/// Kills and reaps the init if setup fails half-way.
struct KillOnDrop(Option<Pid>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// The running shim.
struct Shim {
    sd: StateDir,
    state: State,
    pid: Pid,
    sync_w: Option<OwnedFd>,
    from_init: File,
}

impl Shim {
    /// Serves requests and signals until the container has exited and been recorded.
    fn serve(&mut self, listener: &UnixListener, sfd: &SignalFd) {
        while self.state.status != Status::Stopped {
            let mut fds = [
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            ];
            match nix::poll::poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("shim {}: poll: {e}", self.state.id);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let (conn_ready, sig_ready) = (ready(&fds[0]), ready(&fds[1]));
            if sig_ready {
                self.handle_signals(sfd);
            }
            if conn_ready && self.state.status != Status::Stopped {
                if let Ok((conn, _)) = listener.accept() {
                    let _ = conn.set_nonblocking(false);
                    let reply = match sock::read_request(&conn).as_deref() {
                        Ok("start") => match self.start() {
                            Ok(()) => "ok".to_string(),
                            Err(msg) => format!("error {msg}"),
                        },
                        Ok(other) => format!("error unknown request {other:?}"),
                        Err(e) => format!("error read request: {e}"),
                    };
                    sock::reply(&conn, &reply);
                }
            }
        }
    }

    fn handle_signals(&mut self, sfd: &SignalFd) {
        while let Ok(Some(info)) = sfd.read_signal() {
            if info.ssi_signo == libc::SIGTERM as u32 {
                let _ = signal::kill(self.pid, Signal::SIGTERM);
            }
        }
        // SIGCHLD or not, check whether the container exited (signals coalesce).
        self.reap(false);
    }

    /// Reaps the container if it exited (waits for it when `block`); records the exit.
    fn reap(&mut self, block: bool) {
        let flags = (!block).then_some(WaitPidFlag::WNOHANG);
        loop {
            let code = match waitpid(self.pid, flags) {
                Ok(WaitStatus::Exited(_, c)) => Some(c),
                Ok(WaitStatus::Signaled(_, s, _)) => Some(128 + s as i32),
                Ok(WaitStatus::StillAlive) => return,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(_) => None, // ECHILD: already gone
            };
            self.record_exit(code);
            return;
        }
    }

    fn record_exit(&mut self, code: Option<i32>) {
        self.state.status = Status::Stopped;
        self.state.exit_code = code;
        self.state.finished = Some(procfs::now_rfc3339());
        if let Err(e) = self.sd.write(&self.state) {
            eprintln!("shim {}: {e}", self.state.id);
        }
    }

    /// Lets the init exec the process; returns the exec error if it failed.
    fn start(&mut self) -> Result<(), String> {
        if self.state.status != Status::Created {
            return Err(format!(
                "it is {}; start works once, on a created container",
                self.state.status
            ));
        }
        let Some(sync_w) = self.sync_w.take() else {
            return Err("already started".into());
        };
        if nix::unistd::write(&sync_w, b"G").is_err() {
            self.reap(true);
            return Err("the container init is gone".into());
        }
        drop(sync_w);
        match read_frame(&mut self.from_init) {
            Ok(Frame::Eof) => {
                self.state.status = Status::Running;
                self.state.started = Some(procfs::now_rfc3339());
                if let Err(e) = self.sd.write(&self.state) {
                    eprintln!("shim {}: {e}", self.state.id);
                }
                Ok(())
            }
            Ok(Frame::Error(msg)) => {
                self.state.error = Some(msg.clone());
                self.reap(true);
                Err(msg)
            }
            Ok(Frame::Ready) | Err(_) => {
                self.reap(true);
                Err("the container init failed to exec".into())
            }
        }
    }
}

/// The program to run as the shim: `$WEFT_EXE`, else this executable.
pub(crate) fn shim_exe() -> std::io::Result<PathBuf> {
    match std::env::var_os("WEFT_EXE") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => std::env::current_exe(),
    }
}
