//! The commands of `weft-runc`, on the runtime's public operations.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::Command as Proc;

use super::cli::{Cli, Command, CreateArgs, ExecArgs, Format};
use super::log::Logger;
use super::oci::{self, RuncState};
use super::procs;
use crate::{ContainerIo, CreateOptions, Error, ExecOptions, Status};

/// Result of a command: its exit code, or the error message (exit 1).
pub type CmdResult = Result<i32, String>;

/// Runs the parsed command.
pub fn run(cli: &Cli, log: &Logger) -> CmdResult {
    let root = cli.root.as_path();
    match &cli.command {
        Command::Create(a) => create(root, a, log).map(|_| 0),
        Command::Start { id } => {
            crate::start(root, id).map_err(msg)?;
            Ok(0)
        }
        Command::Run {
            create: a,
            detach,
            keep,
        } => run_container(root, a, *detach, *keep, log),
        Command::State { id } => {
            let st = crate::state(root, id).map_err(msg)?;
            print_json(&RuncState::from_state(&st))
        }
        Command::Kill { all, id, signal } => kill(root, id, signal.as_deref(), *all),
        Command::Delete { force, ids } => {
            for id in ids {
                delete(root, id, *force)?;
            }
            Ok(0)
        }
        Command::Exec(a) => exec(root, a, log),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(root, id, *format, ps_args),
        Command::List { format, quiet } => list(root, *format, *quiet),
        Command::Features => print_json(&oci::features()),
        Command::Spec { bundle } => spec(bundle),
        Command::Pause { .. } | Command::Resume { .. } => Err(
            "pause and resume are not supported by weft-runc yet (they need the freezer cgroup)"
                .into(),
        ),
    }
}

/// Formats a runtime error for people and engines: runc's wording where engines look for
/// it ("container not running", "does not exist").
fn msg(e: Error) -> String {
    match &e {
        Error::WrongStatus {
            status: Status::Stopped,
            op: "kill",
            ..
        } => format!("container not running: {e}"),
        _ => e.to_string(),
    }
}

/// Writes to stdout; a closed stdout (`| head`) is not an error worth a panic.
fn out(text: &str) {
    let mut o = io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|()| o.flush());
}

fn print_json<T: serde::Serialize>(v: &T) -> CmdResult {
    let text = serde_json::to_string_pretty(v).map_err(|e| format!("encode JSON: {e}"))?;
    out(&format!("{text}\n"));
    Ok(0)
}

/// Writes a pid file atomically (temp file + rename), without a newline, like runc.
fn write_pid_file(path: &Path, pid: i32) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, pid.to_string())
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("write pid file {}: {e}", path.display())
        })
}

/// Checks what the runtime cannot do yet, before anything is created.
fn check_create_args(a: &CreateArgs, log: &Logger) -> Result<(), String> {
    if a.preserve_fds > 0 {
        return Err(format!(
            "--preserve-fds {} is not supported by weft-runc yet; the container gets only \
             stdin, stdout and stderr",
            a.preserve_fds
        ));
    }
    if a.no_pivot {
        log.warn("--no-pivot ignored: weft always uses pivot_root");
    }
    Ok(())
}

/// `create`, as runc: the container's init is created by this process, keeps its stdio
/// (or gets a pty whose master goes to --console-socket), waits for `start`, and outlives
/// this process as the child of its subreaper; its pid goes to --pid-file.
fn create(root: &Path, a: &CreateArgs, log: &Logger) -> Result<i32, String> {
    check_create_args(a, log)?;
    let opts = CreateOptions {
        io: ContainerIo::Inherit {
            console_socket: a.console_socket.clone(),
        },
        ..CreateOptions::default()
    };
    let st = crate::create_with(root, &a.id, &a.bundle, &opts).map_err(msg)?;
    log.debug(&format!("created {} (init pid {})", a.id, st.pid));
    if let Some(p) = &a.pid_file {
        if let Err(e) = write_pid_file(p, st.pid) {
            let _ = crate::delete(root, &a.id, true);
            return Err(e);
        }
    }
    Ok(st.pid)
}

/// `run`: create and start; in the foreground, wait for the container's init (our child),
/// delete the container (unless `keep`) and return its exit code.
fn run_container(root: &Path, a: &CreateArgs, detach: bool, keep: bool, log: &Logger) -> CmdResult {
    let pid = create(root, a, log)?;
    if let Err(e) = crate::start(root, &a.id) {
        if !keep {
            let _ = crate::delete(root, &a.id, true);
        }
        return Err(msg(e));
    }
    if detach {
        return Ok(0);
    }
    let code = procs::wait(pid).map_err(|e| format!("wait for container {}: {e}", a.id));
    if !keep {
        crate::delete(root, &a.id, true).map_err(msg)?;
    }
    code
}

fn kill(root: &Path, id: &str, signal: Option<&str>, all: bool) -> CmdResult {
    let sig = procs::parse_signal(signal.unwrap_or("TERM"))?;
    if !all {
        crate::kill(root, id, sig).map_err(msg)?;
        return Ok(0);
    }
    let st = crate::state(root, id).map_err(msg)?;
    if st.status == Status::Stopped || !st.pid_alive() {
        return Err(format!("container not running: {id}"));
    }
    for pid in procs::container_pids(st.pid) {
        // SAFETY: kill(2) with a pid of the container and a checked signal number.
        unsafe { libc::kill(pid, sig) };
    }
    Ok(0)
}

fn delete(root: &Path, id: &str, force: bool) -> Result<(), String> {
    match crate::delete(root, id, force) {
        Ok(()) => Ok(()),
        Err(Error::NotFound { .. }) if force => Ok(()),
        Err(e) => Err(msg(e)),
    }
}

