//! One function per command: turn parsed arguments into calls, and results into output.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use weft_engine::{Cluster, ContainerView, NetworkOptions, RunOptions};
use weft_ipam::Ipam;
use weft_model::{keys, parse_cidr, parse_label, paths, ClusterConfig, Workload};

use crate::cli::{Cli, Command, Format, ImageCmd, IpamCmd, LabCmd, NetworkCmd};
use crate::output::{emit, Table};

/// Runs the command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let fmt = cli.output;
    match cli.command {
        Command::Demo { keep } => {
            weft_engine::require_root()?;
            crate::demo::run(keep)
        }
        Command::Lab(cmd) => lab(&cli.lab, fmt, cmd),
        Command::Agent { resync } => {
            weft_engine::require_root()?;
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_ansi(false)
                .init();
            let c = Cluster::open_lab(&cli.lab)?;
            let node = cli.node.context("weft agent needs --node NODE")?;
            // The node daemon: the agent, and beside it the node's name server.
            let store: std::sync::Arc<dyn weft_store::Store> = std::sync::Arc::from(c.store);
            let _dns = start_dns(&store, &node);
            weft_agent::run(
                store,
                &weft_agent::AgentOptions {
                    node,
                    resync: Duration::from_secs(resync),
                },
            )?;
            Ok(0)
        }
        Command::Image(cmd) => image(fmt, cmd),
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
            let c = Cluster::open_lab(&cli.lab)?;
            cluster_command(&c, cli.node.as_deref(), fmt, other)
        }
    }
}

/// The node's name server for its workloads, on the node's address, port 53. A failure to
/// start it is reported, not fatal: routing and policy still work without names.
fn start_dns(
    store: &std::sync::Arc<dyn weft_store::Store>,
    node: &str,
) -> Option<weft_dns::Server> {
    let addr = match weft_store::get_json::<weft_model::Node>(store.as_ref(), &keys::node(node)) {
        Ok(Some((n, _))) => n.address,
        other => {
            tracing::warn!("no DNS: node {node} not readable from the store ({other:?})");
            return None;
        }
    };
    let bind = std::net::SocketAddr::new(addr.into(), weft_dns::DNS_PORT);
    let upstream = weft_dns::upstream_from_resolv_conf(std::path::Path::new("/etc/resolv.conf"));
    match weft_dns::Server::start(
        store.clone(),
        &[bind],
        weft_dns::DnsOptions {
            upstream,
            ttl: weft_dns::DEFAULT_TTL,
        },
    ) {
        Ok(s) => {
            tracing::info!(%bind, "DNS serving workload and service names");
            Some(s)
        }
        Err(e) => {
            tracing::warn!("DNS on {bind} not started: {e:#}");
            None
        }
    }
}

fn lab(name: &str, fmt: Format, cmd: LabCmd) -> Result<i32> {
    weft_engine::require_root()?;
    match cmd {
        LabCmd::Up(a) => {
            let nodes: Vec<String> = match a.nodes.parse::<usize>() {
                Ok(n) if n > 0 => (1..=n).map(|i| format!("node{i}")).collect(),
                Ok(_) => bail!("--nodes: a lab needs at least one node"),
                Err(_) => a.nodes.split(',').map(|s| s.trim().to_string()).collect(),
            };
            if a.store != "sqlite" {
                bail!(
                    "--store {}: only the embedded sqlite store is available in this build",
                    a.store
                );
            }
            let config = ClusterConfig {
                pool: parse_cidr("--pool", &a.pool)?,
                block_size: a.block_size,
                service_cidr: parse_cidr("--service-cidr", &a.service_cidr)?,
                encap: a.encap.parse()?,
            };
            if !(config.pool.prefix_len()..=32).contains(&config.block_size) {
                bail!(
                    "--block-size {}: must be between the pool's prefix ({}) and 32",
                    a.block_size,
                    config.pool.prefix_len()
                );
            }
            let info = weft_lab::up(
                &weft_lab::LabOptions {
                    name: name.to_string(),
                    nodes,
                    config,
                    weft_exe: std::env::current_exe()?,
                },
                &mut |m| eprintln!("{m}"),
            )?;
            emit(fmt, &info, || lab_table(std::slice::from_ref(&info)))?;
            Ok(0)
        }
        LabCmd::Down => {
            weft_lab::down(name, &mut |m| eprintln!("{m}"))?;
            eprintln!("lab {name} is down");
            Ok(0)
        }
        LabCmd::Ls => {
            let labs = weft_lab::list()?;
            emit(fmt, &labs, || lab_table(&labs))?;
            Ok(0)
        }
        LabCmd::Exec { member, cmd } => weft_lab::exec(name, &member, &cmd),
    }
}

