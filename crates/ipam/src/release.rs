//! Giving addresses back: by handle, and empty blocks of a node.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use weft_store::{get_json, Compare, Op};

use crate::{encode, keys, Block, Handle, Ipam, Result, Retry};

/// Removes every allocation of `handle` from `block`; returns the freed addresses.
pub(crate) fn free_handle(block: &mut Block, handle: &str) -> Vec<Ipv4Addr> {
    let ordinals: Vec<u32> = block
        .allocations
        .iter()
        .filter(|(_, h)| h.as_str() == handle)
        .map(|(o, _)| *o)
        .collect();
    for o in &ordinals {
        block.allocations.remove(o);
    }
    if !ordinals.is_empty() {
        block.sequence += 1;
    }
    ordinals.into_iter().map(|o| block.addr(o)).collect()
}

impl Ipam<'_> {
    /// Frees every address of `handle` (in all blocks) and deletes the handle, in one
    /// transaction. Returns the freed addresses (empty if the handle held none).
    pub fn release(&self, handle: &str) -> Result<Vec<Ipv4Addr>> {
        let hkey = keys::handle(handle);
        let mut retry = Retry::new(format!("releasing {handle}"));
        loop {
            let Some((record, hrev)) = get_json::<Handle>(self.store, &hkey)? else {
                return Ok(Vec::new());
            };
            let mut compares = vec![Compare::ModRevision(hkey.clone(), hrev)];
            let mut ops = vec![Op::Delete(hkey.clone())];
            let mut freed: BTreeSet<Ipv4Addr> = record.addresses.iter().copied().collect();
            for (key, mut block, rev) in self.blocks_rev()? {
                let addrs = free_handle(&mut block, handle);
                if addrs.is_empty() {
                    continue;
                }
                freed.extend(addrs);
                compares.push(Compare::ModRevision(key.clone(), rev));
                ops.push(Op::Put(key.clone(), encode(&key, &block)?));
            }
            if self.store.txn(&compares, &ops)?.succeeded {
                return Ok(freed.into_iter().collect());
            }
            retry.again()?;
        }
    }

    /// Deletes the blocks affine to `node` that hold no address (when a node leaves, or to
    /// give its empty blocks back to the pool). Blocks still in use stay.
    pub fn release_block_affinity(&self, node: &str) -> Result<()> {
        let mut retry = Retry::new(format!("releasing the empty blocks of node {node}"));
        loop {
            let empty: Vec<(String, i64)> = self
                .blocks_rev()?
                .into_iter()
                .filter(|(_, b, _)| b.affinity.as_deref() == Some(node) && b.allocations.is_empty())
                .map(|(k, _, rev)| (k, rev))
                .collect();
            let mut lost = false;
            for (key, rev) in empty {
                let resp = self.store.txn(
                    &[Compare::ModRevision(key.clone(), rev)],
                    &[Op::Delete(key)],
                )?;
                lost |= !resp.succeeded;
            }
            if !lost {
                return Ok(());
            }
            retry.again()?;
        }
    }
}
