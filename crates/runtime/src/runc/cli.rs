//! The command line of `weft-runc`, shaped like runc's (engines such as podman/conmon call
//! it with runc's words).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Default state root, like runc's `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/weft-runc";

/// weft as a runc-compatible OCI runtime.
#[derive(Parser, Debug)]
#[command(
    name = "weft-runc",
    version,
    about = "weft's container runtime with runc's command line (OCI bundles in, containers out)"
)]
pub struct Cli {
    /// Root directory for the containers' state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Also write errors (and with --debug, debug lines) to this file.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the --log file.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug lines too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for compatibility; cgroups are managed through cgroupfs.
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for compatibility (rootless mode is decided by the effective uid).
    #[arg(long, global = true)]
    pub rootless: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// `time="..." level=error msg="..."`.
    Text,
    /// `{"level":"error","msg":"...","time":"..."}`.
    Json,
}

/// Output format of `list` and `ps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// JSON.
    Json,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from a bundle (its process waits for `start`).
    Create(CreateArgs),
    /// Start a created container's process.
    Start {
        /// Container id.
        id: String,
    },
    /// Create and start a container; without --detach, wait for it and return its exit code.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the process runs.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits (foreground runs only).
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container as JSON.
    State {
        /// Container id.
        id: String,
    },
    /// Send a signal to the container's init (or all its processes).
    Kill {
        /// Send the signal to all processes of the container.
        #[arg(short, long)]
        all: bool,
        /// Container id.
        id: String,
        /// Signal name (KILL, SIGKILL) or number; default SIGTERM.
        signal: Option<String>,
    },
    /// Delete containers and their state.
    Delete {
        /// Kill a running container first; no error if it does not exist.
        #[arg(short, long)]
        force: bool,
        /// Container ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// List the processes of a container.
    Ps {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Container id.
        id: String,
        /// Options for ps(1) (table format; default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// List containers.
    #[command(alias = "ls")]
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print what this runtime supports, as JSON (like `runc features`).
    Features,
    /// Write a default config.json into the bundle directory.
    Spec {
        /// The bundle directory.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Freeze a container's processes (not supported yet).
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container (not supported yet).
    Resume {
        /// Container id.
        id: String,
    },
}

/// Options of `create` (and `run`).
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The bundle directory (holding config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the pid of the container's process here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the terminal's master to (terminal containers).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Accepted for compatibility (weft always uses pivot_root).
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for compatibility (no session keyring is created).
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Number of extra fds (from 3) to pass to the process (not supported yet; must be 0).
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
}

/// Options of `exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// An OCI process JSON file (args, env, cwd, user, terminal) instead of a command.
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return at once; the process runs on.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the pid of the process here.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Allocate a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket to send the terminal's master to.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Extra environment `KEY=VALUE`.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// User `uid[:gid]`.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Accepted for compatibility.
    #[arg(long)]
    pub preserve_fds: Option<u32>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub cap: Vec<String>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub process_label: Option<String>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Accepted for compatibility.
    #[arg(long)]
    pub ignore_paused: bool,
    /// Container id.
    pub id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
