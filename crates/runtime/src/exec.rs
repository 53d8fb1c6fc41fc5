//! Running another process in a running container (`weft exec`).
//!
//! The caller forks; the child joins the container's cgroup (writing 0 to its join
//! files: `tasks` on v1, `cgroup.procs` on v2) and namespaces (setns through `/proc/<pid>/ns/*`, the user
//! namespace last), forks again so the grandchild is inside the pid namespace, and the
//! grandchild takes its terminal, chdirs, applies the container's security settings
//! (user, capabilities, no_new_privs, seccomp) and execs. Everything is prepared before
//! the first fork, so the children only make system calls: `exec` is safe to call from a
//! multi-threaded process, and the caller's own namespaces are never changed.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::cgroups::Cgroup;
use crate::error::{io_ctx, Error, Result};
use crate::ops::state;
use crate::program::{self, ExecArgs};
use crate::security::{user, Security, Step};
use crate::state::Status;
use crate::tty;

/// Namespaces joined, in order: mnt after the others (after it, /proc paths of the host
/// are gone), user last (joining it first would lose the right to join the others).
const NAMESPACES: &[&str] = &["ipc", "uts", "net", "pid", "cgroup", "mnt", "user"];

/// Standard streams for [`exec_with`]; `None` inherits the caller's.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecIo<'a> {
    /// Standard input.
    pub stdin: Option<BorrowedFd<'a>>,
    /// Standard output.
    pub stdout: Option<BorrowedFd<'a>>,
    /// Standard error.
    pub stderr: Option<BorrowedFd<'a>>,
}

/// What to run with [`exec_with_options`].
#[derive(Clone, Debug, Default)]
pub struct ExecOptions<'a> {
    /// The command and its arguments (`args[0]` looked up in the container's `PATH`).
    pub args: Vec<String>,
    /// `KEY=VALUE` added to (or replacing in) the container's environment.
    pub env: Vec<String>,
    /// `uid[:gid]` or `name[:group]` from the container's /etc/passwd; `None`: the
    /// container's user.
    pub user: Option<String>,
    /// Working directory; `None`: the container's.
    pub cwd: Option<String>,
    /// Run on a new terminal of the container, proxied to `io.stdin`/`io.stdout` (the
    /// caller's by default; put in raw mode when it is a terminal), or handed over to
    /// `console_socket`.
    pub tty: bool,
    /// With `tty`: send the terminal's master to this unix socket (SCM_RIGHTS, as runc
    /// does) instead of proxying it.
    pub console_socket: Option<PathBuf>,
    /// Standard streams.
    pub io: ExecIo<'a>,
}

/// Runs `args` in the running container `id` with the container's environment plus `env`
/// (`KEY=VALUE`, overriding), the caller's stdio, and returns its exit code (128+signal if
/// killed). With `tty` the process gets a new terminal of the container, connected to
/// the caller's stdin and stdout.
pub fn exec(root: &Path, id: &str, args: &[String], env: &[String], tty: bool) -> Result<i32> {
    exec_with_options(
        root,
        id,
        &ExecOptions {
            args: args.to_vec(),
            env: env.to_vec(),
            tty,
            ..ExecOptions::default()
        },
    )
}

/// [`exec`] with explicit standard streams.
pub fn exec_with(
    root: &Path,
    id: &str,
    args: &[String],
    env: &[String],
    io: ExecIo<'_>,
) -> Result<i32> {
    exec_with_options(
        root,
        id,
        &ExecOptions {
            args: args.to_vec(),
            env: env.to_vec(),
            io,
            ..ExecOptions::default()
        },
    )
}

/// Everything the forked children need, prepared in advance.
struct Prepared {
    ns: Vec<File>,
    cgroup_join: Vec<File>,
    exec: ExecArgs,
    security: Security,
    cwd: std::ffi::CString,
    pty: Option<tty::Pty>,
}

