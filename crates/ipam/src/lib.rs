//! weft-ipam: Calico-style IP address management on the store.
//!
//! An [`IpPool`] is cut into blocks (default /26). A node claims a block for itself (affinity)
//! and hands out its addresses to handles (`<network>.<container-id>`). Every change is one
//! store transaction that compares the mod revisions of the records it read, so any number of
//! processes on any number of hosts can allocate at once: the loser of a race re-reads and
//! tries again.
//!
//! Records: pools under [`keys::POOLS`], blocks under [`keys::BLOCKS`], handles under
//! [`keys::HANDLES`], all JSON.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use weft_store::{get_json, list_json, Store};

mod alloc;
mod check;
mod config;
mod creator;
mod gc;
pub mod keys;
mod pools;
mod release;

pub use check::Problem;
pub use config::IpamConfig;
pub use creator::Creator;
pub use gc::{GcEntry, GcOptions, GcReport, LiveHandles, DEFAULT_GRACE};

/// Default block prefix length.
pub const DEFAULT_BLOCK_SIZE: u8 = 26;

fn default_block_size() -> u8 {
    DEFAULT_BLOCK_SIZE
}

/// A range of addresses that workloads get theirs from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpPool {
    pub name: String,
    pub cidr: Ipv4Net,
    /// Prefix length of the blocks the pool is cut into (default 26).
    #[serde(default = "default_block_size")]
    pub block_size: u8,
    /// A disabled pool hands out no new addresses automatically (an explicit address still works).
    #[serde(default)]
    pub disabled: bool,
    /// Strict affinity for this pool: `Some(true)` never hands out an address from a block
    /// affine to another node; `None` follows the cluster-wide setting ([`IpamConfig`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_affinity: Option<bool>,
    /// Calico's `vxlanMode` for this pool: `Never`, `Always` or `CrossSubnet`; `None` follows
    /// the cluster's default (`lab up --encap`), see [`IpPool::vxlan_mode_or`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vxlan_mode: Option<weft_model::VxlanMode>,
}

impl IpPool {
    /// An enabled pool with the default block size.
    pub fn new(name: &str, cidr: Ipv4Net) -> Self {
        Self {
            name: name.to_string(),
            cidr,
            block_size: DEFAULT_BLOCK_SIZE,
            disabled: false,
            strict_affinity: None,
            vxlan_mode: None,
        }
    }

    /// The pool's VXLAN mode: its own, or the one the cluster's default `encap` gives.
    pub fn vxlan_mode_or(&self, encap: weft_model::Encap) -> weft_model::VxlanMode {
        self.vxlan_mode.unwrap_or(encap.vxlan_mode())
    }

    /// Number of addresses in the pool.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.cidr.prefix_len()))
    }
}

/// A slice of a pool, claimed by one node, with the addresses it handed out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub cidr: Ipv4Net,
    /// Name of the pool the block belongs to.
    pub pool: String,
    /// The node the block is affine to.
    pub affinity: Option<String>,
    /// Ordinal (offset in the block) → handle holding that address.
    #[serde(default)]
    pub allocations: BTreeMap<u32, String>,
    /// Bumped on every change.
    #[serde(default)]
    pub sequence: u64,
}

impl Block {
    /// A new, empty block of pool `pool` claimed by (affine to) `node`.
    pub fn claimed(cidr: Ipv4Net, pool: &str, node: &str) -> Block {
        Block {
            cidr,
            pool: pool.to_string(),
            affinity: Some(node.to_string()),
            allocations: BTreeMap::new(),
            sequence: 0,
        }
    }

    /// Number of addresses in the block.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.cidr.prefix_len()))
    }

    /// The address at `ordinal`.
    pub fn addr(&self, ordinal: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()).wrapping_add(ordinal))
    }

    /// The ordinal of `addr`, if the block contains it.
    pub fn ordinal(&self, addr: Ipv4Addr) -> Option<u32> {
        self.cidr
            .contains(&addr)
            .then(|| u32::from(addr) - u32::from(self.cidr.network()))
    }

    /// The allocated addresses with their handles, in address order.
    pub fn addresses(&self) -> impl Iterator<Item = (Ipv4Addr, &str)> + '_ {
        self.allocations
            .iter()
            .map(|(o, h)| (self.addr(*o), h.as_str()))
    }
}

/// The addresses held by one workload attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// `<network>.<container-id>`.
    pub id: String,
    /// The node the addresses were allocated on.
    pub node: String,
    pub addresses: Vec<Ipv4Addr>,
    /// Unix seconds when the handle was created (0: unknown, an older record).
    #[serde(default)]
    pub created: u64,
    /// The process that created the handle: while it runs, the handle is a workload being
    /// created and `gc` never releases it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<Creator>,
}

