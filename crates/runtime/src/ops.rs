//! The runc-like lifecycle operations: create, start, state, list, kill, stop, delete, logs.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::cgroups::Cgroup;
use crate::channel::parse_report;
use crate::config::InitConfig;
use crate::error::{io_ctx, Error, Result};
use crate::shim::{shim_exe, REPORT_FD_ENV};
use crate::state::{validate_id, State, StateDir, Status};
use crate::wake;
use crate::{mounts, sock};

/// How long `start` waits for the shim's answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `delete` and `stop` wait for a killed container's shim to finish.
const SHIM_EXIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Polling interval while waiting for a state change.
const POLL: Duration = Duration::from_millis(20);
/// The longest a wait that wakes on the shim's exit sleeps before it looks anyway.
const WAKE_FALLBACK: Duration = Duration::from_millis(200);
/// How often `logs -f` copies new output of a running container.
const LOG_FOLLOW: Duration = Duration::from_millis(100);

/// Options of [`create_with`].
#[derive(Clone, Debug)]
pub struct CreateOptions {
    /// The program run as `<exe> shim <root> <id> <bundle>`; default: `$WEFT_EXE`, else
    /// the current executable.
    pub shim_exe: Option<PathBuf>,
    /// How long to wait for the shim to report the container pid.
    pub timeout: Duration,
    /// Who owns the container's process and its standard streams.
    pub io: ContainerIo,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            shim_exe: None,
            timeout: Duration::from_secs(30),
            io: ContainerIo::Shim,
        }
    }
}

/// Who owns a container's process and where its standard streams go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ContainerIo {
    /// A shim reaps the process, records its exit, restarts it as its policy says; its
    /// output goes to the container log (a terminal container's pty stays with the shim,
    /// see [`crate::attach`]).
    #[default]
    Shim,
    /// runc's model, no shim: the caller clones the init (so the caller must be
    /// single-threaded), which keeps the caller's stdin, stdout and stderr, or, for a
    /// terminal container, gets a pty as controlling terminal and stdio whose master is
    /// sent (SCM_RIGHTS, with the terminal's path as data) over the unix socket at
    /// `console_socket`. Once the caller exits, the init is reparented to its subreaper,
    /// which reaps it; the runtime does not learn the exit code.
    Inherit {
        /// The engine's console socket (needed when `process.terminal` is true).
        console_socket: Option<PathBuf>,
    },
}

/// Creates container `id` from the OCI bundle at `bundle`: returns once its init is alive
/// in its new namespaces with the rootfs set up, blocked before exec (status `created`).
pub fn create(root: &Path, id: &str, bundle: &Path) -> Result<State> {
    create_with(root, id, bundle, &CreateOptions::default())
}

/// [`create`] with options.
pub fn create_with(root: &Path, id: &str, bundle: &Path, opts: &CreateOptions) -> Result<State> {
    validate_id(id)?;
    let bundle_err = |msg: String| Error::Bundle {
        path: bundle.to_path_buf(),
        msg,
    };
    let bundle = bundle
        .canonicalize()
        .map_err(|e| bundle_err(format!("cannot open the bundle directory: {e}")))?;
    let spec = oci_spec::runtime::Spec::load(bundle.join("config.json"))
        .map_err(|e| bundle_err(format!("config.json: {e}")))?;
    let cfg = InitConfig::from_spec(&spec, &bundle, id).map_err(bundle_err)?;
    let ops = mounts::plan(&cfg).map_err(bundle_err)?;

    fs::create_dir_all(root).map_err(io_ctx(format!("create runtime root {}", root.display())))?;
    let root = root
        .canonicalize()
        .map_err(io_ctx(format!("resolve runtime root {}", root.display())))?;
    let sd = StateDir::new(&root, id);
    match fs::create_dir(&sd.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Error::AlreadyExists {
                id: id.to_string(),
                root,
            })
        }
        Err(e) => return Err(io_ctx(format!("create {}", sd.dir.display()))(e)),
    }
    let _ = fs::set_permissions(&sd.dir, fs::Permissions::from_mode(0o700));
    let created = match &opts.io {
        ContainerIo::Shim => spawn_shim(&sd, &root, id, &bundle, opts).and_then(|_| sd.read()),
        ContainerIo::Inherit { console_socket } => {
            crate::direct::create(&sd, id, &bundle, &cfg, &ops, console_socket.as_deref())
        }
    };
    if created.is_err() {
        let _ = fs::remove_dir_all(&sd.dir);
    }
    created
}

