//! Finding the cluster (a lab's store) and the node a command acts as.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use weft_model::{keys, paths, ClusterConfig, Node};
use weft_netlink::Netns;
use weft_store::Store;

/// Fails with a clear message unless running as root.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        bail!("weft needs root: it creates namespaces, links, mounts and cgroups; run it with sudo")
    }
}

/// An open cluster: its store and where its nodes keep their state.
pub struct Cluster {
    pub lab: String,
    pub store: Box<dyn Store>,
}

/// A node of the cluster as seen from this machine.
#[derive(Clone, Debug)]
pub struct NodeRef {
    pub node: Node,
    pub netns_name: String,
    pub runtime_root: PathBuf,
    pub bundles: PathBuf,
}

impl NodeRef {
    pub fn netns(&self) -> Result<Netns> {
        Netns::named(&self.netns_name).with_context(|| {
            format!(
                "network namespace {} of node {} is missing; is the lab up? (weft lab ls)",
                self.netns_name, self.node.name
            )
        })
    }
}

impl Cluster {
    /// Opens the store of lab `lab`; the lab must be up.
    pub fn open_lab(lab: &str) -> Result<Cluster> {
        let Some(location) = paths::lab_store_location(lab) else {
            bail!("lab {lab:?} is not up (no store at {}); start it with `weft lab up --lab {lab}` or pick one from `weft lab ls`", paths::lab_store(lab).display());
        };
        let store = weft_store::open(&location)
            .with_context(|| format!("open the store of lab {lab} ({location})"))?;
        Ok(Cluster {
            lab: lab.to_string(),
            store,
        })
    }

    pub fn config(&self) -> Result<ClusterConfig> {
        Ok(weft_store::get_json(self.store.as_ref(), keys::CONFIG)?
            .map(|(c, _)| c)
            .unwrap_or_default())
    }

    pub fn nodes(&self) -> Result<Vec<Node>> {
        let mut nodes: Vec<Node> = weft_store::list_json(self.store.as_ref(), keys::NODES)?
            .into_iter()
            .map(|(_, n, _)| n)
            .collect();
        nodes.sort_by_key(|n| n.address);
        Ok(nodes)
    }

    /// The node a command acts as: `name`, or the lab's first node.
    pub fn node(&self, name: Option<&str>) -> Result<NodeRef> {
        let nodes = self.nodes()?;
        let node = match name {
            Some(n) => nodes
                .iter()
                .find(|x| x.name == n)
                .cloned()
                .with_context(|| {
                    let names: Vec<_> = nodes.iter().map(|n| n.name.as_str()).collect();
                    format!(
                        "node {n:?} not found in lab {:?} (nodes: {})",
                        self.lab,
                        names.join(", ")
                    )
                })?,
            None => nodes
                .first()
                .cloned()
                .with_context(|| format!("lab {:?} has no nodes", self.lab))?,
        };
        Ok(self.node_ref(node))
    }

    /// IPAM handles that must keep their addresses: every workload's and every node's tunnel
    /// address (for `ipam check` and `ipam gc`).
    pub fn live_handles(&self) -> Result<std::collections::HashSet<String>> {
        let mut live: std::collections::HashSet<String> =
            weft_store::list_json::<weft_model::Workload>(self.store.as_ref(), keys::WORKLOADS)?
                .into_iter()
                .map(|(_, w, _)| w.ipam_handle())
                .collect();
        let nodes = self.nodes()?;
        live.extend(nodes.iter().flat_map(|n| weft_model::node_handles(&n.name)));
        // Each node's subnet of a bridge network (gateway, network and broadcast addresses).
        for (_, net, _) in
            weft_store::list_json::<weft_model::Network>(self.store.as_ref(), keys::NETWORKS)?
        {
            if net.driver == weft_model::Driver::Bridge {
                live.extend(
                    nodes
                        .iter()
                        .map(|n| weft_model::bridge_handle(&net.name, &n.name)),
                );
            }
        }
        Ok(live)
    }

    pub fn node_ref(&self, node: Node) -> NodeRef {
        NodeRef {
            netns_name: paths::lab_netns(&self.lab, &node.name),
            runtime_root: paths::runtime_root(&self.lab, &node.name),
            bundles: paths::bundles_dir(&self.lab, &node.name),
            node,
        }
    }
}
