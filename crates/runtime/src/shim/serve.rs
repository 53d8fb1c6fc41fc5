//! The shim's loop: requests on the control socket, signals, the terminal, restarts.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sched::CloneFlags;
use nix::sys::signal::{self, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

use super::spawn::{self, Child, Inherit};
use crate::bundle::RestartPolicy;
use crate::cgroups::Cgroup;
use crate::channel::{read_frame, Frame};
use crate::config::InitConfig;
use crate::mounts::Op;
use crate::state::{State, StateDir, Status};
use crate::{procfs, sock};

/// First pause before a restart; doubled after each quick failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A run this long resets the pause.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// The running shim.
pub(super) struct Shim {
    sd: StateDir,
    state: State,
    restart: RestartPolicy,
    /// What a restart clones from; only kept when the policy may restart (the shim idles for
    /// the container's lifetime, so it keeps no more memory than it needs).
    respawn: Option<(InitConfig, Vec<Op>)>,
    /// Clone flags of restarts (the network namespace is kept).
    restart_flags: CloneFlags,
    child: Child,
    log: File,
    null: File,
    cgroup: Option<Cgroup>,
    /// Set by `stop`, `kill`, `delete` and SIGTERM: the next exit is final.
    no_restart: bool,
    /// When the pending restart is due.
    restart_at: Option<Instant>,
    backoff: Duration,
    run_started: Instant,
    /// OOM kills counted in the cgroup when the current run started.
    oom_base: u64,
    /// `attach` connections of a terminal container.
    clients: Vec<UnixStream>,
    /// Whether the terminal master still gives output.
    console_open: bool,
}

impl Shim {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sd: StateDir,
        state: State,
        cfg: InitConfig,
        ops: Vec<Op>,
        restart_flags: CloneFlags,
        child: Child,
        (log, null): (File, File),
        cgroup: Option<Cgroup>,
    ) -> Shim {
        let console_open = child.console.is_some();
        if let Some(m) = &child.console {
            set_nonblocking(m.as_raw_fd());
        }
        let oom_base = cgroup.as_ref().map(Cgroup::oom_kills).unwrap_or(0);
        let restart = cfg.restart;
        Shim {
            sd,
            state,
            restart,
            respawn: (restart != RestartPolicy::No).then_some((cfg, ops)),
            restart_flags,
            child,
            log,
            null,
            cgroup,
            no_restart: false,
            restart_at: None,
            backoff: FIRST_BACKOFF,
            run_started: Instant::now(),
            oom_base,
            clients: Vec::new(),
            console_open,
        }
    }

    fn save(&self) {
        if let Err(e) = self.sd.write(&self.state) {
            eprintln!("shim {}: {e}", self.state.id);
        }
    }

    /// Serves requests and signals until the container has exited for good.
    pub fn serve(&mut self, listener: &UnixListener, sfd: &SignalFd) {
        while self.state.status != Status::Stopped {
            let timeout = match self.restart_at {
                Some(t) => {
                    let ms = t.saturating_duration_since(Instant::now()).as_millis();
                    PollTimeout::from(u16::try_from(ms).unwrap_or(u16::MAX))
                }
                None => PollTimeout::NONE,
            };
            let console = self
                .child
                .console
                .as_ref()
                .filter(|_| self.console_open)
                .map(|m| m.as_raw_fd());
            // SAFETY: the fds stay open for the duration of the poll.
            let borrow = |fd: i32| unsafe { BorrowedFd::borrow_raw(fd) };
            let mut fds = vec![
                PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            ];
            if let Some(m) = console {
                fds.push(PollFd::new(borrow(m), PollFlags::POLLIN));
            }
            for c in &self.clients {
                fds.push(PollFd::new(borrow(c.as_raw_fd()), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    eprintln!("shim {}: poll: {e}", self.state.id);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            if ready[1] {
                self.handle_signals(sfd);
            }
            let mut i = 2;
            if console.is_some() {
                if ready[i] {
                    self.pump_console();
                }
                i += 1;
            }
            let mut gone = Vec::new();
            for (k, ok) in ready[i..].iter().enumerate() {
                // (an exit handled above may have dropped the clients)
                if *ok && k < self.clients.len() && !self.client_input(k) {
                    gone.push(k);
                }
            }
            for k in gone.into_iter().rev() {
                self.clients.remove(k);
            }
            if self.restart_at.is_some_and(|t| Instant::now() >= t) {
                self.restart();
            }
            if ready[0] && self.state.status != Status::Stopped {
                self.accept(listener);
            }
        }
    }

    fn accept(&mut self, listener: &UnixListener) {
        let Ok((conn, _)) = listener.accept() else {
            return;
        };
        let _ = conn.set_nonblocking(false);
        let reply = match sock::read_request(&conn).as_deref() {
            Ok("start") => match self.start() {
                Ok(()) => "ok".to_string(),
                Err(msg) => format!("error {msg}"),
            },
            Ok("norestart") => {
                self.no_restart = true;
                if self.restart_at.take().is_some() {
                    self.finish(self.state.exit_code);
                }
                "ok".to_string()
            }
            Ok("attach") => {
                if self.child.console.is_none() {
                    "error the container has no terminal (create it with tty)".to_string()
                } else {
                    sock::reply(&conn, "ok");
                    let _ = conn.set_nonblocking(true);
                    self.clients.push(conn);
                    return;
                }
            }
            Ok(other) => format!("error unknown request {other:?}"),
            Err(e) => format!("error read request: {e}"),
        };
        sock::reply(&conn, &reply);
    }

    fn handle_signals(&mut self, sfd: &SignalFd) {
        while let Ok(Some(info)) = sfd.read_signal() {
            if info.ssi_signo == libc::SIGTERM as u32 {
                self.no_restart = true;
                let _ = signal::kill(self.child.pid, Signal::SIGTERM);
            }
        }
        // SIGCHLD or not, check whether the container exited (signals coalesce).
        self.reap(false);
    }

    /// Reaps the container if it exited (waits for it when `block`), then records the
    /// exit or schedules a restart.
    fn reap(&mut self, block: bool) {
        if self.restart_at.is_some() {
            return;
        }
        let flags = (!block).then_some(WaitPidFlag::WNOHANG);
        let code = loop {
            match waitpid(self.child.pid, flags) {
                Ok(WaitStatus::Exited(_, c)) => break Some(c),
                Ok(WaitStatus::Signaled(_, s, _)) => break Some(128 + s as i32),
                Ok(WaitStatus::StillAlive) => return,
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(_) => break None, // ECHILD: already gone
            }
        };
        self.pump_console();
        self.state.oom_killed = self
            .cgroup
            .as_ref()
            .is_some_and(|c| c.oom_kills() > self.oom_base);
        let restart = self.state.status == Status::Running
            && !self.no_restart
            && self.respawn.is_some()
            && self
                .restart
                .should_restart(code.unwrap_or(-1), self.state.restart_count);
        if !restart {
            self.finish(code);
            return;
        }
        if self.run_started.elapsed() >= HEALTHY_RUN {
            self.backoff = FIRST_BACKOFF;
        }
        self.state.exit_code = code;
        self.state.finished = Some(procfs::now_rfc3339());
        self.save();
        self.restart_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// Records the final exit.
    fn finish(&mut self, code: Option<i32>) {
        self.state.status = Status::Stopped;
        self.state.exit_code = code;
        self.state.finished = Some(procfs::now_rfc3339());
        self.save();
        self.clients.clear();
    }

    /// Runs the process again as a new init in the same network namespace and cgroup.
    fn restart(&mut self) {
        self.restart_at = None;
        let with = Inherit {
            log_null: Some((&self.log, &self.null)),
            cgroup: self.cgroup.as_ref(),
            console_socket: None,
            start_fifo: None,
        };
        let Some((cfg, ops)) = &self.respawn else {
            self.finish(self.state.exit_code);
            return;
        };
        let child = match spawn::spawn(cfg, ops, self.restart_flags, &with) {
            Ok(c) => c,
            Err(msg) => {
                self.state.error = Some(format!("restart failed: {msg}"));
                self.finish(self.state.exit_code);
                return;
            }
        };
        self.child = child;
        self.console_open = self.child.console.is_some();
        if let Some(m) = &self.child.console {
            set_nonblocking(m.as_raw_fd());
        }
        self.oom_base = self.cgroup.as_ref().map(Cgroup::oom_kills).unwrap_or(0);
        self.state.pid = self.child.pid.as_raw();
        self.state.pid_start = procfs::start_time(self.state.pid).unwrap_or(0);
        self.state.restart_count += 1;
        if let Err(msg) = self.go() {
            self.state.error = Some(msg);
            self.no_restart = true;
            self.reap(true);
        }
    }

    /// Lets the created container exec its process; returns the exec error if it failed.
    fn start(&mut self) -> Result<(), String> {
        if self.state.status != Status::Created {
            return Err(format!(
                "it is {}; start works once, on a created container",
                self.state.status
            ));
        }
        self.go().inspect_err(|msg| {
            self.state.error = Some(msg.clone());
            // A process that never ran is not restarted.
            self.no_restart = true;
            self.reap(true);
        })
    }

    /// Sends `G` to the current init and waits for the outcome of its exec.
    fn go(&mut self) -> Result<(), String> {
        let Some(sync_w) = self.child.sync_w.take() else {
            return Err("already started".into());
        };
        if nix::unistd::write(&sync_w, b"G").is_err() {
            return Err("the container init is gone".into());
        }
        drop(sync_w);
        match read_frame(&mut self.child.from_init) {
            Ok(Frame::Eof) => {
                self.state.status = Status::Running;
                self.state.started = Some(procfs::now_rfc3339());
                self.state.exit_code = None;
                self.state.oom_killed = false;
                self.run_started = Instant::now();
                self.save();
                Ok(())
            }
            Ok(Frame::Error(msg)) => Err(msg),
            Ok(Frame::Ready) | Err(_) => Err("the container init failed to exec".into()),
        }
    }

    /// Copies what the terminal has to the log and to attached clients.
    fn pump_console(&mut self) {
        let Some(m) = self.child.console.as_ref().map(|m| m.as_raw_fd()) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            // SAFETY: the master stays open during the call.
            let bm = unsafe { BorrowedFd::borrow_raw(m) };
            match nix::unistd::read(bm, &mut buf) {
                Ok(0) | Err(Errno::EIO) => {
                    self.console_open = false;
                    return;
                }
                Ok(n) => {
                    let _ = self.log.write_all(&buf[..n]);
                    self.clients.retain_mut(|c| c.write_all(&buf[..n]).is_ok());
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.console_open = false;
                    return;
                }
            }
        }
    }

    /// Forwards input of attached client `k` to the terminal; `false` when it is gone.
    fn client_input(&mut self, k: usize) -> bool {
        let mut buf = [0u8; 4096];
        let n = match self.clients[k].read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        };
        if let Some(m) = &self.child.console {
            let _ = nix::unistd::write(m, &buf[..n]);
        }
        true
    }
}

fn set_nonblocking(fd: i32) {
    // SAFETY: borrowing an open fd for fcntl.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    if let Ok(fl) = nix::fcntl::fcntl(b, nix::fcntl::FcntlArg::F_GETFL) {
        let fl = nix::fcntl::OFlag::from_bits_truncate(fl) | nix::fcntl::OFlag::O_NONBLOCK;
        let _ = nix::fcntl::fcntl(b, nix::fcntl::FcntlArg::F_SETFL(fl));
    }
}
