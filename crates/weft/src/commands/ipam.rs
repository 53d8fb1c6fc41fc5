//! `weft ipam ...`

use anyhow::Result;
use weft_engine::Cluster;
use weft_ipam::Ipam;

use crate::cli::{Format, IpamCmd};
use crate::output::{emit, Table};

pub(super) fn ipam(c: &Cluster, fmt: Format, cmd: IpamCmd) -> Result<i32> {
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
            let live = c.live_handles()?;
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
            let live = c.live_handles()?;
            let released = ipam.gc(&|h| live.contains(h))?;
            for r in &released {
                println!("released {r}");
            }
            Ok(0)
        }
    }
}
