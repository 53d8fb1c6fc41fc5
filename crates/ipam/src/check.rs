//! Consistency check of IPAM records (`weft ipam check`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::de::DeserializeOwned;

use crate::creator::in_creation;
use crate::pools::overlaps;
use crate::{keys, Block, Handle, IpPool, Ipam, Result};

/// Something wrong in the IPAM records; its text says what and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A record that cannot be decoded.
    BadRecord { key: String, error: String },
    /// Two blocks share addresses.
    OverlappingBlocks { a: Ipv4Net, b: Ipv4Net },
    /// One address is held by several owners (blocks or handles).
    AddressHeldTwice {
        addr: Ipv4Addr,
        holders: Vec<String>,
    },
    /// A handle lists an address that its block does not hold for it.
    HandleNotInBlock {
        handle: String,
        addr: Ipv4Addr,
        /// Who the block holds the address for, if anyone.
        block_holder: Option<String>,
    },
    /// A block holds an address for a handle whose record does not list it.
    BlockNotInHandle {
        handle: String,
        addr: Ipv4Addr,
        block: Ipv4Net,
    },
    /// A block holds an address for a handle that has no record.
    MissingHandle {
        handle: String,
        addr: Ipv4Addr,
        block: Ipv4Net,
    },
    /// A handle whose workload does not exist.
    LeakedHandle {
        handle: String,
        addresses: Vec<Ipv4Addr>,
    },
    /// A block affine to a node that does not exist.
    OrphanBlock { block: Ipv4Net, node: String },
    /// A block outside its pool, or of a pool that does not exist, or with an ordinal past its
    /// end, or under a key that does not name its CIDR.
    BlockOutsidePool {
        block: Ipv4Net,
        pool: String,
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadRecord { key, error } => write!(
                f,
                "record {key} cannot be read ({error}); delete it or rewrite it by hand"
            ),
            Problem::OverlappingBlocks { a, b } => write!(
                f,
                "blocks {a} and {b} overlap; one was written by hand or by another tool: release \
                 the workloads in the one that should not exist and delete its record"
            ),
            Problem::AddressHeldTwice { addr, holders } => write!(
                f,
                "address {addr} is held more than once ({}); remove all but one of the \
                 workloads and run `weft ipam gc`",
                holders.join(", ")
            ),
            Problem::HandleNotInBlock {
                handle,
                addr,
                block_holder,
            } => match block_holder {
                Some(other) => write!(
                    f,
                    "handle {handle} lists {addr}, but its block holds it for {other}; remove \
                     the workload of {handle} and run `weft ipam gc`"
                ),
                None => write!(
                    f,
                    "handle {handle} lists {addr}, but no block holds it; remove the workload \
                     of {handle} and run `weft ipam gc`"
                ),
            },
            Problem::BlockNotInHandle {
                handle,
                addr,
                block,
            } => write!(
                f,
                "block {block} holds {addr} for {handle}, whose handle record does not list it; \
                 remove the workload of {handle} and run `weft ipam gc`"
            ),
            Problem::MissingHandle {
                handle,
                addr,
                block,
            } => write!(
                f,
                "block {block} holds {addr} for {handle}, which has no handle record; run \
                 `weft ipam gc` (once no workload of that handle exists)"
            ),
            Problem::LeakedHandle { handle, addresses } => write!(
                f,
                "handle {handle} holds {} but its workload does not exist; run `weft ipam gc`",
                join(addresses)
            ),
            Problem::OrphanBlock { block, node } => write!(
                f,
                "block {block} is affine to node {node}, which does not exist; re-add the node, \
                 or remove its workloads, run `weft ipam gc` and release its blocks"
            ),
            Problem::BlockOutsidePool {
                block,
                pool,
                reason,
            } => write!(
                f,
                "block {block} of pool {pool}: {reason}; release its addresses and delete the \
                 block record"
            ),
        }
    }
}

