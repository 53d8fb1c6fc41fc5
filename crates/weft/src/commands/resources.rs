//! `weft apply`, `get`, `delete`.

use anyhow::{bail, Context, Result};
use weft_engine::Cluster;
use weft_model::keys;

use crate::cli::Format;
use crate::output::{emit, Table};

/// A file's text, or standard input for `-`.
pub(super) fn read_input(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .context("read standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {file}"))
    }
}

pub(super) fn print_applied(fmt: Format, done: &[weft_engine::resources::Applied]) -> Result<i32> {
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

pub(super) fn get(c: &Cluster, fmt: Format, kind: &str, name: Option<&str>) -> Result<i32> {
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
