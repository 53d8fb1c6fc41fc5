//! `weft lab node rm NAME`: a node leaves the lab for good — its agent and containers stopped,
//! its namespace gone, and the cluster forgets it (see [`forget_node`]), so that every other
//! node's agent removes the routes to its blocks (and, in VXLAN mode, its tunnel peer).

use anyhow::{bail, Context, Result};
use weft_ipam::Ipam;
use weft_model::{keys, paths, Workload};
use weft_netlink::Netns;
use weft_store::{list_json, Op, Store};

use crate::info::save;

/// Removes node `name` from the running lab `lab`, whose store is `store`. Refuses while the node
/// has containers unless `force` (then they are removed with it).
pub fn node_rm(
    lab: &str,
    name: &str,
    store: &dyn Store,
    force: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let mut info = crate::load(lab)?.with_context(|| {
        format!("lab {lab:?} is not up; start it with `weft lab up --lab {lab}`")
    })?;
    let Some(node) = info.nodes.iter().find(|n| n.name == name).cloned() else {
        let names: Vec<_> = info.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "lab {lab:?} has no node {name:?} (nodes: {})",
            names.join(", ")
        );
    };
    let root = paths::runtime_root(lab, name);
    let containers = weft_runtime::list(&root).unwrap_or_default();
    let workloads = workloads_of(store, name)?;
    if !force && (!containers.is_empty() || !workloads.is_empty()) {
        let names: Vec<String> = if workloads.is_empty() {
            containers
                .iter()
                .map(|c| c.id.chars().take(12).collect())
                .collect()
        } else {
            workloads.iter().map(|w| w.name.clone()).collect()
        };
        bail!(
            "node {name} still has {} container(s) ({}); remove them first, or remove the node \
             with them: `weft lab node rm {name} --force`",
            names.len(),
            names.join(", ")
        );
    }

    if let Some(pid) = node.agent_pid {
        if crate::down::is_our_agent(pid, lab) {
            progress(&format!("stopping the agent of {name}"));
            crate::down::stop_pid(pid);
        }
    }
    for st in containers {
        progress(&format!("removing container {} of node {name}", st.id));
        if let Err(e) = weft_runtime::delete(&root, &st.id, true) {
            eprintln!("weft: remove container {} of node {name}: {e:#}", st.id);
        }
    }
    let ns = paths::lab_netns(lab, name);
    crate::down::kill_processes_in(std::slice::from_ref(&ns), progress);
    if Netns::list_named()?.contains(&ns) {
        progress(&format!("deleting network namespace {ns}"));
        Netns::delete_named(&ns).with_context(|| format!("delete netns {ns}"))?;
    }
    progress(&format!("removing node {name} from the store"));
    forget_node(store, name)?;
    let dir = paths::node_dir(lab, name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    info.nodes.retain(|n| n.name != name);
    save(&info)?;
    Ok(())
}

/// Removes node `name` from the cluster's store: its workloads' records and addresses, its
/// tunnel address, its published ports, its agent's status, its empty blocks, and its record.
/// Blocks still holding another node's addresses (borrowed) stay until those are released.
pub fn forget_node(store: &dyn Store, name: &str) -> Result<()> {
    let ipam = Ipam::new(store);
    for w in workloads_of(store, name)? {
        ipam.release(&w.ipam_handle())
            .with_context(|| format!("release the address of workload {}", w.name))?;
        weft_store::delete(store, &keys::workload(&w.name))?;
    }
    for handle in weft_model::node_handles(name) {
        ipam.release(&handle)
            .with_context(|| format!("release the node's tunnel address ({handle})"))?;
    }
    ipam.release_block_affinity(name)
        .with_context(|| format!("release the blocks of node {name}"))?;
    store.txn(
        &[],
        &[
            Op::DeletePrefix(format!("{}{name}/", keys::PORTS)),
            Op::Delete(keys::agent_status(name)),
            Op::Delete(keys::node(name)),
        ],
    )?;
    Ok(())
}

fn workloads_of(store: &dyn Store, node: &str) -> Result<Vec<Workload>> {
    Ok(list_json::<Workload>(store, keys::WORKLOADS)?
        .into_iter()
        .map(|(_, w, _)| w)
        .filter(|w| w.node == node)
        .collect())
}
