//! `weft agent`: the node daemon (supervised, or the worker itself), and its companions.

use std::time::Duration;

use anyhow::{Context, Result};
use weft_engine::Cluster;
use weft_model::keys;

/// `weft agent [--no-supervise]`: by default a supervisor that runs this same command with
/// `--no-supervise` as its worker and restarts it when it dies; the worker is the agent and,
/// beside it, the node's name server.
/// What `weft agent` was given on its command line (and environment).
pub(super) struct AgentArgs {
    pub lab: Option<String>,
    pub node: Option<String>,
    pub resync: Option<u64>,
    pub store: Option<String>,
    pub config: Option<std::path::PathBuf>,
}

pub(super) fn agent(a: AgentArgs, no_supervise: bool) -> Result<i32> {
    weft_engine::require_root()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .init();
    // Flags and environment first, then the configuration file, then the defaults.
    let file = weft_agent::config::AgentConfig::load(a.config.as_deref())?;
    let lab = a.lab.or(file.cluster).unwrap_or_else(|| "default".into());
    let node = a
        .node
        .or(file.node)
        .context("weft agent needs --node NODE (or `node:` in its configuration file)")?;
    let resync = a.resync.or(file.resync).unwrap_or(60);
    if let Some(url) = a.store.or(file.store) {
        // Every opener of the lab's store (and the supervised worker) reads it from here.
        std::env::set_var(weft_model::paths::STORE_ENV, url);
    }
    if !no_supervise {
        let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        args.push("--no-supervise".into());
        return weft_agent::supervise::supervise(&weft_agent::supervise::SuperviseOptions {
            program: std::env::current_exe()?,
            args,
            pid_file: Some(weft_lab::agent_pid_file(&lab, &node)),
            backoff: Default::default(),
        });
    }
    let c = Cluster::open_lab(&lab)?;
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
