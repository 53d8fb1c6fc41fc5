//! `weft lab ...`

use anyhow::{bail, Result};
use weft_model::{parse_cidr, ClusterConfig};

use crate::cli::{Format, LabCmd, LabNodeCmd};
use crate::output::{emit, Table};

pub(super) fn lab(name: &str, fmt: Format, cmd: LabCmd) -> Result<i32> {
    weft_engine::require_root()?;
    match cmd {
        LabCmd::Up(a) => {
            let nodes: Vec<String> = match a.nodes.parse::<usize>() {
                Ok(n) if n > 0 => (1..=n).map(|i| format!("node{i}")).collect(),
                Ok(_) => bail!("--nodes: a lab needs at least one node"),
                Err(_) => a.nodes.split(',').map(|s| s.trim().to_string()).collect(),
            };
            let store: weft_lab::LabStore = a.store.parse()?;
            let config = ClusterConfig {
                pool: parse_cidr("--pool", &a.pool)?,
                block_size: a.block_size,
                service_cidr: parse_cidr("--service-cidr", &a.service_cidr)?,
                encap: a.encap.parse()?,
                deny_action: a.deny_action.parse()?,
            };
            if !(config.pool.prefix_len()..=32).contains(&config.block_size) {
                bail!(
                    "--block-size {}: must be between the pool's prefix ({}) and 32",
                    a.block_size,
                    config.pool.prefix_len()
                );
            }
            let info = weft_lab::up_with_store(
                &weft_lab::LabOptions {
                    name: name.to_string(),
                    nodes,
                    config,
                    subnets: weft_lab::subnets::parse_assignments(&a.subnet)?,
                    weft_exe: std::env::current_exe()?,
                },
                store,
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
        LabCmd::Etcd { action } => {
            if action == "stop" {
                let was = weft_lab::etcd::stop(name)?;
                eprintln!(
                    "etcd of lab {name} {}",
                    if was { "stopped" } else { "was not running" }
                );
            } else {
                let pid = weft_lab::etcd::start(name)?;
                eprintln!("etcd of lab {name} runs (pid {pid})");
            }
            Ok(0)
        }
        LabCmd::Exec { member, cmd } => weft_lab::exec(name, &member, &cmd),
        LabCmd::Node(cmd) => {
            let c = weft_engine::Cluster::open_lab(name)?;
            let store = c.store.as_ref();
            let progress = &mut |m: &str| eprintln!("{m}");
            match cmd {
                LabNodeCmd::Add { name: node, subnet } => {
                    let exe = std::env::current_exe()?;
                    let subnet = subnet
                        .as_deref()
                        .map(|s| parse_cidr("--subnet", s))
                        .transpose()?;
                    let n = weft_lab::node_add(name, &node, subnet, store, &exe, progress)?;
                    eprintln!("node {} joined lab {name} at {}", n.name, n.address);
                }
                LabNodeCmd::Rm { name: node, force } => {
                    weft_lab::node_rm(name, &node, store, force, progress)?;
                    eprintln!("node {node} left lab {name}");
                }
            }
            Ok(0)
        }
    }
}

fn lab_table(labs: &[weft_lab::LabInfo]) -> Table {
    let mut t = Table::new(&["LAB", "STATUS", "NODES", "POOL", "ENCAP", "STORE"]);
    for l in labs {
        let nodes: Vec<String> = l
            .nodes
            .iter()
            .map(|n| match n.subnet {
                Some(s) => format!("{}({}/{})", n.name, n.address, s.prefix_len()),
                None => format!("{}({})", n.name, n.address),
            })
            .collect();
        t.row(vec![
            l.name.clone(),
            l.status.clone(),
            nodes.join(","),
            l.config.pool.to_string(),
            l.config.encap.to_string(),
            match &l.etcd {
                Some(e) if e.pid.is_some() => format!("etcd({})", e.address),
                Some(e) => format!("etcd({}, stopped)", e.address),
                None => "sqlite".into(),
            },
        ]);
    }
    t
}