/// Spawns the shim detached (new session) and waits for its report.
fn spawn_shim(
    sd: &StateDir,
    root: &Path,
    id: &str,
    bundle: &Path,
    opts: &CreateOptions,
) -> Result<i32> {
    let exe = match &opts.shim_exe {
        Some(p) => p.clone(),
        None => shim_exe().map_err(io_ctx(
            "find the weft executable for the shim (set WEFT_EXE)",
        ))?,
    };
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_ctx("create the shim pipe"))?;
    let shim_log = File::create(sd.shim_log())
        .map_err(io_ctx(format!("create {}", sd.shim_log().display())))?;
    let wfd = w.as_raw_fd();
    let mut cmd = Command::new(&exe);
    cmd.arg("shim")
        .arg(root)
        .arg(id)
        .arg(bundle)
        .env(REPORT_FD_ENV, wfd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(shim_log);
    // SAFETY: only async-signal-safe calls (setsid, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            if libc::fcntl(wfd, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(io_ctx(format!(
        "spawn the shim {} for container {id}",
        exe.display()
    )))?;
    drop(w);
    // The spawned process forks the real shim and exits at once.
    let _ = child.wait();
    let report = read_report(File::from(r), opts.timeout).map_err(|e| Error::Container {
        id: id.to_string(),
        msg: format!("{e}; see {}", sd.shim_log().display()),
    })?;
    parse_report(&report).map_err(|msg| Error::Container {
        id: id.to_string(),
        msg: if report.is_empty() {
            let log = fs::read_to_string(sd.shim_log()).unwrap_or_default();
            format!("{msg}: {}", log.trim())
        } else {
            msg
        },
    })
}

/// Reads the shim's report until end of file, with a timeout.
fn read_report(mut f: File, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut pfd = [PollFd::new(std::os::fd::AsFd::as_fd(&f), PollFlags::POLLIN)];
        match nix::poll::poll(&mut pfd, PollTimeout::from(ms)) {
            Ok(0) if left.is_zero() => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the shim did not report within {}s", timeout.as_secs()),
                ))
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut buf = [0u8; 4096];
        match f.read(&mut buf) {
            Ok(0) => return Ok(String::from_utf8_lossy(&out).into_owned()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

/// The state dir of an existing container.
fn existing(root: &Path, id: &str) -> Result<StateDir> {
    validate_id(id)?;
    let sd = StateDir::new(root, id);
    if !sd.dir.is_dir() {
        return Err(Error::NotFound {
            id: id.to_string(),
            root: root.to_path_buf(),
        });
    }
    Ok(sd)
}

/// Lets the created container exec its process; fails with the exec error (e.g.
/// `exec "foo": No such file or directory`), after which the container is stopped (127).
pub fn start(root: &Path, id: &str) -> Result<()> {
    let sd = existing(root, id)?;
    let st = sd.current()?;
    if st.status != Status::Created {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "start",
            status: st.status,
            hint: "; start works once, right after create",
        });
    }
    if st.shim_pid == 0 {
        return crate::direct::start(&sd, &st);
    }
    let reply = sock::request(&sd.sock(), "start", START_TIMEOUT).map_err(io_ctx(format!(
        "reach the shim of container {id} at {}",
        sd.sock().display()
    )))?;
    match reply.strip_prefix("error ") {
        None if reply == "ok" => Ok(()),
        None => Err(Error::Container {
            id: id.to_string(),
            msg: format!("unexpected reply from the shim: {reply:?}"),
        }),
        Some(msg) => Err(Error::Container {
            id: id.to_string(),
            msg: msg.to_string(),
        }),
    }
}

/// The state of container `id` (corrected when its shim died without recording the exit).
pub fn state(root: &Path, id: &str) -> Result<State> {
    let sd = existing(root, id)?;
    if !sd.state().exists() {
        return Err(Error::Container {
            id: id.to_string(),
            msg: "has no state yet (being created, or its creation was interrupted); delete it with force".into(),
        });
    }
    sd.current()
}