fn lab_table(labs: &[weft_lab::LabInfo]) -> Table {
    let mut t = Table::new(&["LAB", "STATUS", "NODES", "POOL", "ENCAP"]);
    for l in labs {
        let nodes: Vec<String> = l
            .nodes
            .iter()
            .map(|n| format!("{}({})", n.name, n.address))
            .collect();
        t.row(vec![
            l.name.clone(),
            l.status.clone(),
            nodes.join(","),
            l.config.pool.to_string(),
            format!("{:?}", l.config.encap).to_lowercase(),
        ]);
    }
    t
}

fn image(fmt: Format, cmd: ImageCmd) -> Result<i32> {
    let store = weft_image::ImageStore::open(&paths::images_root())?;
    match cmd {
        ImageCmd::Ls => {
            // The toolbox always exists.
            store.ensure_toolbox(&std::env::current_exe()?)?;
            let images = store.list()?;
            emit(fmt, &images, || {
                let mut t = Table::new(&["NAME", "SIZE", "SOURCE"]);
                for i in &images {
                    t.row(vec![
                        i.name.clone(),
                        format!("{:.1}MB", i.size as f64 / 1e6),
                        i.source.clone(),
                    ]);
                }
                t
            })?;
        }
        ImageCmd::Build { name, from_host } => {
            let paths: Vec<_> = from_host.iter().map(Into::into).collect();
            let img = store.build_from_host(&name, &paths)?;
            println!("{}", img.name);
        }
        ImageCmd::Rm { name } => {
            store.remove(&name)?;
            println!("{name}");
        }
        ImageCmd::Import { file, name } => {
            for img in store.import(std::path::Path::new(&file), name.as_deref())? {
                println!("{}", img.name);
            }
        }
    }
    Ok(0)
}

fn cluster_command(c: &Cluster, node: Option<&str>, fmt: Format, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Network(n) => network(c, fmt, n),
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
        Command::Inspect { name } => {
            let v = weft_engine::inspect(c, &name)?;
            let fmt = if fmt == Format::Table {
                Format::Json
            } else {
                fmt
            };
            emit(fmt, &v, || Table::new(&[]))?;
            Ok(0)
        }
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
        Command::Ipam(i) => ipam(c, fmt, i),
        Command::Get { kind, name } => get(c, fmt, &kind, name.as_deref()),
        Command::Apply { file } => {
            let done = weft_engine::resources::apply(c, &read_input(&file)?)?;
            print_applied(fmt, &done)
        }
        Command::Delete { file, kind, name } => {
            let done = match (file, kind, name) {
                (Some(f), _, _) => weft_engine::resources::delete_file(c, &read_input(&f)?)?,
                (None, Some(k), Some(n)) => weft_engine::resources::delete(c, &k, &n)?,
                _ => bail!("give KIND NAME or -f FILE"),
            };
            print_applied(fmt, &done)
        }
        Command::Trace(a) => trace(c, fmt, a),
        Command::Doctor => doctor(c, fmt),
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
        ]);
    }
    t
}

fn network(c: &Cluster, fmt: Format, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create {
            name,
            driver,
            subnet,
            isolation,
            no_nat_outgoing,
        } => {
            let subnet = subnet
                .as_deref()
                .map(|s| parse_cidr("--subnet", s))
                .transpose()?;
            let net = weft_engine::create_network(
                c,
                &NetworkOptions {
                    name,
                    driver: driver.parse()?,
                    subnet,
                    isolation: isolation.parse()?,
                    nat_outgoing: !no_nat_outgoing,
                },
            )?;
            match fmt {
                Format::Table => println!("{}", net.name),
                _ => emit(fmt, &net, || Table::new(&[]))?,
            }
        }
        NetworkCmd::Ls => {
            let nets = weft_engine::list_networks(c)?;
            emit(fmt, &nets, || {
                let mut t = Table::new(&["NAME", "DRIVER", "POOL", "SUBNET", "ISOLATION"]);
                for n in &nets {
                    t.row(vec![
                        n.name.clone(),
                        n.driver.to_string(),
                        n.pool.clone(),
                        n.subnet
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        n.isolation.to_string(),
                    ]);
                }
                t
            })?;
        }
        NetworkCmd::Inspect { name } => {
            let n = weft_engine::inspect_network(c, &name)?;
            let fmt = if fmt == Format::Table {
                Format::Json
            } else {
                fmt
            };
            emit(fmt, &n, || Table::new(&[]))?;
        }
        NetworkCmd::Rm { name } => {
            weft_engine::remove_network(c, &name)?;
            println!("{name}");
        }
    }
    Ok(0)
}

