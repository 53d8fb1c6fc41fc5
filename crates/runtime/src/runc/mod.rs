//! `weft-runc`: weft as a runc-compatible OCI runtime, so that engines such as podman (with
//! conmon) can drive it: `podman --runtime /path/to/weft-runc run ...`.
//!
//! Global options `--root` (default `/run/weft-runc`), `--log`, `--log-format text|json`,
//! `--debug`, `--systemd-cgroup` (accepted); commands `create`, `start`, `run`, `state`,
//! `kill`, `delete`, `exec`, `ps`, `list`, `features`, `spec` (and `pause`/`resume`, which
//! say they are not supported). Output and exit codes follow runc: `state` prints runc's
//! state JSON, errors go to stderr and the `--log` file and exit 1.
//!
//! The container's stdio: runc's init inherits `create`'s stdio and becomes the child of
//! the caller once `create` exits; weft's init is its shim's child and writes to the
//! container log. `create` therefore leaves a relay behind (see [`relay`]) whose pid is
//! the one in `--pid-file`: it copies the output to the inherited stdout and exits with the
//! container's exit code. `state` reports the real init pid.
//!
//! What the runtime's public API would need for full runc behaviour (the relay and the
//! refusals below go away with it): `CreateOptions { stdio: Inherit, console_socket:
//! Option<PathBuf>, preserve_fds: u32, reparent: bool }` (the init takes the caller's fds
//! 0-2 (or a pty whose master is sent over the console socket) and, without a long-lived
//! shim, becomes the caller's child so a subreaper such as conmon reaps it; `start` via a
//! fifo, state from /proc), and `ExecOptions { cwd, user, tty/console_socket, detach }` for
//! `exec` (today only cwd `/`, uid 0 and no tty are accepted); pause/resume need the
//! freezer cgroup.

mod cli;
mod commands;
mod log;
mod oci;
mod procs;
mod relay;

pub use cli::DEFAULT_ROOT;
pub use oci::{features, RuncState};
pub use procs::parse_signal;

use clap::Parser;

/// Entry point of `weft-runc`: `args` is the whole argv (argv\[0\] included); returns the
/// exit code. `weft-runc shim ...` runs the container shim (the runtime spawns its own
/// executable as the shim). Call it before any other thread exists.
pub fn main(args: &[String]) -> i32 {
    if args.get(1).map(String::as_str) == Some("shim") {
        return crate::shim_main(&args[2..]);
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let logger = log::Logger {
        file: cli.log.clone(),
        format: cli.log_format,
        debug: cli.debug,
    };
    logger.debug(&format!("weft-runc {:?}", &args[1..]));
    match commands::run(&cli, &logger) {
        Ok(code) => code,
        Err(msg) => {
            logger.error(&msg);
            1
        }
    }
}
