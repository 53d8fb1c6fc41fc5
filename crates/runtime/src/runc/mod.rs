//! `weft-runc`: weft as a runc-compatible OCI runtime, so that engines such as podman (with
//! conmon) can drive it: `podman --runtime /path/to/weft-runc run ...`.
//!
//! Global options `--root` (default `/run/weft-runc`), `--log`, `--log-format text|json`,
//! `--debug`, `--systemd-cgroup` (accepted); commands `create`, `start`, `run`, `state`,
//! `kill`, `delete`, `exec`, `ps`, `list`, `features`, `spec` (and `pause`/`resume`, which
//! say they are not supported). Output and exit codes follow runc: `state` prints runc's
//! state JSON, errors go to stderr and the `--log` file and exit 1.
//!
//! The container's stdio follows runc's contract: `create` itself clones the container's
//! init (no shim, see [`crate::ContainerIo::Inherit`]), which keeps the stdio `create` was
//! given ("pass-through": an engine's pipes reach the process, stdout and stderr stay
//! apart) or, when config.json says `terminal: true`, gets a pty as its controlling
//! terminal whose master is sent over `--console-socket` with SCM_RIGHTS. Once `create`
//! exits, the init is reparented to the engine's subreaper (conmon), which reaps it and
//! learns its exit code; `--pid-file` holds the init's pid. The init waits for `start` on
//! a fifo in the state dir. `exec` works the same way: the process that exits with the
//! exec'd process's code is the caller's child (its pid goes to `--pid-file`), and
//! `--tty --console-socket` sends the exec's terminal to the socket.
//!
//! Not supported yet: `--preserve-fds` above 0, pause/resume (they need the freezer
//! cgroup).

mod cli;
mod commands;
mod fast;
mod log;
mod oci;
mod procs;

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
    // The command lines of every container's life first, without clap's tree; anything else
    // (and every error and help text) through clap.
    let cli = match fast::parse(args) {
        Some(c) => c,
        None => match cli::Cli::try_parse_from(args) {
            Ok(c) => c,
            Err(e) => {
                let _ = e.print();
                return if e.use_stderr() { 1 } else { 0 };
            }
        },
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