/// Handles that must keep their addresses: every workload's, and every node's tunnel address.
fn live_handles(c: &Cluster) -> Result<HashSet<String>> {
    let mut live: HashSet<String> =
        weft_store::list_json::<Workload>(c.store.as_ref(), keys::WORKLOADS)?
            .into_iter()
            .map(|(_, w, _)| w.ipam_handle())
            .collect();
    live.extend(
        c.nodes()?
            .iter()
            .map(|n| weft_model::tunnel_handle(&n.name)),
    );
    Ok(live)
}

fn ipam(c: &Cluster, fmt: Format, cmd: IpamCmd) -> Result<i32> {
    let ipam = Ipam::new(c.store.as_ref());
    match cmd {
        IpamCmd::Show { show_blocks } => {
            if show_blocks {
                let blocks = ipam.blocks()?;
                emit(fmt, &blocks, || {
                    let mut t = Table::new(&["BLOCK", "POOL", "NODE", "IN USE", "FREE"]);
                    for b in &blocks {
                        let size = 1u64 << (32 - b.cidr.prefix_len());
                        let used = b.allocations.len() as u64;
                        t.row(vec![
                            b.cidr.to_string(),
                            b.pool.clone(),
                            b.affinity.clone().unwrap_or_else(|| "-".into()),
                            used.to_string(),
                            (size - used).to_string(),
                        ]);
                    }
                    t
                })?;
            } else {
                let usage = ipam.usage()?;
                emit(fmt, &usage, || {
                    let mut t = Table::new(&["POOL", "CIDR", "SIZE", "IN USE", "FREE", "BLOCKS"]);
                    for u in &usage {
                        t.row(vec![
                            u.pool.clone(),
                            u.cidr.to_string(),
                            u.size.to_string(),
                            u.in_use.to_string(),
                            (u.size - u.in_use).to_string(),
                            u.blocks.to_string(),
                        ]);
                    }
                    t
                })?;
            }
            Ok(0)
        }
        IpamCmd::Check => {
            let live = live_handles(c)?;
            let nodes: Vec<String> = c.nodes()?.into_iter().map(|n| n.name).collect();
            let problems = ipam.check(&|h| live.contains(h), &nodes)?;
            let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            match fmt {
                Format::Table if text.is_empty() => {
                    println!("IPAM is consistent: no problems found")
                }
                Format::Table => {
                    for t in &text {
                        println!("{t}");
                    }
                }
                _ => emit(fmt, &text, || Table::new(&[]))?,
            }
            Ok(if text.is_empty() { 0 } else { 1 })
        }
        IpamCmd::Gc => {
            let live = live_handles(c)?;
            let released = ipam.gc(&|h| live.contains(h))?;
            for r in &released {
                println!("released {r}");
            }
            Ok(0)
        }
    }
}

/// A file's text, or standard input for `-`.
fn read_input(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("read standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {file}"))
    }
}

fn print_applied(fmt: Format, done: &[weft_engine::resources::Applied]) -> Result<i32> {
    match fmt {
        Format::Table => done.iter().for_each(|a| println!("{a}")),
        _ => emit(fmt, done, || Table::new(&[]))?,
    }
    Ok(0)
}

fn get_policies(c: &Cluster, fmt: Format, kind: &str, name: Option<&str>) -> Result<i32> {
    let found = weft_engine::resources::get_policies(c, kind, name)?;
    match (fmt, name) {
        (Format::Table, _) => {
            let mut t = Table::new(&["NAME", "KIND", "NAMESPACE", "ORDER", "SELECTOR"]);
            for r in &found {
                let p = r.to_policy().ok().flatten();
                t.row(vec![
                    r.name().to_string(),
                    r.kind().to_string(),
                    r.namespace().unwrap_or("-").to_string(),
                    p.as_ref()
                        .and_then(|p| p.order)
                        .map(|o| o.to_string())
                        .unwrap_or_else(|| "-".into()),
                    p.map(|p| p.selector.to_string()).unwrap_or_default(),
                ]);
            }
            print!("{}", t.render());
        }
        (_, Some(_)) => emit(fmt, &found[0], || Table::new(&[]))?,
        (_, None) => emit(fmt, &found, || Table::new(&[]))?,
    }
    Ok(0)
}

