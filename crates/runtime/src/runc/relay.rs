//! Relays: the processes that give an engine (conmon) what runc gives it, on top of the
//! runtime's shim model.
//!
//! runc's container init inherits the stdio of `runc create` and is reparented to the
//! caller (conmon is a child subreaper), which reaps it and so learns its exit code. weft's
//! init is the child of its shim and writes to the container log. Until the runtime can
//! create a container with inherited stdio and without a shim (see the report in
//! `runc/mod.rs`), `create` leaves behind a relay: a child that copies the container's
//! output to the inherited stdout, waits for the container to stop and exits with its exit
//! code. Its pid is the one written to `--pid-file`, so the caller that reaps it gets the
//! container's exit code. `exec` works the same way: the process that waits for the exec'd
//! process is the one the caller reaps.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};

use crate::{ExecIo, Status};

/// Exit code of a relay whose container vanished without a recorded exit.
const UNKNOWN_EXIT: i32 = 255;

/// Forks the output relay of container `id`; returns its pid. Call it from a
/// single-threaded process (the CLI is).
pub fn spawn_output_relay(root: &Path, id: &str) -> io::Result<i32> {
    // SAFETY: the CLI is single-threaded, so the child may run ordinary code.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child.as_raw()),
        ForkResult::Child => {
            prepare_child();
            let code = follow(root, id);
            // SAFETY: _exit ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}

/// What a forked relay does first: only stdio stays open (the caller's other fds, such as
/// conmon's sync pipes, must not be held), and a closed stdout is an error, not a signal.
fn prepare_child() {
    // SAFETY: close_range(2) on fds this child does not use; SIG_IGN installs no handler.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Copies the container's output to stdout until it stops; returns its exit code.
fn follow(root: &Path, id: &str) -> i32 {
    let mut out = io::stdout().lock();
    // On a write error (the reader is gone) stop copying but still wait for the exit.
    let _ = crate::logs(root, id, true, &mut out);
    let _ = out.flush();
    loop {
        match crate::state(root, id) {
            Ok(st) if st.status == Status::Stopped => return st.exit_code.unwrap_or(UNKNOWN_EXIT),
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
            Err(_) => return UNKNOWN_EXIT, // deleted meanwhile
        }
    }
}

/// Forks a process that runs `args` in container `id` (stdio inherited) and exits with its
/// exit code; returns its pid.
pub fn spawn_exec(root: &Path, id: &str, args: &[String], env: &[String]) -> io::Result<i32> {
    // SAFETY: the CLI is single-threaded, so the child may run ordinary code.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child.as_raw()),
        ForkResult::Child => {
            prepare_child();
            let code = match crate::exec_with(root, id, args, env, ExecIo::default()) {
                Ok(code) => code,
                Err(e) => {
                    let msg = e.to_string();
                    eprintln!("{msg}");
                    if msg.contains("No such file") {
                        127
                    } else {
                        126
                    }
                }
            };
            // SAFETY: see spawn_output_relay.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Waits for a relay (or any child) and returns its exit code (128+signal if killed).
pub fn wait(pid: i32) -> io::Result<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
