//! `weft lab node add NAME`: a node joins a running lab, as a new host would join a cluster —
//! its namespace plugged into the switch, its record in the store, its agent started. The other
//! nodes' agents see the record (and later its blocks) through their watches.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use weft_model::{keys, paths, Node};
use weft_netlink::{Handle, Netns};
use weft_store::Store;

use crate::info::{save, LabNode};
use crate::subnets;
use crate::up::{plug, spawn_agent, LabOptions};

/// Where a node's agent supervisor writes the pid of its running worker.
pub fn agent_pid_file(lab: &str, node: &str) -> PathBuf {
    paths::node_dir(lab, node).join("agent.pid")
}

/// The pid of the agent worker running for `node` now (the process that programs the node; its
/// supervisor's pid is in the lab's record), if there is one.
pub fn agent_worker_pid(lab: &str, node: &str) -> Option<i32> {
    let text = std::fs::read_to_string(agent_pid_file(lab, node)).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}

/// Adds node `name` to the running lab `lab`, whose store is `store`, on underlay `subnet` (the
/// primary 198.51.100.0/24 when None; another one gets its own switch, routed by the gateway);
/// `weft_exe` runs its agent. On failure nothing of the node is left.
pub fn node_add(
    lab: &str,
    name: &str,
    subnet: Option<Ipv4Net>,
    store: &dyn Store,
    weft_exe: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<LabNode> {
    crate::validate_lab_name(lab)?;
    weft_model::validate_name("node", name)?;
    if weft_model::lab::FIXED_MEMBERS.contains(&name) {
        bail!("node name {name:?} is reserved for the lab's own members; choose another");
    }
    let mut info = crate::load(lab)?.with_context(|| {
        format!("lab {lab:?} is not up; start it with `weft lab up --lab {lab}`")
    })?;
    if info.nodes.iter().any(|n| n.name == name) || store.get(&keys::node(name))?.is_some() {
        bail!("lab {lab:?} already has a node {name:?}");
    }
    let subnet = subnet.unwrap_or_else(subnets::primary);
    if subnet != subnets::primary() {
        subnets::validate(subnet, &info.config, &info.subnets)?;
    }
    // The first address of the subnet no node holds.
    let i = (0..)
        .find(|i| {
            subnets::node_addr_in(subnet, *i)
                .map_or(true, |a| info.nodes.iter().all(|n| n.address != a))
        })
        .expect("an index is always found");
    let addr = subnets::node_addr_in(subnet, i)?;
    progress(&format!(
        "creating node {name} ({addr}/{})",
        subnet.prefix_len()
    ));

    let fabric_ns = Netns::named(&paths::lab_netns(lab, "fabric"))
        .with_context(|| format!("the switch of lab {lab} is missing; rebuild the lab"))?;
    let mut fabric = Handle::in_netns(&fabric_ns)?;
    let known_subnets = info.subnets.len();
    let node_dir = paths::node_dir(lab, name);
    let built = (|| -> Result<i32> {
        let underlay = Ipv4Net::new(addr, subnet.prefix_len())?;
        let br = subnets::ensure_segment(&mut fabric, lab, &mut info, subnet)?;
        if info.subnets.len() != known_subnets {
            save(&info)?;
        }
        let port = subnets::free_port(&mut fabric)?;
        let ns = plug(
            &mut fabric,
            br,
            lab,
            name,
            &port,
            underlay,
            Some(subnets::gateway(subnet)),
        )?;
        weft_netlink::sysctls_set(&ns, &[("net/ipv4/ip_forward", "1")])?;
        std::fs::create_dir_all(&node_dir)
            .with_context(|| format!("create {}", node_dir.display()))?;
        weft_store::create_json(store, &keys::node(name), &Node::on_subnet(name, underlay))
            .with_context(|| format!("record node {name} in the store"))?;
        let o = LabOptions {
            name: lab.to_string(),
            nodes: info.nodes.iter().map(|n| n.name.clone()).collect(),
            config: info.config.clone(),
            subnets: Default::default(),
            weft_exe: weft_exe.to_path_buf(),
        };
        spawn_agent(&o, name, &ns)
    })();
    let pid = match built {
        Ok(pid) => pid,
        Err(e) => {
            progress(&format!(
                "node {name} could not join; removing what was made"
            ));
            let _ = weft_store::delete(store, &keys::node(name));
            crate::down::kill_processes_in(&[paths::lab_netns(lab, name)], &mut |_| {});
            let _ = Netns::delete_named(&paths::lab_netns(lab, name));
            let _ = std::fs::remove_dir_all(&node_dir);
            return Err(e);
        }
    };
    let node = LabNode {
        name: name.to_string(),
        address: addr,
        agent_pid: Some(pid),
        subnet: (subnet != subnets::primary()).then_some(subnet),
    };
    info.nodes.push(node.clone());
    save(&info)?;
    Ok(node)
}
