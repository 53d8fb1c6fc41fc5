//! `weft network create|ls|inspect|rm`.

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use weft_ipam::{IpPool, Ipam};
use weft_model::{
    keys, validate_name, DenyAction, Driver, Isolation, Network, VxlanMode, Workload, DEFAULT_POOL,
};
use weft_store::Store;

use crate::Cluster;

/// What `network create` asks for.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    pub name: String,
    pub driver: Driver,
    pub subnet: Option<Ipv4Net>,
    pub isolation: Isolation,
    pub nat_outgoing: bool,
    /// Bridge driver: the bridge's name on each node (default `wbr-` + a hash).
    pub bridge: Option<String>,
    /// Bridge driver: nothing in or out beyond the network (no masquerade, no published ports).
    pub internal: bool,
    /// Drop or reject traffic isolation stops (the cluster's deny action when None).
    pub deny_action: Option<DenyAction>,
    /// The VXLAN mode of the network's own pool (`--subnet`); the cluster's default when None.
    pub vxlan_mode: Option<VxlanMode>,
}

pub(crate) fn pool_name_of(network: &str) -> String {
    format!("net-{network}")
}

/// Creates a network; with `--subnet` it gets a pool of its own, otherwise it shares the default.
pub fn create_network(c: &Cluster, o: &NetworkOptions) -> Result<Network> {
    validate_name("network", &o.name)?;
    let store: &dyn Store = c.store.as_ref();
    if store.get(&keys::network(&o.name))?.is_some() {
        bail!("network {:?} already exists; remove it with `weft network rm {}` or choose another name", o.name, o.name);
    }
    if o.vxlan_mode.is_some() && (o.driver == Driver::Bridge || o.subnet.is_none()) {
        bail!(
            "network {}: --vxlan-mode sets the mode of the network's own pool: give it --subnet \
             (routed driver), or set the shared pool's mode with `weft ipam configure --pool {DEFAULT_POOL} --vxlan-mode MODE`",
            o.name
        );
    }
    if o.driver == Driver::Bridge {
        return crate::bridge_net::create(c, o);
    }
    if o.bridge.is_some() || o.internal {
        bail!(
            "network {}: --bridge and --internal are options of the bridge driver; add --driver bridge",
            o.name
        );
    }
    let ipam = Ipam::new(store);
    let pool = match o.subnet {
        None => DEFAULT_POOL.to_string(),
        Some(subnet) => {
            let cfg = c.config()?;
            let block_size = cfg.block_size.max(subnet.prefix_len());
            let pool = IpPool {
                name: pool_name_of(&o.name),
                cidr: subnet,
                block_size,
                disabled: false,
                strict_affinity: None,
                vxlan_mode: o.vxlan_mode,
            };
            ipam.ensure_pool(&pool)
                .with_context(|| format!("network {}: subnet {subnet}", o.name))?;
            pool.name
        }
    };
    let net = Network {
        name: o.name.clone(),
        driver: o.driver,
        pool,
        subnet: o.subnet,
        isolation: o.isolation,
        nat_outgoing: o.nat_outgoing,
        created: weft_model::now(),
        bridge: None,
        internal: false,
        deny_action: o.deny_action,
    };
    if let Err(e) = weft_store::create_json(store, &keys::network(&o.name), &net) {
        if o.subnet.is_some() {
            let _ = ipam.delete_pool(&net.pool);
        }
        return Err(e).with_context(|| format!("create network {}", o.name));
    }
    Ok(net)
}

pub fn list_networks(c: &Cluster) -> Result<Vec<Network>> {
    Ok(
        weft_store::list_json::<Network>(c.store.as_ref(), keys::NETWORKS)?
            .into_iter()
            .map(|(_, n, _)| n)
            .collect(),
    )
}

pub fn inspect_network(c: &Cluster, name: &str) -> Result<Network> {
    weft_store::get_json::<Network>(c.store.as_ref(), &keys::network(name))?
        .map(|(n, _)| n)
        .with_context(|| format!("network {name:?} not found; see `weft network ls`"))
}

/// Removes a network; refuses while containers use it.
pub fn remove_network(c: &Cluster, name: &str) -> Result<()> {
    let net = inspect_network(c, name)?;
    let users: Vec<String> = weft_store::list_json::<Workload>(c.store.as_ref(), keys::WORKLOADS)?
        .into_iter()
        .filter(|(_, w, _)| w.network == name)
        .map(|(_, w, _)| w.name)
        .collect();
    if !users.is_empty() {
        bail!(
            "network {name:?} is in use by {}; remove them first (weft rm -f ...)",
            users.join(", ")
        );
    }
    if net.driver == Driver::Bridge {
        return crate::bridge_net::remove(c, &net);
    }
    weft_store::delete(c.store.as_ref(), &keys::network(name))?;
    if net.subnet.is_some() {
        Ipam::new(c.store.as_ref())
            .delete_pool(&net.pool)
            .with_context(|| format!("remove pool {} of network {name}", net.pool))?;
    }
    Ok(())
}
