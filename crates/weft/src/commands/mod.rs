//! One function per command: turn parsed arguments into calls, and results into output.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use weft_engine::{Cluster, ContainerView, RunOptions};
use weft_model::parse_label;

use crate::cli::{Cli, Command, Format};
use crate::output::{emit, Table};

mod diagnose;
mod image;
mod ipam;
mod lab;
mod network;
mod node;
mod resources;

/// Runs the command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let fmt = cli.output;
    match cli.command {
        Command::Demo { keep } => {
            weft_engine::require_root()?;
            crate::demo::run(keep)
        }
        Command::Lab(cmd) => lab::lab(&cli.lab, fmt, cmd),
        Command::Agent {
            resync,
            store,
            config,
            no_supervise,
        } => {
            // The lab flag counts as given when it differs from its default or comes from
            // the environment; otherwise the configuration file's cluster applies.
            let lab_given = cli.lab != "default"
                || std::env::var_os("WEFT_LAB").is_some()
                || std::env::args().any(|a| a == "--lab" || a.starts_with("--lab="));
            let given = weft_agent::config::AgentConfig {
                store,
                cluster: lab_given.then(|| cli.lab.clone()),
                node: cli.node,
                resync,
            };
            node::agent(given, config.as_deref(), no_supervise)
        }
        Command::Image(cmd) => image::image(fmt, cmd),
        Command::Install { dir } => {
            let exe = std::env::current_exe()?;
            let dir = match dir {
                Some(d) => std::path::PathBuf::from(d),
                None => exe
                    .parent()
                    .context("the binary has no directory")?
                    .to_path_buf(),
            };
            let link = dir.join("weft-runc");
            match std::fs::symlink_metadata(&link) {
                Ok(_) => std::fs::remove_file(&link)
                    .with_context(|| format!("replace {}", link.display()))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("inspect {}", link.display())),
            }
            std::os::unix::fs::symlink(&exe, &link)
                .with_context(|| format!("link {} -> {}", link.display(), exe.display()))?;
            println!("{} -> {}", link.display(), exe.display());
            Ok(0)
        }
        other => {
            weft_engine::require_root()?;
            if matches!(other, Command::Exec(_)) {
                // This process will enter a container: run it from a read-only weft binary
                // (before anything is opened, which the re-execution would do again).
                weft_runtime::reexec_read_only().map_err(anyhow::Error::msg)?;
            }
            let c = Cluster::open_lab(&cli.lab)?;
            cluster_command(&c, cli.node.as_deref(), fmt, other)
        }
    }
}

fn cluster_command(c: &Cluster, node: Option<&str>, fmt: Format, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Network(n) => network::network(c, fmt, n),
        Command::Run(a) => {
            let mut labels = BTreeMap::new();
            for l in &a.labels {
                let (k, v) = parse_label(l)?;
                labels.insert(k, v);
            }
            let ip =
                a.ip.as_deref()
                    .map(|s| {
                        s.parse()
                            .with_context(|| format!("invalid --ip {s:?}: write an IPv4 address"))
                    })
                    .transpose()?;
            let node = c.node(node)?;
            let out = weft_engine::run(
                c,
                &node,
                &RunOptions {
                    name: a.name,
                    net: a.net,
                    labels,
                    image: a.image,
                    command: a.command,
                    env: a.env,
                    hostname: a.hostname,
                    ip,
                    detach: a.detach,
                    remove: a.rm,
                    tty: a.tty,
                    memory: a.memory.as_deref().map(parse_size).transpose()?,
                    cpus: a.cpus,
                    pids_limit: a.pids_limit,
                    restart: weft_runtime::RestartPolicy::parse(&a.restart)
                        .map_err(|e| anyhow::anyhow!("--restart {}: {e}", a.restart))?,
                    user: a.user,
                    read_only: a.read_only,
                    cap_add: a.cap_add,
                    cap_drop: a.cap_drop,
                    privileged: a.privileged,
                    userns: match a.userns.as_deref() {
                        None | Some("host") => false,
                        Some("private") | Some("auto") => true,
                        Some(other) => bail!("--userns {other}: use host or private"),
                    },
                    publish: a
                        .publish
                        .iter()
                        .map(|p| weft_model::PublishedPort::parse(p))
                        .collect::<Result<_, _>>()?,
                },
            )?;
            if a.detach {
                match fmt {
                    Format::Table => println!("{}", out.view.id),
                    _ => emit(fmt, &out.view, || Table::new(&[]))?,
                }
            }
            Ok(out.exit_code.unwrap_or(0))
        }
        Command::Exec(a) => weft_engine::exec(c, &a.name, &a.command, &a.env, a.tty),
        Command::Ps { all } => {
            let list = weft_engine::ps(c, all)?;
            emit(fmt, &list, || ps_table(&list))?;
            Ok(0)
        }
        Command::Stats { names } => {
            let all = weft_engine::stats(c, &names)?;
            let rows: Vec<serde_json::Value> = all
                .iter()
                .map(|(v, s)| {
                    serde_json::json!({"name": v.name, "node": v.node, "cpu_usage_ns": s.cpu_usage_ns,
                        "memory_usage": s.memory_usage, "memory_limit": s.memory_limit, "pids": s.pids})
                })
                .collect();
            emit(fmt, &rows, || {
                let mut t = Table::new(&[
                    "CONTAINER ID",
                    "NAME",
                    "NODE",
                    "CPU TIME",
                    "MEM USAGE / LIMIT",
                    "PIDS",
                ]);
                for (v, s) in &all {
                    t.row(vec![
                        v.id[..12].to_string(),
                        v.name.clone(),
                        v.node.clone(),
                        format!("{:.2}s", s.cpu_usage_ns as f64 / 1e9),
                        format!("{} / {}", human(s.memory_usage), human(s.memory_limit)),
                        s.pids.to_string(),
                    ]);
                }
                t
            })?;
            Ok(0)
        }
        Command::Inspect { names, format } => inspect(c, fmt, &names, format.as_deref()),
        Command::Logs { follow, name } => {
            weft_engine::logs(c, &name, follow, &mut std::io::stdout())?;
            Ok(0)
        }
        Command::Stop { time, names } => each(&names, |n| {
            weft_engine::stop(c, n, Duration::from_secs(time))
        }),
        Command::Kill { signal, names } => {
            let sig = parse_signal(&signal)?;
            each(&names, |n| weft_engine::kill(c, n, sig))
        }
        Command::Rm { force, names } => each(&names, |n| weft_engine::remove(c, n, force)),
        Command::Ipam(i) => ipam::ipam(c, fmt, i),
        Command::Get { kind, name } => resources::get(c, fmt, &kind, name.as_deref()),
        Command::Apply { file } => {
            let done = weft_engine::resources::apply(c, &resources::read_input(&file)?)?;
            resources::print_applied(fmt, &done)
        }
        Command::Delete { file, kind, name } => {
            let done = match (file, kind, name) {
                (Some(f), _, _) => {
                    weft_engine::resources::delete_file(c, &resources::read_input(&f)?)?
                }
                (None, Some(k), Some(n)) => weft_engine::resources::delete(c, &k, &n)?,
                _ => bail!("give KIND NAME or -f FILE"),
            };
            resources::print_applied(fmt, &done)
        }
        Command::Trace(a) => diagnose::trace(c, fmt, a),
        Command::Doctor => diagnose::doctor(c, fmt),
        Command::Lab(_)
        | Command::Image(_)
        | Command::Agent { .. }
        | Command::Demo { .. }
        | Command::Install { .. } => {
            unreachable!("handled by dispatch")
        }
    }
}