/// What to run for `exec`: from --process or the command line.
#[derive(Debug, Default, PartialEq)]
pub struct ExecPlan {
    /// Program and arguments.
    pub args: Vec<String>,
    /// Environment (merged over the container's).
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// uid, gid.
    pub user: (u32, u32),
    /// Whether a terminal was asked for.
    pub terminal: bool,
}

/// Reads an OCI process JSON (as `runc exec --process` takes it).
pub fn plan_from_process_json(text: &str) -> Result<ExecPlan, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("parse the process JSON: {e}"))?;
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let id = |k: &str| v["user"][k].as_u64().unwrap_or(0) as u32;
    Ok(ExecPlan {
        args: strings("args"),
        env: strings("env"),
        cwd: v["cwd"].as_str().unwrap_or("/").to_string(),
        user: (id("uid"), id("gid")),
        terminal: v["terminal"].as_bool().unwrap_or(false),
    })
}

fn exec_plan(a: &ExecArgs) -> Result<ExecPlan, String> {
    let mut plan = match &a.process {
        Some(p) => {
            let text = fs::read_to_string(p)
                .map_err(|e| format!("read the process file {}: {e}", p.display()))?;
            plan_from_process_json(&text)?
        }
        None => ExecPlan {
            args: a.command.clone(),
            cwd: "/".into(),
            ..ExecPlan::default()
        },
    };
    plan.env.extend(a.env.iter().cloned());
    if let Some(c) = &a.cwd {
        plan.cwd = c.clone();
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let num = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| format!("--user {u:?}: use numeric uid[:gid]"))
        };
        plan.user = (num(uid)?, num(gid)?);
    }
    plan.terminal |= a.tty;
    if plan.args.is_empty() {
        return Err("exec needs a command (arguments or --process with args)".into());
    }
    Ok(plan)
}

fn exec(root: &Path, a: &ExecArgs, log: &Logger) -> CmdResult {
    // This process enters the container: run it from a read-only weft binary.
    crate::reexec_read_only()?;
    let plan = exec_plan(a)?;
    // Fail early, like runc, when the container cannot take an exec.
    let st = crate::state(root, &a.id).map_err(msg)?;
    if st.status != Status::Running {
        return Err(format!(
            "cannot exec in a container that is not running: {} is {}",
            a.id, st.status
        ));
    }
    let opts = ExecOptions {
        args: plan.args,
        env: plan.env,
        user: Some(format!("{}:{}", plan.user.0, plan.user.1)),
        cwd: (!plan.cwd.is_empty()).then_some(plan.cwd),
        tty: plan.terminal,
        console_socket: a.console_socket.clone(),
        ..ExecOptions::default()
    };
    if plan.terminal && a.console_socket.is_none() {
        if a.detach || a.pid_file.is_some() {
            return Err("exec --tty with --detach or --pid-file needs --console-socket".into());
        }
        // In the foreground on our own terminal.
        return crate::exec_with_options(root, &a.id, &opts).map_err(msg);
    }
    let pid = crate::exec_spawn(root, &a.id, &opts).map_err(msg)?;
    log.debug(&format!("exec in {}: pid {pid}", a.id));
    if let Some(p) = &a.pid_file {
        write_pid_file(p, pid)?;
    }
    if a.detach {
        return Ok(0);
    }
    procs::wait(pid).map_err(|e| format!("wait for the exec in {}: {e}", a.id))
}

fn ps(root: &Path, id: &str, format: Format, ps_args: &[String]) -> CmdResult {
    let st = crate::state(root, id).map_err(msg)?;
    let pids = if st.status == Status::Stopped {
        Vec::new()
    } else {
        procs::container_pids(st.pid)
    };
    match format {
        Format::Json => print_json(&pids),
        Format::Table => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let output = Proc::new("ps")
                .args(&args)
                .output()
                .map_err(|e| format!("run ps(1): {e}; install procps or use --format json"))?;
            if !output.status.success() {
                return Err(format!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
            out(&procs::filter_ps(
                &String::from_utf8_lossy(&output.stdout),
                &pids,
            )?);
            Ok(0)
        }
    }
}

fn list(root: &Path, format: Format, quiet: bool) -> CmdResult {
    let states: Vec<RuncState> = crate::list(root)
        .map_err(msg)?
        .iter()
        .map(RuncState::from_state)
        .collect();
    if quiet {
        for s in &states {
            out(&format!("{}\n", s.id));
        }
        return Ok(0);
    }
    match format {
        Format::Json => print_json(&states),
        Format::Table => {
            out(&oci::table(&states));
            Ok(0)
        }
    }
}

fn spec(bundle: &Path) -> CmdResult {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(format!("{} exists; remove it first", path.display()));
    }
    let spec = crate::build_spec(&crate::RunSpec::default()).map_err(|e| e.to_string())?;
    let text = serde_json::to_string_pretty(&spec).map_err(|e| e.to_string())?;
    fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_json() {
        let p = plan_from_process_json(
            r#"{"terminal":false,"user":{"uid":0,"gid":0},"args":["echo","hi"],
                "env":["A=1"],"cwd":"/","capabilities":{}}"#,
        )
        .expect("plan");
        assert_eq!(p.args, ["echo", "hi"]);
        assert_eq!(p.env, ["A=1"]);
        assert_eq!(p.cwd, "/");
        assert_eq!(p.user, (0, 0));
        assert!(!p.terminal);
        assert!(plan_from_process_json("{").is_err());
    }
}