/// [`exec`] with every option: runs the process and returns its exit code.
pub fn exec_with_options(root: &Path, id: &str, opts: &ExecOptions<'_>) -> Result<i32> {
    let (p, cwd) = prepare(root, id, opts)?;
    let (child, master) = spawn(id, p, opts, &cwd)?;
    let code = match master {
        Some(master) => {
            let input = opts.io.stdin.map_or(0, |f| f.as_raw_fd());
            let output = opts.io.stdout.map_or(1, |f| f.as_raw_fd());
            if tty::is_tty(input) {
                tty::copy_winsize(input, master.as_raw_fd());
            } else if tty::is_tty(output) {
                tty::copy_winsize(output, master.as_raw_fd());
            }
            let _raw = tty::RawMode::enter(input);
            tty::proxy(&master, input, output, child)
        }
        None => wait_code(child),
    };
    code.map_err(|e| io_ctx(format!("wait for the exec in container {id}"))(e))
}

/// Starts the process as runc's `exec` does and returns, once it has exec'd, the pid of
/// the caller's child that exits with its exit code (128+signal if killed); the caller
/// (or, once it exits, its subreaper) reaps it. A terminal (`tty`) goes to
/// `console_socket`, which is then required.
pub fn exec_spawn(root: &Path, id: &str, opts: &ExecOptions<'_>) -> Result<i32> {
    if opts.tty && opts.console_socket.is_none() {
        return Err(Error::Container {
            id: id.to_string(),
            msg: "a detached exec with a terminal needs a console socket to send it to".into(),
        });
    }
    let (p, cwd) = prepare(root, id, opts)?;
    let (child, _) = spawn(id, p, opts, &cwd)?;
    Ok(child.as_raw())
}

/// Everything an exec needs, checked and opened in advance; also the working directory.
fn prepare(root: &Path, id: &str, opts: &ExecOptions<'_>) -> Result<(Prepared, String)> {
    let cerr = |msg: String| Error::Container {
        id: id.to_string(),
        msg,
    };
    let not_running = |status| Error::WrongStatus {
        id: id.to_string(),
        op: "exec in",
        status,
        hint: "; exec needs a running container",
    };
    let st = state(root, id)?;
    if st.status != Status::Running || !st.pid_alive() {
        return Err(not_running(if st.status == Status::Running {
            Status::Stopped
        } else {
            st.status
        }));
    }
    let mut ns = Vec::new();
    for name in NAMESPACES {
        let theirs = format!("/proc/{}/ns/{name}", st.pid);
        let ours = format!("/proc/self/ns/{name}");
        let (Ok(a), Ok(b)) = (std::fs::metadata(&theirs), std::fs::metadata(&ours)) else {
            continue; // a namespace type this kernel does not have
        };
        if a.ino() != b.ino() || a.dev() != b.dev() {
            ns.push(
                File::open(&theirs).map_err(io_ctx(format!("open {theirs} of container {id}")))?,
            );
        }
    }
    let croot = PathBuf::from(format!("/proc/{}/root", st.pid));
    let spec = crate::bundle::Bundle {
        dir: st.bundle.clone(),
    }
    .spec()
    .map_err(|e| cerr(format!("{e:#}")))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| cerr("config.json has no process".into()))?;
    let mut security = Security::from_spec(process, spec.linux().as_ref()).map_err(cerr)?;
    if let Some(u) = &opts.user {
        let r = user::resolve(u, std::slice::from_ref(&croot))
            .map_err(|e| cerr(format!("user {u:?}: {e}")))?;
        security.uid = r.uid;
        security.gid = r.gid;
        security.groups = r.additional_gids;
    }
    let cwd = match &opts.cwd {
        Some(c) if !c.starts_with('/') => {
            return Err(cerr(format!("working directory {c:?} must be absolute")))
        }
        Some(c) => c.clone(),
        None => process.cwd().display().to_string(),
    };
    // The forked child joins by writing 0 (see `Cgroup::join_files`).
    let cgroup_join = match &st.cgroup {
        Some(path) => Cgroup::open(path)
            .and_then(|cg| cg.open_join_files())
            .map_err(cerr)?,
        None => Vec::new(),
    };
    let pty = if opts.tty {
        let inside = croot.join("dev/pts/ptmx");
        Some(
            tty::open_pty(&inside)
                .or_else(|_| tty::open_pty(Path::new("/dev/ptmx")))
                .map_err(|e| cerr(format!("allocate a terminal: {}", e.desc())))?,
        )
    } else {
        None
    };
    // The namespaces were opened from the right process only if it is still the same one.
    if !st.pid_alive() {
        return Err(not_running(Status::Stopped));
    }
    let base_env = process.env().clone().unwrap_or_default();
    let env = merge_env(&base_env, &opts.env);
    let prepared = Prepared {
        ns,
        cgroup_join,
        exec: ExecArgs::new(&opts.args, &env).map_err(cerr)?,
        security,
        cwd: std::ffi::CString::new(cwd.clone())
            .map_err(|_| cerr(format!("working directory {cwd:?} contains a NUL byte")))?,
        pty,
    };
    Ok((prepared, cwd))
}

