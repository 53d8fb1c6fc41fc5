//! Strict affinity, cluster-wide and per pool, and a pool's VXLAN mode (`weft ipam configure`).

use serde::{Deserialize, Serialize};
use weft_store::{get_json, Compare, Op};

use crate::{encode, keys, Error, IpPool, Ipam, Result, Retry};

/// IPAM settings of the whole cluster, stored at [`keys::CONFIG`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    /// Never hand out an address from a block affine to another node (Calico's
    /// `StrictAffinity`): when a node's blocks are full and no free block is left, allocation
    /// fails instead of borrowing. A pool's own setting ([`IpPool::strict_affinity`]) wins.
    #[serde(default)]
    pub strict_affinity: bool,
}

impl IpamConfig {
    /// Whether `pool` allocates with strict affinity.
    pub fn strict_for(&self, pool: &IpPool) -> bool {
        pool.strict_affinity.unwrap_or(self.strict_affinity)
    }
}

impl Ipam<'_> {
    /// The cluster-wide settings (defaults when never configured).
    pub fn config(&self) -> Result<IpamConfig> {
        Ok(get_json::<IpamConfig>(self.store, keys::CONFIG)?
            .map(|(c, _)| c)
            .unwrap_or_default())
    }

    /// Sets (`Some`) or clears (`None`: follow the cluster's default) the VXLAN mode of pool
    /// `name`; the agents re-plan their routes from the change.
    pub fn set_vxlan_mode(&self, name: &str, mode: Option<weft_model::VxlanMode>) -> Result<()> {
        let key = keys::pool(name);
        let mut retry = Retry::new(format!("setting the VXLAN mode of IP pool {name}"));
        loop {
            let Some((mut p, rev)) = get_json::<IpPool>(self.store, &key)? else {
                return Err(Error::PoolNotFound(name.to_string()));
            };
            p.vxlan_mode = mode;
            let resp = self.store.txn(
                &[Compare::ModRevision(key.clone(), rev)],
                &[Op::Put(key.clone(), encode(&key, &p)?)],
            )?;
            if resp.succeeded {
                return Ok(());
            }
            retry.again()?;
        }
    }

    /// Sets strict affinity cluster-wide (`pool` None), or for one IP pool, where it overrides
    /// the cluster-wide setting.
    pub fn set_strict_affinity(&self, pool: Option<&str>, strict: bool) -> Result<()> {
        let key = match pool {
            Some(name) => keys::pool(name),
            None => keys::CONFIG.to_string(),
        };
        let mut retry = Retry::new("configuring strict affinity");
        loop {
            let (value, rev) = match pool {
                Some(name) => {
                    let Some((mut p, rev)) = get_json::<IpPool>(self.store, &key)? else {
                        return Err(Error::PoolNotFound(name.to_string()));
                    };
                    p.strict_affinity = Some(strict);
                    (encode(&key, &p)?, rev)
                }
                None => {
                    let (mut c, rev) = get_json::<IpamConfig>(self.store, &key)?
                        .unwrap_or_else(|| (IpamConfig::default(), 0));
                    c.strict_affinity = strict;
                    (encode(&key, &c)?, rev)
                }
            };
            let resp = self.store.txn(
                &[Compare::ModRevision(key.clone(), rev)],
                &[Op::Put(key.clone(), value)],
            )?;
            if resp.succeeded {
                return Ok(());
            }
            retry.again()?;
        }
    }
}
