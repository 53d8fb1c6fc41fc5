//! Creating and deleting IP pools.

use weft_store::{get_json, Compare, Op};

use crate::{encode, keys, Error, IpPool, Ipam, Result, Retry};

/// Smallest and largest block prefix lengths accepted (Calico's range for IPv4).
const BLOCK_SIZES: std::ops::RangeInclusive<u8> = 20..=32;

fn invalid(pool: &IpPool, reason: String) -> Error {
    Error::InvalidPool {
        pool: pool.name.clone(),
        reason,
    }
}

fn validate(pool: &IpPool) -> Result<()> {
    let name = &pool.name;
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
        return Err(invalid(
            pool,
            "a pool name must be non-empty, without '/' or spaces".into(),
        ));
    }
    if pool.cidr.trunc() != pool.cidr {
        return Err(invalid(
            pool,
            format!(
                "{} has host bits set; write {}",
                pool.cidr,
                pool.cidr.trunc()
            ),
        ));
    }
    if !BLOCK_SIZES.contains(&pool.block_size) {
        return Err(invalid(
            pool,
            format!(
                "block size /{} is outside /{}../{}",
                pool.block_size,
                BLOCK_SIZES.start(),
                BLOCK_SIZES.end()
            ),
        ));
    }
    if pool.block_size < pool.cidr.prefix_len() {
        return Err(invalid(
            pool,
            format!(
                "block size /{} is larger than the pool {}; use a block size of at least /{}",
                pool.block_size,
                pool.cidr,
                pool.cidr.prefix_len()
            ),
        ));
    }
    Ok(())
}

impl Ipam<'_> {
    /// Creates `pool` if absent. An existing pool of that name with the same CIDR and block
    /// size is fine (its other settings are left alone); a different one is an error, and so
    /// is a CIDR that overlaps another pool.
    pub fn ensure_pool(&self, pool: &IpPool) -> Result<()> {
        validate(pool)?;
        let key = keys::pool(&pool.name);
        let mut retry = Retry::new(format!("creating IP pool {}", pool.name));
        loop {
            if let Some((existing, _)) = get_json::<IpPool>(self.store, &key)? {
                if existing.cidr == pool.cidr && existing.block_size == pool.block_size {
                    return Ok(());
                }
                return Err(Error::PoolExists {
                    pool: pool.name.clone(),
                    existing: format!(
                        "CIDR {} and block size /{}",
                        existing.cidr, existing.block_size
                    ),
                });
            }
            if let Some(other) = self
                .pools()?
                .into_iter()
                .find(|o| o.name != pool.name && overlaps(o.cidr, pool.cidr))
            {
                return Err(Error::PoolOverlap {
                    pool: pool.name.clone(),
                    cidr: pool.cidr,
                    other: other.name,
                    other_cidr: other.cidr,
                });
            }
            let resp = self.store.txn(
                &[Compare::ModRevision(key.clone(), 0)],
                &[Op::Put(key.clone(), encode(&key, pool)?)],
            )?;
            if resp.succeeded {
                return Ok(());
            }
            retry.again()?;
        }
    }

    /// Deletes the pool `name` and its (empty) blocks; fails if any of its blocks holds an
    /// address.
    pub fn delete_pool(&self, name: &str) -> Result<()> {
        let key = keys::pool(name);
        let mut retry = Retry::new(format!("deleting IP pool {name}"));
        loop {
            let Some((_, pool_rev)) = get_json::<IpPool>(self.store, &key)? else {
                return Err(Error::PoolNotFound(name.to_string()));
            };
            let blocks: Vec<_> = self
                .blocks_rev()?
                .into_iter()
                .filter(|(_, b, _)| b.pool == name)
                .collect();
            let in_use: u64 = blocks
                .iter()
                .map(|(_, b, _)| b.allocations.len() as u64)
                .sum();
            if in_use > 0 {
                return Err(Error::PoolInUse {
                    pool: name.to_string(),
                    in_use,
                });
            }
            let mut compares = vec![Compare::ModRevision(key.clone(), pool_rev)];
            let mut ops = vec![Op::Delete(key.clone())];
            for (bkey, _, rev) in blocks {
                compares.push(Compare::ModRevision(bkey.clone(), rev));
                ops.push(Op::Delete(bkey));
            }
            if self.store.txn(&compares, &ops)?.succeeded {
                return Ok(());
            }
            retry.again()?;
        }
    }
}

/// Whether two networks share an address.
pub(crate) fn overlaps(a: ipnet::Ipv4Net, b: ipnet::Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