/// The states of all containers under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<State>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_ctx(format!("list {}", root.display()))(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_ctx(format!("list {}", root.display())))?;
        let Some(id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if validate_id(&id).is_ok() && StateDir::new(root, &id).state().exists() {
            if let Ok(st) = state(root, &id) {
                out.push(st);
            }
        }
    }
    out.sort_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)));
    Ok(out)
}

/// Sends signal `sig` to the container's init (from any process; a recycled pid is never
/// signalled).
pub fn kill(root: &Path, id: &str, sig: i32) -> Result<()> {
    let st = state(root, id)?;
    if !(1..=64).contains(&sig) {
        return Err(Error::Container {
            id: id.to_string(),
            msg: format!("invalid signal number {sig}"),
        });
    }
    let not_running = || Error::WrongStatus {
        id: id.to_string(),
        op: "kill",
        status: Status::Stopped,
        hint: "",
    };
    // Whatever the signal, a container killed on purpose is not restarted (as Docker).
    no_restart(root, id, &st);
    if st.status == Status::Stopped || !st.pid_alive() {
        return Err(not_running());
    }
    // SAFETY: kill(2) with a checked pid and signal number.
    if unsafe { libc::kill(st.pid, sig) } < 0 {
        let e = Errno::last();
        if e == Errno::ESRCH {
            return Err(not_running());
        }
        return Err(io_ctx(format!(
            "signal {sig} to container {id} (pid {})",
            st.pid
        ))(e));
    }
    Ok(())
}

/// Tells the shim that the next exit is final (no restart); best effort.
fn no_restart(root: &Path, id: &str, st: &State) {
    if st.status != Status::Stopped && st.shim_alive() {
        let sd = StateDir::new(root, id);
        let _ = sock::request(&sd.sock(), "norestart", Duration::from_secs(5));
    }
}

/// Stops the container: SIGTERM, up to `timeout` to exit, then SIGKILL. Returns once the
/// exit is recorded (status `stopped`). A stopped container is not restarted.
pub fn stop(root: &Path, id: &str, timeout: Duration) -> Result<()> {
    let st = state(root, id)?;
    if st.status == Status::Stopped {
        return Ok(());
    }
    no_restart(root, id, &st);
    let _ = kill(root, id, libc::SIGTERM);
    if wait_stopped(root, id, timeout)? {
        return Ok(());
    }
    let _ = kill(root, id, libc::SIGKILL);
    if wait_stopped(root, id, SHIM_EXIT_TIMEOUT)? {
        return Ok(());
    }
    Err(Error::Container {
        id: id.to_string(),
        msg: format!(
            "did not stop within {}s of SIGKILL; check its shim in {}",
            SHIM_EXIT_TIMEOUT.as_secs(),
            StateDir::new(root, id).shim_log().display()
        ),
    })
}

/// Waits until the container is stopped; `false` on timeout.
fn wait_stopped(root: &Path, id: &str, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let st = state(root, id)?;
        if st.status == Status::Stopped {
            return Ok(true);
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(false);
        }
        // The shim records the exit and then exits: wake on that, not on a timer.
        wake::wait_exit(st.waited_pid(), (deadline - now).min(WAKE_FALLBACK));
    }
}

/// Deletes the container: kills it if `force` (or if it is only created), waits for its
/// shim to finish, removes its cgroup and its state dir (a bundle kept under it goes too).
/// Fails on a running container without `force`. With `force` it also cleans up after a
/// shim that died at any point, even before writing the state.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let sd = existing(root, id)?;
    let mut cgroup_path = None;
    match sd.current() {
        Ok(st) => {
            if st.status == Status::Running && !force {
                return Err(Error::WrongStatus {
                    id: id.to_string(),
                    op: "delete",
                    status: st.status,
                    hint: "; stop it first or delete with force",
                });
            }
            no_restart(root, id, &st);
            if st.status != Status::Stopped && st.pid_alive() {
                // SAFETY: kill(2) of the container's verified init.
                unsafe { libc::kill(st.pid, libc::SIGKILL) };
            }
            wait_shim_exit(&sd, &st)?;
            cgroup_path = st.cgroup;
        }
        Err(_) if force => {
            // No usable state: wait for a shim that may still hold the lock.
            let deadline = Instant::now() + SHIM_EXIT_TIMEOUT;
            while lock_held(&sd) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
        }
        Err(e) if sd.state().exists() => return Err(e),
        Err(_) => {
            return Err(Error::Container {
                id: id.to_string(),
                msg: "has no state (being created, or its creation was interrupted); delete it with force".into(),
            })
        }
    }
    if cgroup_path.is_none() {
        cgroup_path = fs::read_to_string(sd.cgroup()).ok();
    }
    if let Some(p) = cgroup_path.filter(|p| !p.trim().is_empty()) {
        remove_cgroup(id, p.trim())?;
    }
    fs::remove_dir_all(&sd.dir).map_err(io_ctx(format!("remove {}", sd.dir.display())))
}