impl Handle {
    /// A new handle of `node`, created now by this process, holding no address yet.
    pub fn new(id: &str, node: &str) -> Self {
        Self {
            id: id.to_string(),
            node: node.to_string(),
            addresses: Vec::new(),
            created: unix_now(),
            creator: Creator::current(),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How much of a pool is used (for `weft ipam show`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolUsage {
    pub pool: String,
    pub cidr: Ipv4Net,
    pub block_size: u8,
    pub disabled: bool,
    /// Whether the pool refuses to borrow addresses from other nodes' blocks (its own setting,
    /// or the cluster-wide one).
    pub strict_affinity: bool,
    /// Addresses in the pool.
    pub size: u64,
    /// Addresses allocated.
    pub in_use: u64,
    /// Addresses allocated to a node other than their block's (borrowed).
    pub borrowed: u64,
    /// Blocks claimed by nodes.
    pub blocks: u64,
    /// Blocks the pool can be cut into.
    pub blocks_total: u64,
}

/// What can go wrong with IPAM.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] weft_store::Error),
    #[error("IP pool {0} does not exist; create it first (`weft apply -f` an IPPool, or `weft network create`)")]
    PoolNotFound(String),
    #[error(
        "IP pool {0} is disabled: it hands out no new addresses; enable it or use another pool"
    )]
    PoolDisabled(String),
    #[error("IP pool {pool} ({cidr}) is exhausted: every address is allocated (asked for by node {node}); add a pool, or free addresses (remove containers, `weft ipam gc`)")]
    PoolExhausted {
        pool: String,
        cidr: Ipv4Net,
        node: String,
    },
    #[error("IP pool {pool} ({cidr}) has no address for node {node}: its blocks are full and no free block is left, and strict affinity is on, so it does not borrow from other nodes' blocks ({free_elsewhere} address(es) free there); add a pool, free addresses, or turn strict affinity off (`weft ipam configure --strict-affinity false`)")]
    StrictAffinity {
        pool: String,
        cidr: Ipv4Net,
        node: String,
        free_elsewhere: u64,
    },
    #[error("cannot tell which workloads exist: {0}")]
    Liveness(String),
    #[error("invalid IP pool {pool}: {reason}")]
    InvalidPool { pool: String, reason: String },
    #[error("IP pool {pool} ({cidr}) overlaps IP pool {other} ({other_cidr}); choose a CIDR that does not overlap")]
    PoolOverlap {
        pool: String,
        cidr: Ipv4Net,
        other: String,
        other_cidr: Ipv4Net,
    },
    #[error("IP pool {pool} already exists with {existing}; delete it first to change it")]
    PoolExists { pool: String, existing: String },
    #[error("IP pool {pool} still has {in_use} address(es) allocated; remove the workloads using it (and run `weft ipam gc`) first")]
    PoolInUse { pool: String, in_use: u64 },
    #[error(
        "address {addr} is not in IP pool {pool} ({cidr}); request an address inside the pool"
    )]
    AddressOutsidePool {
        addr: Ipv4Addr,
        pool: String,
        cidr: Ipv4Net,
    },
    #[error("address {addr} is the network address of IP pool {pool} and is never handed out")]
    AddressReserved { addr: Ipv4Addr, pool: String },
    #[error("address {addr} is already allocated to {handle}; pick another address")]
    AddressInUse { addr: Ipv4Addr, handle: String },
    #[error("address {addr} lies in block {block}, which {owner}; request it on that node or pick another address")]
    AddressNotHere {
        addr: Ipv4Addr,
        block: Ipv4Net,
        owner: String,
    },
    #[error("invalid IPAM handle {handle:?}: {reason}")]
    InvalidHandle { handle: String, reason: String },
    #[error("IPAM handle {handle} belongs to node {owner}, not {node}; release it there first")]
    HandleOnOtherNode {
        handle: String,
        owner: String,
        node: String,
    },
    #[error("{what}: other writers kept changing the same IPAM records ({attempts} attempts); try again")]
    Contention { what: String, attempts: u32 },
}

/// Result with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// IPAM operations over a store.
#[derive(Clone, Copy)]
pub struct Ipam<'a> {
    store: &'a dyn Store,
}

impl<'a> Ipam<'a> {
    /// IPAM on `store`.
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Every pool, by name.
    pub fn pools(&self) -> Result<Vec<IpPool>> {
        Ok(list_json::<IpPool>(self.store, keys::POOLS)?
            .into_iter()
            .map(|(_, p, _)| p)
            .collect())
    }