/// Forks, waits until the process has exec'd (or turns its failure report into an error),
/// and returns the child to wait for and, with a terminal not sent to a console socket,
/// the pty master to proxy.
fn spawn(
    id: &str,
    mut p: Prepared,
    opts: &ExecOptions<'_>,
    cwd: &str,
) -> Result<(Pid, Option<OwnedFd>)> {
    let io = opts.io;
    let stdio = [io.stdin, io.stdout, io.stderr].map(|f| f.map(|f| f.as_raw_fd()));
    let console = match (&p.pty, &opts.console_socket) {
        (Some(_), Some(path)) => Some(crate::sock::connect(path).map_err(io_ctx(format!(
            "connect to the console socket {}",
            path.display()
        )))?),
        _ => None,
    };
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_ctx("create a pipe"))?;
    // SAFETY: the child only makes async-signal-safe system calls (see `exec_child`).
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => exec_child(&p, stdio, err_w.as_raw_fd()),
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => return Err(io_ctx(format!("fork to exec in container {id}"))(e)),
    };
    drop(err_w);
    // The child has its own copy of the slave: the master sees the end of the terminal
    // when the process and its children are gone.
    let mut master = p.pty.take().map(|pty| (pty.master, pty.number));
    let mut sent = Ok(());
    if let (Some(sock), Some((m, number))) = (&console, &master) {
        let name = format!("/dev/pts/{number}");
        sent = tty::send_fd(sock.as_raw_fd(), m.as_raw_fd(), name.as_bytes());
        master = None;
    }
    // End of file: the process exec'd (the pipe is close-on-exec) or the child died.
    let mut report = Vec::new();
    let _ = File::from(err_r).read_to_end(&mut report);
    if let Err(e) = sent {
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = wait_code(child);
        return Err(Error::Container {
            id: id.to_string(),
            msg: format!("send the terminal to the console socket: {}", e.desc()),
        });
    }
    if report.len() >= 6 {
        let _ = wait_code(child);
        let errno = Errno::from_raw(i32::from_le_bytes([
            report[2], report[3], report[4], report[5],
        ]));
        let msg = match report[0] {
            b'x' => p.exec.error_message(errno),
            b'n' => format!("join the namespaces of the container: {}", errno.desc()),
            b'p' => format!("make the process non-dumpable: {}", errno.desc()),
            b'g' => format!("join the cgroup of the container: {}", errno.desc()),
            b'c' => format!("chdir to {cwd:?} in the container: {}", errno.desc()),
            b'd' => format!("redirect the standard streams: {}", errno.desc()),
            b't' => format!("take the terminal: {}", errno.desc()),
            b's' => format!(
                "{} for user {}:{}: {}",
                Step::from_u8(report[1]).map_or("apply security settings", |s| s.describe()),
                p.security.uid,
                p.security.gid,
                errno.desc()
            ),
            _ => format!("fork in the container: {}", errno.desc()),
        };
        return Err(Error::Container {
            id: id.to_string(),
            msg,
        });
    }
    Ok((child, master.map(|(m, _)| m)))
}