/// Removes the container's cgroup once its processes are gone (killing stragglers: every
/// process in it is the container's).
fn remove_cgroup(id: &str, path: &str) -> Result<()> {
    let Ok(cg) = Cgroup::open(path) else {
        return Ok(()); // no cgroup file system (any more): nothing to remove
    };
    cg.kill_all();
    cg.remove().map_err(|msg| Error::Container {
        id: id.to_string(),
        msg,
    })
}

/// Whether a shim holds the container's lock.
fn lock_held(sd: &StateDir) -> bool {
    match File::open(sd.lock()) {
        Ok(f) => Flock::lock(f, FlockArg::LockExclusiveNonblock).is_err(),
        Err(_) => false,
    }
}

/// Waits until the shim has exited (its lock is free).
fn wait_shim_exit(sd: &StateDir, st: &State) -> Result<()> {
    let deadline = Instant::now() + SHIM_EXIT_TIMEOUT;
    loop {
        let free = match File::open(sd.lock()) {
            Ok(_) => !lock_held(sd),
            Err(_) => !st.shim_alive(),
        };
        if free {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Container {
                id: st.id.clone(),
                msg: format!(
                    "its shim (pid {}) did not exit within {}s; kill it and delete again",
                    st.shim_pid,
                    SHIM_EXIT_TIMEOUT.as_secs()
                ),
            });
        }
        // Wake when the shim exits (its lock goes with it); the lock decides.
        wake::wait_exit(st.shim_pid, (deadline - now).min(WAKE_FALLBACK));
    }
}

/// Copies the container's output (stdout and stderr) to `out`; with `follow`, keeps
/// copying until the container has stopped.
pub fn logs(root: &Path, id: &str, follow: bool, out: &mut dyn Write) -> Result<()> {
    let sd = existing(root, id)?;
    let path = sd.log();
    let mut file: Option<File> = None;
    // Following, a write to the log wakes the next copy at once, once the container has
    // outlived a first wait: closing an inotify instance waits for an SRCU grace period
    // (about 14 ms measured), which a short foreground `weft run` must not pay.
    let mut written: Option<wake::Modified> = None;
    let mut waited_once = false;
    let ctx = || format!("copy the log of container {id}");
    loop {
        if file.is_none() {
            file = match File::open(&path) {
                Ok(f) => Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_ctx(format!("open {}", path.display()))(e)),
            };
        }
        if let Some(w) = &written {
            w.clear(); // before the copy: a write during it wakes the next one
        }
        let (stopped, waited) = match follow.then(|| state(root, id)) {
            None => (true, 0),
            Some(Ok(st)) => (st.status == Status::Stopped, st.waited_pid()),
            Some(Err(_)) => (true, 0), // deleted meanwhile
        };
        // Copy after reading the status, so that a stopped container's output is complete.
        if let Some(f) = file.as_mut() {
            io::copy(f, out).map_err(io_ctx(ctx()))?;
            out.flush().map_err(io_ctx(ctx()))?;
        }
        if stopped {
            return Ok(());
        }
        if waited_once && written.is_none() && file.is_some() {
            written = wake::Modified::new(&path);
            if written.is_some() {
                continue; // copy once more: what was written before the watch is not missed
            }
        }
        // Copy new output when it is written (every LOG_FOLLOW at the latest, where the log
        // cannot be watched); the exit wakes the last copy.
        wake::wait_exit_or(waited, written.as_ref().map(|w| w.fd()), LOG_FOLLOW);
        waited_once = true;
    }
}
