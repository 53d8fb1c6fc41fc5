//! One consistent read of the cluster's desired state.

use anyhow::{Context, Result};
use weft_ipam::{Block, IpPool};
use weft_model::policy::{NormalizedPolicy, Resource, Service};
use weft_model::{keys, ClusterConfig, Network, Node, Workload};
use weft_store::{Revision, Store};

/// Everything a node's plan depends on, read at one store revision.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub revision: Revision,
    pub nodes: Vec<Node>,
    pub networks: Vec<Network>,
    pub workloads: Vec<Workload>,
    pub blocks: Vec<Block>,
    pub pools: Vec<IpPool>,
    pub config: ClusterConfig,
    /// Every policy, normalized; records that do not decode are in `warnings`.
    pub policies: Vec<NormalizedPolicy>,
    pub services: Vec<Service>,
    /// Published ports of every node (`weft run -p`).
    pub ports: Vec<weft_model::PublishedPort>,
    pub warnings: Vec<String>,
}

impl ClusterState {
    /// Reads the whole of `/weft/` in one list, so every part is from the same revision.
    pub fn load(store: &dyn Store) -> Result<ClusterState> {
        let (kvs, revision) = store
            .list("/weft/")
            .context("read cluster state from the store")?;
        let mut st = ClusterState {
            revision,
            ..Default::default()
        };
        for kv in kvs {
            let k = kv.key.as_str();
            let parse = || format!("decode {k} from the store");
            if k.starts_with(keys::NODES) {
                st.nodes
                    .push(serde_json::from_slice(&kv.value).with_context(parse)?);
            } else if k.starts_with(keys::NETWORKS) {
                st.networks
                    .push(serde_json::from_slice(&kv.value).with_context(parse)?);
            } else if k.starts_with(keys::WORKLOADS) {
                st.workloads
                    .push(serde_json::from_slice(&kv.value).with_context(parse)?);
            } else if k.starts_with(keys::POLICIES) {
                let decoded = serde_json::from_slice::<Resource>(&kv.value)
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.to_policy().map_err(|e| e.to_string()));
                match decoded {
                    Ok(Some(p)) => st.policies.push(p),
                    Ok(None) => {}
                    Err(e) => st.warnings.push(format!("policy {k} ignored: {e}")),
                }
            } else if k.starts_with(keys::SERVICES) {
                match serde_json::from_slice::<Resource>(&kv.value) {
                    Ok(Resource::Service(svc)) => st.services.push(svc),
                    Ok(_) => st.warnings.push(format!("{k} is not a service")),
                    Err(e) => st.warnings.push(format!("service {k} ignored: {e}")),
                }
            } else if k.starts_with(keys::PORTS) {
                st.ports
                    .push(serde_json::from_slice(&kv.value).with_context(parse)?);
            } else if k.starts_with(weft_ipam::keys::POOLS) {
                st.pools
                    .push(serde_json::from_slice(&kv.value).with_context(parse)?);
            } else if k == keys::CONFIG {
                st.config = serde_json::from_slice(&kv.value).with_context(parse)?;
            } else if k.starts_with(weft_ipam::keys::BLOCKS) {
                st.blocks
                    .push(serde_json::from_slice(&kv.value).with_context(parse)?);
            }
        }
        Ok(st)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}
