//! Handing out addresses.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_store::{get_json, Compare, Op};

use crate::pools::overlaps;
use crate::{encode, keys, validate_handle, Block, Error, Handle, IpPool, Ipam, Result, Retry};

/// A block write that holds one new address.
struct Plan {
    key: String,
    block: Block,
    /// Mod revision the block was read at (0: the block is being claimed).
    rev: i64,
    addr: Ipv4Addr,
}

/// The lowest ordinal of `block` that is free, never the pool's own network address.
fn first_free(block: &Block, pool: &IpPool) -> Option<u32> {
    let reserved = (block.cidr.network() == pool.cidr.network()).then_some(0u32);
    (0..block.size())
        .map(|o| o as u32)
        .find(|o| Some(*o) != reserved && !block.allocations.contains_key(o))
}

impl Ipam<'_> {
    /// Allocates an address of `pool` to `handle` on `node`: from a block affine to the node
    /// (lowest free address first), claiming the pool's next free block when the node's blocks
    /// are full, and, when no free block is left, borrowing an address from another node's
    /// block (unless strict affinity is on). With `requested`, allocates exactly that address.
    /// The block and the handle are written in one transaction that compares both records'
    /// revisions, so an address is never given twice; a lost race is retried (bounded).
    pub fn allocate(
        &self,
        handle: &str,
        node: &str,
        pool: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr> {
        validate_handle(handle)?;
        if node.is_empty() {
            return Err(Error::InvalidHandle {
                handle: handle.to_string(),
                reason: "no node given to allocate on".into(),
            });
        }
        let pool = self.pool(pool)?;
        if pool.disabled && requested.is_none() {
            return Err(Error::PoolDisabled(pool.name));
        }
        let strict = self.config()?.strict_for(&pool);
        let hkey = keys::handle(handle);
        let mut retry = Retry::new(format!("allocating an address for {handle} on {node}"));
        loop {
            let existing = get_json::<Handle>(self.store, &hkey)?;
            if let Some((h, _)) = &existing {
                if h.node != node {
                    return Err(Error::HandleOnOtherNode {
                        handle: handle.to_string(),
                        owner: h.node.clone(),
                        node: node.to_string(),
                    });
                }
                if let Some(ip) = requested.filter(|ip| h.addresses.contains(ip)) {
                    return Ok(ip); // already ours: a retried request
                }
            }
            let plan = match requested {
                Some(ip) => self.plan_requested(&pool, node, handle, ip)?,
                None => self.plan_auto(&pool, node, handle, strict)?,
            };
            let (mut record, hrev) = existing.unwrap_or_else(|| (Handle::new(handle, node), 0));
            record.addresses.push(plan.addr);
            let compares = [
                Compare::ModRevision(plan.key.clone(), plan.rev),
                Compare::ModRevision(hkey.clone(), hrev),
            ];
            let ops = [
                Op::Put(plan.key.clone(), encode(&plan.key, &plan.block)?),
                Op::Put(hkey.clone(), encode(&hkey, &record)?),
            ];
            if self.store.txn(&compares, &ops)?.succeeded {
                return Ok(plan.addr);
            }
            retry.again()?;
        }
    }

    fn plan_auto(&self, pool: &IpPool, node: &str, handle: &str, strict: bool) -> Result<Plan> {
        let blocks = self.blocks_rev()?;
        let pools_blocks = || blocks.iter().filter(|(_, b, _)| b.pool == pool.name);
        for (key, block, rev) in pools_blocks() {
            if block.affinity.as_deref() != Some(node) {
                continue;
            }
            if let Some(ordinal) = first_free(block, pool) {
                return Ok(take(key.clone(), block.clone(), *rev, ordinal, handle));
            }
        }
        // The node's blocks are full: claim the lowest block of the pool nobody holds.
        let free = pool
            .cidr
            .subnets(pool.block_size)
            .map_err(|e| Error::InvalidPool {
                pool: pool.name.clone(),
                reason: format!("cannot cut {} into /{}: {e}", pool.cidr, pool.block_size),
            })?
            .find(|cidr| !blocks.iter().any(|(_, b, _)| overlaps(b.cidr, *cidr)));
        if let Some(cidr) = free {
            let block = Block::claimed(cidr, &pool.name, node);
            if let Some(ordinal) = first_free(&block, pool) {
                return Ok(take(keys::block(cidr), block, 0, ordinal, handle));
            }
        }
        // No free block either: borrow from the block of another node with the most room
        // (Calico does the same), unless strict affinity forbids it.
        let room = |b: &Block| b.size() - b.allocations.len() as u64;
        let lender = pools_blocks()
            .filter(|(_, b, _)| first_free(b, pool).is_some())
            .max_by_key(|(_, b, _)| (room(b), std::cmp::Reverse(b.cidr.network())));
        match lender {
            Some((key, block, rev)) if !strict => {
                let ordinal = first_free(block, pool).expect("filtered on a free ordinal");
                Ok(take(key.clone(), block.clone(), *rev, ordinal, handle))
            }
            Some(_) => Err(Error::StrictAffinity {
                pool: pool.name.clone(),
                cidr: pool.cidr,
                node: node.to_string(),
                free_elsewhere: pools_blocks()
                    .map(|(_, b, _)| {
                        room(b).saturating_sub(u64::from(b.cidr.network() == pool.cidr.network()))
                    })
                    .sum(),
            }),
            None => Err(Error::PoolExhausted {
                pool: pool.name.clone(),
                cidr: pool.cidr,
                node: node.to_string(),
            }),
        }
    }

    fn plan_requested(
        &self,
        pool: &IpPool,
        node: &str,
        handle: &str,
        ip: Ipv4Addr,
    ) -> Result<Plan> {
        if !pool.cidr.contains(&ip) {
            return Err(Error::AddressOutsidePool {
                addr: ip,
                pool: pool.name.clone(),
                cidr: pool.cidr,
            });
        }
        if ip == pool.cidr.network() {
            return Err(Error::AddressReserved {
                addr: ip,
                pool: pool.name.clone(),
            });
        }
        let blocks = self.blocks_rev()?;
        if let Some((key, block, rev)) = blocks.iter().find(|(_, b, _)| b.cidr.contains(&ip)) {
            let owner = match (&block.affinity, block.pool == pool.name) {
                (_, false) => Some(format!("belongs to IP pool {}", block.pool)),
                (Some(n), true) if n != node => Some(format!("is affine to node {n}")),
                _ => None,
            };
            if let Some(owner) = owner {
                return Err(Error::AddressNotHere {
                    addr: ip,
                    block: block.cidr,
                    owner,
                });
            }
            let ordinal = block.ordinal(ip).unwrap_or_default();
            if let Some(holder) = block.allocations.get(&ordinal) {
                return Err(Error::AddressInUse {
                    addr: ip,
                    handle: holder.clone(),
                });
            }
            return Ok(take(key.clone(), block.clone(), *rev, ordinal, handle));
        }
        let cidr = Ipv4Net::new(ip, pool.block_size)
            .map_err(|e| Error::InvalidPool {
                pool: pool.name.clone(),
                reason: format!("block size /{}: {e}", pool.block_size),
            })?
            .trunc();
        if let Some((_, other, _)) = blocks.iter().find(|(_, b, _)| overlaps(b.cidr, cidr)) {
            return Err(Error::AddressNotHere {
                addr: ip,
                block: other.cidr,
                owner: "overlaps the block the address would need".into(),
            });
        }
        let block = Block::claimed(cidr, &pool.name, node);
        let ordinal = block.ordinal(ip).unwrap_or_default();
        Ok(take(keys::block(cidr), block, 0, ordinal, handle))
    }
}

/// Records `handle` at `ordinal` of `block` and makes the plan that writes it.
fn take(key: String, mut block: Block, rev: i64, ordinal: u32, handle: &str) -> Plan {
    block.allocations.insert(ordinal, handle.to_string());
    block.sequence += 1;
    Plan {
        key,
        addr: block.addr(ordinal),
        block,
        rev,
    }
}
