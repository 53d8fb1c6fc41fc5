//! Running another process in a running container (`weft exec`).
//!
//! The caller forks; the child joins the container's namespaces (setns ipc, uts, net, pid,
//! mnt via `/proc/<pid>/ns/*`), forks again so the grandchild is inside the pid namespace,
//! and the grandchild chdirs to / and execs. Everything is prepared before the first fork,
//! so the children only make system calls: `exec` is safe to call from a multi-threaded
//! process, and the caller's own namespaces are never changed.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::error::{io_ctx, Error, Result};
use crate::ops::state;
use crate::process::ExecArgs;
use crate::state::Status;

/// Namespaces joined, in order (mnt last: after it, /proc paths of the host are gone).
const NAMESPACES: &[&str] = &["ipc", "uts", "net", "pid", "mnt"];

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

/// Runs `args` in the running container `id` with the container's environment plus `env`
/// (`KEY=VALUE`, overriding), the caller's stdio, and returns its exit code (128+signal if
/// killed). `tty`: the process shares the caller's terminal (no new pty yet).
pub fn exec(
    root: &std::path::Path,
    id: &str,
    args: &[String],
    env: &[String],
    tty: bool,
) -> Result<i32> {
    let _ = tty;
    exec_with(root, id, args, env, ExecIo::default())
}

/// [`exec`] with explicit standard streams.
pub fn exec_with(
    root: &std::path::Path,
    id: &str,
    args: &[String],
    env: &[String],
    io: ExecIo<'_>,
) -> Result<i32> {
    let st = state(root, id)?;
    if st.status != Status::Running || !st.pid_alive() {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "exec in",
            status: if st.status == Status::Running {
                Status::Stopped
            } else {
                st.status
            },
            hint: "; exec needs a running container",
        });
    }
    let mut ns_files = Vec::new();
    for ns in NAMESPACES {
        let p = format!("/proc/{}/ns/{ns}", st.pid);
        ns_files.push(File::open(&p).map_err(io_ctx(format!("open {p} of container {id}")))?);
    }
    // The namespaces were opened from the right process only if it is still the same one.
    if !st.pid_alive() {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "exec in",
            status: Status::Stopped,
            hint: "",
        });
    }
    let base_env = crate::bundle::Bundle {
        dir: st.bundle.clone(),
    }
    .spec()
    .ok()
    .and_then(|s| s.process().as_ref().and_then(|p| p.env().clone()))
    .unwrap_or_default();
    let env = merge_env(&base_env, env);
    let prepared = ExecArgs::new(args, &env).map_err(|msg| Error::Container {
        id: id.to_string(),
        msg,
    })?;
    let ns_fds: Vec<RawFd> = ns_files.iter().map(|f| f.as_raw_fd()).collect();
    let stdio = [io.stdin, io.stdout, io.stderr].map(|f| f.map(|f| f.as_raw_fd()));
    let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_ctx("create a pipe"))?;

    // SAFETY: the child only makes async-signal-safe system calls (see `exec_child`).
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            exec_child(&ns_fds, stdio, &prepared, err_w.as_raw_fd())
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => return Err(io_ctx(format!("fork to exec in container {id}"))(e)),
    };
    drop(err_w);
    drop(ns_files);
    let mut report = Vec::new();
    let _ = File::from(err_r).read_to_end(&mut report);
    let code = wait_code(child);
    if report.len() >= 5 {
        let errno = Errno::from_raw(i32::from_le_bytes([
            report[1], report[2], report[3], report[4],
        ]));
        let msg = match report[0] {
            b'x' => prepared.error_message(errno),
            b'n' => format!("join the namespaces of the container: {}", errno.desc()),
            b'c' => format!("chdir / in the container: {}", errno.desc()),
            b'd' => format!("redirect the standard streams: {}", errno.desc()),
            _ => format!("fork in the container: {}", errno.desc()),
        };
        return Err(Error::Container {
            id: id.to_string(),
            msg,
        });
    }
    code.map_err(|e| io_ctx(format!("wait for the exec in container {id}"))(e))
}

/// The forked child: joins, forks into the pid namespace, execs. Never returns.
fn exec_child(ns_fds: &[RawFd], stdio: [Option<RawFd>; 3], prepared: &ExecArgs, err_w: RawFd) -> ! {
    let fail = |stage: u8, e: Errno| -> ! {
        let mut buf = [stage, 0, 0, 0, 0];
        buf[1..].copy_from_slice(&(e as i32).to_le_bytes());
        // SAFETY: write(2) and _exit(2) are async-signal-safe.
        unsafe {
            libc::write(err_w, buf.as_ptr().cast(), buf.len());
            libc::_exit(126)
        }
    };
    // SAFETY (whole block): raw system calls on fds owned by the parent's copies.
    unsafe {
        for (to, from) in stdio.iter().enumerate() {
            if let Some(from) = from {
                if libc::dup2(*from, to as i32) < 0 {
                    fail(b'd', Errno::last());
                }
            }
        }
        for &fd in ns_fds {
            if libc::setns(fd, 0) < 0 {
                fail(b'n', Errno::last());
            }
        }
        if libc::chdir(c"/".as_ptr()) < 0 {
            fail(b'c', Errno::last());
        }
        match libc::fork() {
            -1 => fail(b'f', Errno::last()),
            0 => {
                // Only stdio reaches the process (best effort: needs Linux 5.11).
                libc::syscall(
                    libc::SYS_close_range,
                    3u32,
                    u32::MAX,
                    libc::CLOSE_RANGE_CLOEXEC,
                );
                let e = prepared.exec();
                let mut buf = [b'x', 0, 0, 0, 0];
                buf[1..].copy_from_slice(&(e as i32).to_le_bytes());
                libc::write(err_w, buf.as_ptr().cast(), buf.len());
                libc::_exit(127)
            }
            pid => {
                libc::close(err_w);
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