/// `64m`, `1g`, `512k` or plain bytes.
fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| {
        anyhow::anyhow!("invalid size {s:?}: write it like 64m, 1g or a number of bytes")
    })?;
    if n <= 0.0 {
        bail!("invalid size {s:?}: it must be positive");
    }
    Ok((n * mult as f64) as i64)
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2}GiB", b / (1u64 << 30) as f64)
    } else if b >= 1e6 {
        format!("{:.1}MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.1}KiB", b / 1024.0)
    }
}

/// Applies `f` to every name, printing each done one like docker; fails if any failed.
fn each(names: &[String], f: impl Fn(&str) -> Result<()>) -> Result<i32> {
    let mut failed = 0;
    for n in names {
        match f(n) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("Error: {e:#}");
                failed += 1;
            }
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    name.parse::<nix_signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| anyhow::anyhow!("unknown signal {s:?}; use a name like TERM or a number"))
}

mod nix_signal {
    pub use nix::sys::signal::Signal;
}

fn ps_table(list: &[ContainerView]) -> Table {
    let mut t = Table::new(&[
        "CONTAINER ID",
        "NAME",
        "NODE",
        "NETWORK",
        "IP",
        "STATE",
        "IMAGE",
        "COMMAND",
        "PORTS",
    ]);
    for v in list {
        t.row(vec![
            v.id[..12].to_string(),
            v.name.clone(),
            v.node.clone(),
            v.network.clone(),
            v.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            match v.exit_code {
                Some(code) if v.state == weft_engine::State::Exited => format!("exited ({code})"),
                _ => v.state.to_string(),
            },
            v.image.clone(),
            format!("{:?}", v.command.join(" ")),
            v.ports.join(", "),
        ]);
    }
    t
}

/// `weft inspect`: Docker's shape (an array, or `--format` per container), or weft's own
/// object with `-o json|yaml` (an array when several names are given).
fn inspect(c: &Cluster, fmt: Format, names: &[String], template: Option<&str>) -> Result<i32> {
    if fmt != Format::Table && template.is_none() {
        let views = names
            .iter()
            .map(|n| weft_engine::inspect(c, n))
            .collect::<Result<Vec<_>>>()?;
        return match views.as_slice() {
            [one] => emit(fmt, one, || Table::new(&[])).map(|()| 0),
            all => emit(fmt, all, || Table::new(&[])).map(|()| 0),
        };
    }
    let shapes = weft_engine::inspect::inspect_docker(c, names)?;
    match template {
        None => println!("{}", serde_json::to_string_pretty(&shapes)?),
        Some(t) => {
            for v in &shapes {
                println!("{}", weft_engine::inspect::render_template(v, t)?);
            }
        }
    }
    Ok(0)
}
