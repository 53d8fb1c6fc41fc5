//! `weft agent`: the node daemon (supervised, or the worker itself), and its companions.

use anyhow::Result;
use weft_engine::Cluster;
use weft_model::keys;

/// `weft agent [--no-supervise]`: by default a supervisor that runs this same command with
/// `--no-supervise` as its worker and restarts it when it dies; the worker is the agent and,
/// beside it, the node's name server. `given` holds the command line's settings; the
/// configuration file (`config`, or the default one) fills the rest.
pub(super) fn agent(
    given: weft_agent::config::AgentConfig,
    config: Option<&std::path::Path>,
    no_supervise: bool,
) -> Result<i32> {
    weft_engine::require_root()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEFT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .init();
    let s = given.resolve(weft_agent::config::AgentConfig::load(config)?)?;
    if let Some(url) = &s.store {
        // Every opener of the cluster's store (and the supervised worker) reads it from here.
        std::env::set_var(weft_model::paths::STORE_ENV, url);
    }
    if !no_supervise {
        let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        args.push("--no-supervise".into());
        return weft_agent::supervise::supervise(&weft_agent::supervise::SuperviseOptions {
            program: std::env::current_exe()?,
            args,
            pid_file: Some(weft_lab::agent_pid_file(&s.cluster, &s.node)),
            backoff: Default::default(),
        });
    }
    let c = Cluster::open_lab(&s.cluster)?;
    let store: std::sync::Arc<dyn weft_store::Store> = std::sync::Arc::from(c.store);
    let _dns = start_dns(&store, &s.node);
    weft_agent::run(
        store,
        &weft_agent::AgentOptions {
            node: s.node,
            resync: s.resync,
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