fn get_services(c: &Cluster, fmt: Format, name: Option<&str>) -> Result<i32> {
    let mut all = weft_engine::services::list(c)?;
    all.retain(|s| name.is_none_or(|n| s.metadata.name == n));
    if let (Some(n), true) = (name, all.is_empty()) {
        bail!("service {n:?} not found; see `weft get svc`");
    }
    emit(fmt, &all, || {
        let mut t = Table::new(&["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"]);
        for s in &all {
            let ports: Vec<String> = s
                .ports()
                .unwrap_or_default()
                .iter()
                .map(|p| {
                    let proto = weft_model::policy::Protocol(p.protocol);
                    match p.node_port {
                        Some(np) => format!("{}:{np}/{proto}", p.port),
                        None => format!("{}/{proto}", p.port),
                    }
                })
                .collect();
            t.row(vec![
                s.metadata.name.clone(),
                format!("{:?}", s.spec.service_type),
                s.spec.cluster_ip.clone().unwrap_or_default(),
                "<none>".into(),
                ports.join(","),
            ]);
        }
        t
    })?;
    Ok(0)
}

fn get_endpoints(c: &Cluster, fmt: Format, name: Option<&str>) -> Result<i32> {
    let mut all = weft_engine::services::list_endpoints(c)?;
    all.retain(|e| name.is_none_or(|n| e.name == n));
    emit(fmt, &all, || {
        let mut t = Table::new(&["NAME", "ENDPOINTS"]);
        for e in &all {
            let eps = if e.endpoints.is_empty() {
                "<none>".to_string()
            } else {
                e.endpoints.join(",")
            };
            t.row(vec![e.name.clone(), eps]);
        }
        t
    })?;
    Ok(0)
}

fn get(c: &Cluster, fmt: Format, kind: &str, name: Option<&str>) -> Result<i32> {
    match kind.to_ascii_lowercase().as_str() {
        "svc" | "service" | "services" => return get_services(c, fmt, name),
        "ep" | "endpoints" => return get_endpoints(c, fmt, name),
        _ => {}
    }
    if weft_engine::resources::is_policy_kind(kind) {
        return get_policies(c, fmt, kind, name);
    }
    let (prefix, what) = match kind {
        "node" | "nodes" => (keys::NODES.to_string(), "node"),
        "network" | "networks" | "net" => (keys::NETWORKS.to_string(), "network"),
        "workload" | "workloads" | "wl" => (keys::WORKLOADS.to_string(), "workload"),
        "ippool" | "ippools" => (weft_ipam::keys::POOLS.to_string(), "ippool"),
        other => bail!(
            "unknown kind {other:?}; use node, network, workload, ippool, policy, globalpolicy, svc or endpoints"
        ),
    };
    let items: Vec<serde_json::Value> =
        weft_store::list_json::<serde_json::Value>(c.store.as_ref(), &prefix)?
            .into_iter()
            .filter(|(k, _, _)| name.is_none_or(|n| k.rsplit('/').next() == Some(n)))
            .map(|(_, v, _)| v)
            .collect();
    if let (Some(n), true) = (name, items.is_empty()) {
        bail!("{what} {n:?} not found");
    }
    let fmt = if fmt == Format::Table {
        Format::Yaml
    } else {
        fmt
    };
    match name {
        Some(_) => emit(fmt, &items[0], || Table::new(&[]))?,
        None => emit(fmt, &items, || Table::new(&[]))?,
    }
    Ok(0)
}

/// `weft trace FROM TO`: text for people, JSON/YAML for scripts; exit 1 when --verify differs.
fn trace(c: &Cluster, fmt: Format, a: crate::cli::TraceArgs) -> Result<i32> {
    let opts = weft_trace::TraceOptions {
        proto: a.proto.parse()?,
        port: a.port,
        size: a.size,
        verify: a.verify,
    };
    let t = weft_trace::trace(&c.lab, &a.from, &a.to, &opts)?;
    match fmt {
        Format::Table => print!("{}", weft_trace::render::text(&t)),
        _ => emit(fmt, &weft_trace::render::json(&t), || Table::new(&[]))?,
    }
    Ok(t.exit_code())
}

/// `weft doctor`: exit 1 when something was found.
fn doctor(c: &Cluster, fmt: Format) -> Result<i32> {
    let r = weft_trace::doctor(&c.lab)?;
    match fmt {
        Format::Table => print!("{}", r.text()),
        _ => emit(fmt, &r, || Table::new(&[]))?,
    }
    Ok(r.exit_code())
}
