//! `weft network ...`

use anyhow::Result;
use weft_engine::{Cluster, NetworkOptions};
use weft_model::parse_cidr;

use crate::cli::{Format, NetworkCmd};
use crate::output::{emit, Table};

pub(super) fn network(c: &Cluster, fmt: Format, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create {
            name,
            driver,
            subnet,
            isolation,
            no_nat_outgoing,
            internal,
            bridge,
            deny_action,
            vxlan_mode,
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
                    bridge,
                    internal,
                    deny_action: deny_action.as_deref().map(str::parse).transpose()?,
                    vxlan_mode: vxlan_mode.as_deref().map(str::parse).transpose()?,
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
                let mut t =
                    Table::new(&["NAME", "DRIVER", "POOL", "SUBNET", "ISOLATION", "BRIDGE"]);
                for n in &nets {
                    t.row(vec![
                        n.name.clone(),
                        n.driver.to_string(),
                        n.pool.clone(),
                        n.subnet
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| "-".into()),
                        n.isolation.to_string(),
                        match n.driver {
                            weft_model::Driver::Bridge => n.bridge_name(),
                            weft_model::Driver::Routed => "-".into(),
                        },
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