    /// The pool `name`.
    pub fn pool(&self, name: &str) -> Result<IpPool> {
        get_json::<IpPool>(self.store, &keys::pool(name))?
            .map(|(p, _)| p)
            .ok_or_else(|| Error::PoolNotFound(name.to_string()))
    }

    /// Every block, in address order.
    pub fn blocks(&self) -> Result<Vec<Block>> {
        Ok(self.blocks_rev()?.into_iter().map(|(_, b, _)| b).collect())
    }

    /// The blocks affine to `node`, in address order.
    pub fn blocks_of(&self, node: &str) -> Result<Vec<Block>> {
        Ok(self
            .blocks()?
            .into_iter()
            .filter(|b| b.affinity.as_deref() == Some(node))
            .collect())
    }

    /// Every handle, by id.
    pub fn handles(&self) -> Result<Vec<Handle>> {
        Ok(list_json::<Handle>(self.store, keys::HANDLES)?
            .into_iter()
            .map(|(_, h, _)| h)
            .collect())
    }

    /// The handle `id`, if it holds addresses.
    pub fn handle(&self, id: &str) -> Result<Option<Handle>> {
        Ok(get_json::<Handle>(self.store, &keys::handle(id))?.map(|(h, _)| h))
    }

    /// Usage of every pool.
    pub fn usage(&self) -> Result<Vec<PoolUsage>> {
        let blocks = self.blocks()?;
        let handles = self.handles()?;
        let config = self.config()?;
        Ok(self
            .pools()?
            .into_iter()
            .map(|p| {
                let mine = blocks.iter().filter(|b| b.pool == p.name);
                PoolUsage {
                    size: p.size(),
                    in_use: mine.clone().map(|b| b.allocations.len() as u64).sum(),
                    borrowed: borrowed(mine.clone(), &handles),
                    strict_affinity: config.strict_for(&p),
                    blocks: mine.count() as u64,
                    blocks_total: 1u64
                        << u32::from(p.block_size.saturating_sub(p.cidr.prefix_len())),
                    pool: p.name,
                    cidr: p.cidr,
                    block_size: p.block_size,
                    disabled: p.disabled,
                }
            })
            .collect())
    }

    /// Blocks with their keys and mod revisions, in address order.
    fn blocks_rev(&self) -> Result<Vec<(String, Block, i64)>> {
        let mut blocks = list_json::<Block>(self.store, keys::BLOCKS)?;
        blocks.sort_by_key(|(_, b, _)| (b.cidr.network(), b.cidr.prefix_len()));
        Ok(blocks)
    }
}

/// Addresses of `blocks` held by a handle of a node other than the block's affinity.
fn borrowed<'b>(blocks: impl Iterator<Item = &'b Block>, handles: &[Handle]) -> u64 {
    let node_of: BTreeMap<&str, &str> = handles
        .iter()
        .map(|h| (h.id.as_str(), h.node.as_str()))
        .collect();
    let mut n = 0;
    for b in blocks {
        for h in b.allocations.values() {
            if let (Some(node), Some(aff)) = (node_of.get(h.as_str()), &b.affinity) {
                n += u64::from(node != aff);
            }
        }
    }
    n
}

/// Bounded retries with jitter for compare-and-swap loops.
struct Retry {
    what: String,
    start: Instant,
    attempt: u32,
}

impl Retry {
    /// Give up after this long of losing races...
    const GIVE_UP: Duration = Duration::from_secs(120);
    /// ...or after this many lost races.
    const MAX_ATTEMPTS: u32 = 300;

    fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            start: Instant::now(),
            attempt: 0,
        }
    }

    /// Waits before the next attempt, or fails when retrying has gone on too long.
    fn again(&mut self) -> Result<()> {
        self.attempt += 1;
        if self.attempt >= Self::MAX_ATTEMPTS || self.start.elapsed() > Self::GIVE_UP {
            return Err(Error::Contention {
                what: self.what.clone(),
                attempts: self.attempt,
            });
        }
        weft_store::retry::backoff(self.attempt.min(6));
        Ok(())
    }
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value)
        .map_err(|e| weft_store::Error::Codec(format!("encoding {key}: {e}")).into())
}

/// Checks a handle id: non-empty, printable, no `/` (it becomes part of a key).
fn validate_handle(handle: &str) -> Result<()> {
    let reason = if handle.is_empty() {
        "it is empty"
    } else if handle.contains('/') {
        "it contains '/'"
    } else if handle.chars().any(|c| c.is_control() || c.is_whitespace()) {
        "it contains whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidHandle {
        handle: handle.to_string(),
        reason: format!("{reason}; handles look like <network>.<container-id>"),
    })
}
