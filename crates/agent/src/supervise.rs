//! `weft agent` as a daemon that survives its own faults: a small parent process runs the worker
//! agent and starts it again, with backoff, whenever it dies by a signal or an error.
//!
//! The worker converges from the store when it starts (see [`crate::run`]), so a restart is all
//! that recovery needs; the kernel state it programmed (routes, the nftables table) stays in
//! place while it is down, so traffic and policy keep working meanwhile.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use tracing::{info, warn};

/// How long to wait before a restart: `initial`, doubling up to `max`; back to `initial` once a
/// worker has run for `reset_after`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            reset_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay after `current`.
    pub fn next(&self, current: Duration) -> Duration {
        (current * 2).min(self.max)
    }
}

/// What the supervisor runs.
#[derive(Clone, Debug)]
pub struct SuperviseOptions {
    /// The worker: a program and its arguments (`weft ... agent --no-supervise`).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Where the running worker's pid is written (removed when the supervisor stops).
    pub pid_file: Option<PathBuf>,
    pub backoff: Backoff,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Runs the worker until this process is told to stop (SIGTERM, SIGINT, SIGHUP: the worker is
/// stopped too) or the worker exits with status 0. Returns the exit code for the supervisor.
pub fn supervise(o: &SuperviseOptions) -> Result<i32> {
    let action = SigAction::new(
        SigHandler::Handler(on_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { signal::sigaction(sig, &action) }
            .with_context(|| format!("install the {sig} handler"))?;
    }
    let mut delay = o.backoff.initial;
    let mut restarts = 0u64;
    loop {
        let started = Instant::now();
        let status = match spawn(o) {
            Ok(mut child) => {
                let pid = child.id();
                write_pid(o, pid);
                info!(pid, "agent worker started");
                match wait(&mut child)? {
                    Some(status) => (pid, status),
                    None => {
                        info!(pid, "supervisor stopping; worker stopped");
                        remove_pid(o);
                        return Ok(0);
                    }
                }
            }
            Err(e) => {
                warn!("cannot start the agent worker: {e:#}");
                (0, ExitStatus::from_raw(1 << 8))
            }
        };
        let (pid, status) = status;
        remove_pid(o);
        if status.success() {
            info!(pid, "agent worker exited cleanly; supervisor stops");
            return Ok(0);
        }
        if started.elapsed() >= o.backoff.reset_after {
            delay = o.backoff.initial;
        }
        restarts += 1;
        warn!(
            pid,
            restart = restarts,
            "agent worker {}; restarting in {} ms",
            describe(status),
            delay.as_millis()
        );
        if !sleep_unless_stopped(delay) {
            return Ok(0);
        }
        delay = o.backoff.next(delay);
    }
}

/// `exited with code N` or `killed by SIGKILL`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => format!("ended ({status})"),
    }
}

fn spawn(o: &SuperviseOptions) -> Result<Child> {
    let mut cmd = Command::new(&o.program);
    cmd.args(&o.args);
    // SAFETY: prctl is async-signal-safe. The worker dies with its supervisor, so that a
    // supervisor killed outright leaves no agent behind that nobody restarts or stops.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("run {}", o.program.display()))
}

/// Waits for the worker to end; `None` when the supervisor was told to stop (the worker is then
/// stopped: SIGTERM, and SIGKILL after 3 s).
fn wait(child: &mut Child) -> Result<Option<ExitStatus>> {
    loop {
        if STOP.load(Ordering::SeqCst) {
            stop(child);
            return Ok(None);
        }
        if let Some(status) = child.try_wait().context("wait for the agent worker")? {
            return Ok(Some(status));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = signal::kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Sleeps `d`; false when told to stop meanwhile.
fn sleep_unless_stopped(d: Duration) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if STOP.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(end - Instant::now()));
    }
    !STOP.load(Ordering::SeqCst)
}

fn write_pid(o: &SuperviseOptions, pid: u32) {
    let Some(path) = &o.pid_file else { return };
    let tmp = path.with_extension("pid.tmp");
    let res = std::fs::write(&tmp, format!("{pid}\n")).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        warn!("write the worker pid to {}: {e}", path.display());
    }
}

fn remove_pid(o: &SuperviseOptions) {
    if let Some(path) = &o.pid_file {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_max() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
            reset_after: Duration::from_secs(1),
        };
        let d1 = b.next(b.initial);
        let d2 = b.next(d1);
        let d3 = b.next(d2);
        assert_eq!(
            [d1, d2, d3],
            [
                Duration::from_millis(200),
                Duration::from_millis(350),
                Duration::from_millis(350)
            ]
        );
    }

    #[test]
    fn describes_how_a_worker_ended() {
        assert_eq!(describe(ExitStatus::from_raw(3 << 8)), "exited with code 3");
        assert_eq!(describe(ExitStatus::from_raw(9)), "killed by SIGKILL");
    }

    /// A worker that fails twice and then succeeds is run three times, and the supervisor then
    /// stops on its own; the pid file is gone afterwards.
    #[test]
    fn restarts_a_failing_worker_until_it_succeeds() {
        let dir = std::env::temp_dir().join(format!("weft-supervise-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let count = dir.join("count");
        let script = format!(
            "echo x >> {c}; test $(wc -l < {c}) -ge 3",
            c = count.display()
        );
        let o = SuperviseOptions {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            pid_file: Some(dir.join("worker.pid")),
            backoff: Backoff {
                initial: Duration::from_millis(10),
                max: Duration::from_millis(20),
                reset_after: Duration::from_secs(60),
            },
        };
        assert_eq!(supervise(&o).unwrap(), 0);
        let runs = std::fs::read_to_string(&count).unwrap().lines().count();
        assert!(!dir.join("worker.pid").exists());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(runs, 3);
    }
}