/// The forked child: joins, forks into the pid namespace, execs. Never returns.
fn exec_child(p: &Prepared, stdio: [Option<RawFd>; 3], err_w: RawFd) -> ! {
    let fail = |stage: u8, detail: u8, e: Errno| -> ! {
        let mut buf = [stage, detail, 0, 0, 0, 0];
        buf[2..].copy_from_slice(&(e as i32).to_le_bytes());
        // SAFETY: write(2) and _exit(2) are async-signal-safe.
        unsafe {
            libc::write(err_w, buf.as_ptr().cast(), buf.len());
            libc::_exit(126)
        }
    };
    // Before joining: the container's processes must not open our /proc/<pid>/exe.
    if let Err(e) = program::make_non_dumpable() {
        fail(b'p', 0, e);
    }
    // SAFETY (whole block): raw system calls on fds owned by the parent's copies.
    unsafe {
        if p.pty.is_none() {
            for (to, from) in stdio.iter().enumerate() {
                if let Some(from) = from {
                    if libc::dup2(*from, to as i32) < 0 {
                        fail(b'd', 0, Errno::last());
                    }
                }
            }
        }
        for f in &p.cgroup_join {
            if libc::write(f.as_raw_fd(), b"0".as_ptr().cast(), 1) < 0 {
                fail(b'g', 0, Errno::last());
            }
        }
        for f in &p.ns {
            if libc::setns(f.as_raw_fd(), 0) < 0 {
                fail(b'n', 0, Errno::last());
            }
        }
        if libc::chdir(c"/".as_ptr()) < 0 {
            fail(b'c', 0, Errno::last());
        }
        match libc::fork() {
            -1 => fail(b'f', 0, Errno::last()),
            0 => {
                if let Some(pty) = &p.pty {
                    if libc::setsid() < 0 {
                        fail(b't', 0, Errno::last());
                    }
                    if let Err(e) = tty::make_controlling(pty.slave.as_raw_fd()) {
                        fail(b't', 0, e);
                    }
                }
                if libc::chdir(p.cwd.as_ptr()) < 0 {
                    fail(b'c', 0, Errno::last());
                }
                if let Err((step, e)) = p.security.apply() {
                    fail(b's', step as u8, e);
                }
                // Only stdio reaches the process (best effort: needs Linux 5.11).
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                );
                let e = p.exec.exec();
                fail(b'x', 0, e)
            }
            pid => {
                libc::close(err_w);
                if let Some(pty) = &p.pty {
                    libc::close(pty.slave.as_raw_fd());
                    libc::close(pty.master.as_raw_fd());
                }
                let mut status = 0;
                while libc::waitpid(pid, &mut status, 0) < 0 {
                    if Errno::last() != Errno::EINTR {
                        libc::_exit(126);
                    }
                }
                if libc::WIFSIGNALED(status) {
                    libc::_exit(128 + libc::WTERMSIG(status))
                }
                libc::_exit(libc::WEXITSTATUS(status))
            }
        }
    }
}

/// Waits for `pid` and turns its status into an exit code.
fn wait_code(pid: Pid) -> std::result::Result<i32, Errno> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `base` with `extra` applied: same keys replaced, new keys appended.
pub(crate) fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or("").to_string();
    let mut out: Vec<String> = base.to_vec();
    for e in extra {
        let k = key(e);
        match out.iter_mut().find(|x| key(x) == k) {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge() {
        let base = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        let got = merge_env(&base, &["A=2".into(), "B=3".into()]);
        assert_eq!(got, ["PATH=/bin", "A=2", "B=3"]);
    }
}