fn join(addrs: &[Ipv4Addr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn decode<T: DeserializeOwned>(key: &str, value: &[u8], problems: &mut Vec<Problem>) -> Option<T> {
    serde_json::from_slice(value)
        .map_err(|e| {
            problems.push(Problem::BadRecord {
                key: key.to_string(),
                error: e.to_string(),
            })
        })
        .ok()
}

impl Ipam<'_> {
    /// Finds inconsistencies. `live_handle` says whether a handle's workload exists (a handle
    /// whose creator still runs is never reported leaked); `nodes`
    /// are the names of the nodes that exist. An empty result means all is well.
    pub fn check(
        &self,
        live_handle: &dyn Fn(&str) -> bool,
        nodes: &[String],
    ) -> Result<Vec<Problem>> {
        let mut problems = Vec::new();
        let mut pools = BTreeMap::new();
        for kv in self.store.list(keys::POOLS)?.0 {
            if let Some(p) = decode::<IpPool>(&kv.key, &kv.value, &mut problems) {
                pools.insert(p.name.clone(), p);
            }
        }
        // Blocks and handles from one read, so they are consistent with each other.
        let (records, _) = self.store.list(keys::IPAM)?;
        let mut blocks = Vec::new();
        let mut handles = Vec::new();
        for kv in &records {
            if kv.key.starts_with(keys::BLOCKS) {
                if let Some(b) = decode::<Block>(&kv.key, &kv.value, &mut problems) {
                    blocks.push((kv.key.clone(), b));
                }
            } else if kv.key.starts_with(keys::HANDLES) {
                if let Some(h) = decode::<Handle>(&kv.key, &kv.value, &mut problems) {
                    handles.push(h);
                }
            }
        }
        blocks.sort_by_key(|(_, b)| (b.cidr.network(), b.cidr.prefix_len()));
        let blocks: Vec<Block> = blocks
            .into_iter()
            .map(|(key, b)| {
                check_block(&key, &b, &pools, nodes, &mut problems);
                b
            })
            .collect();
        check_overlaps(&blocks, &handles, &mut problems);
        check_handles(&blocks, &handles, live_handle, &mut problems);
        Ok(problems)
    }
}

fn check_block(
    key: &str,
    b: &Block,
    pools: &BTreeMap<String, IpPool>,
    nodes: &[String],
    problems: &mut Vec<Problem>,
) {
    let mut outside = |reason: String| {
        problems.push(Problem::BlockOutsidePool {
            block: b.cidr,
            pool: b.pool.clone(),
            reason,
        })
    };
    match pools.get(&b.pool) {
        None => outside("the pool does not exist".into()),
        Some(p) if !p.cidr.contains(&b.cidr) => outside(format!("it lies outside {}", p.cidr)),
        Some(_) => {}
    }
    if keys::parse_block(key) != Some(b.cidr) || b.cidr.trunc() != b.cidr {
        outside(format!("it is stored under {key}, which does not name it"));
    }
    if let Some((o, _)) = b
        .allocations
        .iter()
        .find(|(o, _)| u64::from(**o) >= b.size())
    {
        outside(format!("ordinal {o} is past the end of the block"));
    }
    if let Some(node) = &b.affinity {
        if !nodes.contains(node) {
            problems.push(Problem::OrphanBlock {
                block: b.cidr,
                node: node.clone(),
            });
        }
    }
}

fn check_overlaps(blocks: &[Block], handles: &[Handle], problems: &mut Vec<Problem>) {
    for (i, a) in blocks.iter().enumerate() {
        for b in &blocks[i + 1..] {
            if overlaps(a.cidr, b.cidr) {
                problems.push(Problem::OverlappingBlocks {
                    a: a.cidr,
                    b: b.cidr,
                });
            }
        }
    }
    let mut holders: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
    for b in blocks {
        for (addr, h) in b.addresses() {
            holders
                .entry(addr)
                .or_default()
                .push(format!("block {} for {h}", b.cidr));
        }
    }
    let mut by_handle: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
    for h in handles {
        for addr in &h.addresses {
            by_handle
                .entry(*addr)
                .or_default()
                .push(format!("handle {}", h.id));
        }
    }
    for (addr, list) in holders.into_iter().chain(by_handle) {
        if list.len() > 1 {
            problems.push(Problem::AddressHeldTwice {
                addr,
                holders: list,
            });
        }
    }
}

fn check_handles(
    blocks: &[Block],
    handles: &[Handle],
    live_handle: &dyn Fn(&str) -> bool,
    problems: &mut Vec<Problem>,
) {
    let by_id: BTreeMap<&str, &Handle> = handles.iter().map(|h| (h.id.as_str(), h)).collect();
    let now = crate::unix_now();
    for h in handles {
        // A handle whose creator still runs is a workload being created, not a leak.
        if !live_handle(&h.id) && !in_creation(h.creator.as_ref(), h.created, now) {
            problems.push(Problem::LeakedHandle {
                handle: h.id.clone(),
                addresses: h.addresses.clone(),
            });
        }
        for addr in &h.addresses {
            let holders: Vec<&str> = blocks
                .iter()
                .filter_map(|b| b.ordinal(*addr).and_then(|o| b.allocations.get(&o)))
                .map(String::as_str)
                .collect();
            if !holders.contains(&h.id.as_str()) {
                problems.push(Problem::HandleNotInBlock {
                    handle: h.id.clone(),
                    addr: *addr,
                    block_holder: holders.first().map(|s| s.to_string()),
                });
            }
        }
    }
    for b in blocks {
        for (addr, holder) in b.addresses() {
            match by_id.get(holder) {
                None => problems.push(Problem::MissingHandle {
                    handle: holder.to_string(),
                    addr,
                    block: b.cidr,
                }),
                Some(h) if !h.addresses.contains(&addr) => {
                    problems.push(Problem::BlockNotInHandle {
                        handle: holder.to_string(),
                        addr,
                        block: b.cidr,
                    })
                }
                Some(_) => {}
            }
        }
    }
}
