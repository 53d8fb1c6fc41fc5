//! `weft lab ...`

use anyhow::{bail, Result};
use weft_model::{parse_cidr, ClusterConfig};

use crate::cli::{Format, LabCmd};
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
                deny_action: a.deny_action.parse()?,
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
