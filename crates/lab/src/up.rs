//! `weft lab up`: build the namespaces, the switch, the links, the store and the agents.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use ipnet::Ipv4Net;
use weft_ipam::{IpPool, Ipam};
use weft_model::{keys, paths, ClusterConfig, Network, Node, Tunnel, DEFAULT_POOL};
use weft_netlink::{Handle, Netns, Route};

use crate::info::{save, LabInfo, LabNode};
use crate::members::{in_netns_command, EXT_ADDR, GW_ADDR, INTERNET_ADDR, UNDERLAY_PREFIX};
use crate::subnets;

/// What `lab up` builds.
#[derive(Clone, Debug)]
pub struct LabOptions {
    pub name: String,
    pub nodes: Vec<String>,
    pub config: ClusterConfig,
    /// Nodes on another underlay subnet than the primary 198.51.100.0/24 (node → subnet).
    pub subnets: BTreeMap<String, Ipv4Net>,
    /// The weft executable the agents run.
    pub weft_exe: std::path::PathBuf,
}

/// Where a lab keeps its store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LabStore {
    /// One SQLite file in the lab's directory, shared by the CLI and the agents.
    #[default]
    Sqlite,
    /// An etcd-server of its own on the lab's underlay (see [`crate::etcd`]).
    Etcd,
}

impl std::str::FromStr for LabStore {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sqlite" => Ok(LabStore::Sqlite),
            "etcd" => Ok(LabStore::Etcd),
            _ => bail!("--store {s}: choose sqlite or etcd"),
        }
    }
}

/// Builds the lab on SQLite; on any failure tears down what was made and returns the error.
pub fn up(o: &LabOptions, progress: &mut dyn FnMut(&str)) -> Result<LabInfo> {
    up_with_store(o, LabStore::Sqlite, progress)
}

/// Builds the lab with its store in `store`; on any failure tears down what was made.
pub fn up_with_store(
    o: &LabOptions,
    store: LabStore,
    progress: &mut dyn FnMut(&str),
) -> Result<LabInfo> {
    crate::validate_lab_name(&o.name)?;
    if store == LabStore::Etcd && o.nodes.iter().any(|n| n == crate::etcd::ETCD_MEMBER) {
        bail!("node name \"etcd\" is the lab's etcd member with --store etcd; choose another");
    }
    if o.nodes.is_empty() {
        bail!("a lab needs at least one node");
    }
    for (i, n) in o.nodes.iter().enumerate() {
        weft_model::validate_name("node", n)?;
        if weft_model::lab::FIXED_MEMBERS.contains(&n.as_str()) {
            bail!("node name {n:?} is reserved for the lab's own members; choose another");
        }
        if o.nodes[..i].contains(n) {
            bail!("node {n:?} is listed twice");
        }
    }
    let extra: Vec<Ipv4Net> = o.subnets.values().copied().collect();
    for (node, subnet) in &o.subnets {
        if !o.nodes.contains(node) {
            bail!("--subnet {node}={subnet}: {node} is not one of the lab's nodes (--nodes)");
        }
        if *subnet != subnets::primary() {
            subnets::validate(*subnet, &o.config, &extra)?;
        }
    }
    if o.config.encap.tunnel() == Tunnel::Ipip {
        // Before anything is made: a kernel without IPIP leaves nothing behind.
        weft_dataplane::ipip::kernel_support()
            .with_context(|| format!("lab up --encap {}", o.config.encap))?;
    }
    let dir = paths::lab_dir(&o.name);
    let prefix = paths::lab_netns_prefix(&o.name);
    let leftovers: Vec<String> = Netns::list_named()?
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    if dir.exists() || !leftovers.is_empty() {
        bail!(
            "lab {:?} already exists (or left pieces behind); use it, or remove it with `weft lab down --lab {}`",
            o.name, o.name
        );
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut info = LabInfo {
        name: o.name.clone(),
        nodes: vec![],
        config: o.config.clone(),
        created: weft_model::now(),
        status: "creating".into(),
        etcd: None,
        subnets: vec![],
    };
    save(&info)?;
    match build(o, store, &mut info, progress) {
        Ok(()) => {
            info.status = "up".into();
            save(&info)?;
            Ok(info)
        }
        Err(e) => {
            progress("lab up failed; removing what was made");
            if let Err(e2) = crate::down(&o.name, &mut |_| {}) {
                eprintln!("weft: cleanup of lab {} failed too: {e2:#}", o.name);
            }
            Err(e)
        }
    }
}

fn build(
    o: &LabOptions,
    store: LabStore,
    info: &mut LabInfo,
    progress: &mut dyn FnMut(&str),
) -> Result<()> {
    let lab = &o.name;
    progress("creating the fabric (switch)");
    let fabric_ns = Netns::create_named(&paths::lab_netns(lab, "fabric"))?;
    no_ipv6(&fabric_ns)?;
    let mut fabric = Handle::in_netns(&fabric_ns)?;
    let br = fabric.create_bridge(weft_model::lab::FABRIC_BRIDGE)?.index;
    fabric.set_up(br)?;

    let underlay = |a| Ipv4Net::new(a, UNDERLAY_PREFIX).expect("valid prefix");
    let location = match store {
        LabStore::Sqlite => paths::lab_store(lab).to_string_lossy().into_owned(),
        LabStore::Etcd => {
            progress(&format!("starting etcd ({})", crate::etcd::ETCD_ADDR));
            crate::etcd::create(&mut fabric, br, lab, info)?
        }
    };
    progress(&format!("creating the store of lab {lab} ({location})"));
    init_store(o, &location)?;
    progress(&format!(
        "creating the gateway gw ({GW_ADDR}, owning {INTERNET_ADDR})"
    ));
    let gw = plug(&mut fabric, br, lab, "gw", "gw", underlay(GW_ADDR), None)?;
    let mut h = Handle::in_netns(&gw)?;
    let lo = h.link_by_name("lo")?.context("lo missing")?.index;
    h.add_address(lo, Ipv4Net::new(INTERNET_ADDR, 32).expect("valid"))?;

    progress(&format!("creating the outside client ext ({EXT_ADDR})"));
    plug(
        &mut fabric,
        br,
        lab,
        "ext",
        "ext",
        underlay(EXT_ADDR),
        Some(GW_ADDR),
    )?;

    for (i, (name, addr)) in layout(o)?.into_iter().enumerate() {
        let subnet = addr.trunc();
        let segment = subnets::ensure_segment(&mut fabric, lab, info, subnet)?;
        progress(&format!("creating node {name} ({addr})"));
        let ns = plug(
            &mut fabric,
            segment,
            lab,
            &name,
            &format!("node{i}"),
            addr,
            Some(subnets::gateway(subnet)),
        )?;
        weft_netlink::sysctls_set(&ns, &[("net/ipv4/ip_forward", "1")])?;
        let node_dir = paths::node_dir(lab, &name);
        std::fs::create_dir_all(&node_dir)?;
        let pid = spawn_agent(o, &name, &ns)?;
        info.nodes.push(LabNode {
            name: name.clone(),
            address: addr.addr(),
            agent_pid: Some(pid),
            subnet: (subnet != subnets::primary()).then_some(subnet),
        });
        save(info)?;
    }
    Ok(())
}

/// Creates member `member`'s netns with `eth0` plugged into the switch as `port`.
pub(crate) fn plug(
    fabric: &mut Handle,
    br: u32,
    lab: &str,
    member: &str,
    port: &str,
    addr: Ipv4Net,
    gateway: Option<std::net::Ipv4Addr>,
) -> Result<Netns> {
    let ns = Netns::create_named(&paths::lab_netns(lab, member))?;
    no_ipv6(&ns)?;
    fabric.create_veth(port, "eth0", Some(&ns))?;
    let p = fabric
        .link_by_name(port)?
        .context("switch port vanished")?
        .index;
    fabric.set_master(p, Some(br))?;
    fabric.set_up(p)?;
    let mut h = Handle::in_netns(&ns)?;
    let eth0 = h.link_by_name("eth0")?.context("eth0 missing")?.index;
    h.add_address(eth0, addr)?;
    h.set_up(eth0)?;
    if let Some(gw) = gateway {
        h.add_route(
            &Route::new("0.0.0.0/0".parse().expect("constant"))
                .via(gw)
                .dev(eth0),
        )?;
    }
    Ok(ns)
}

/// The lab is IPv4 only: no IPv6 link-local chatter in its captures.
fn no_ipv6(ns: &Netns) -> Result<()> {
    weft_netlink::sysctls_set(
        ns,
        &[
            ("net/ipv6/conf/all/disable_ipv6", "1"),
            ("net/ipv6/conf/default/disable_ipv6", "1"),
        ],
    )?;
    Ok(())
}

fn init_store(o: &LabOptions, location: &str) -> Result<()> {
    let store = weft_store::open(location)?;
    let s = store.as_ref();
    weft_store::put_json(s, keys::CONFIG, &o.config)?;
    Ipam::new(s).ensure_pool(&IpPool {
        name: DEFAULT_POOL.into(),
        cidr: o.config.pool,
        block_size: o.config.block_size,
        disabled: false,
        strict_affinity: None,
        vxlan_mode: None,
    })?;
    weft_store::put_json(
        s,
        &keys::network("default"),
        &Network {
            name: "default".into(),
            driver: Default::default(),
            pool: DEFAULT_POOL.into(),
            subnet: None,
            isolation: Default::default(),
            nat_outgoing: true,
            created: weft_model::now(),
            bridge: None,
            internal: false,
            deny_action: None,
        },
    )?;
    for (name, addr) in layout(o)? {
        weft_store::put_json(s, &keys::node(&name), &Node::on_subnet(&name, addr))?;
    }
    Ok(())
}

/// Each node's underlay address with its subnet's prefix: .11, .12, … in node order on each
/// subnet.
fn layout(o: &LabOptions) -> Result<Vec<(String, Ipv4Net)>> {
    let mut count: BTreeMap<Ipv4Net, usize> = BTreeMap::new();
    o.nodes
        .iter()
        .map(|name| {
            let subnet = o
                .subnets
                .get(name)
                .copied()
                .unwrap_or_else(subnets::primary);
            let i = count.entry(subnet).or_default();
            let addr = subnets::node_addr_in(subnet, *i)?;
            *i += 1;
            Ok((name.clone(), Ipv4Net::new(addr, subnet.prefix_len())?))
        })
        .collect()
}

/// Starts `weft agent` for `node` inside its namespace, detached from this process.
pub(crate) fn spawn_agent(o: &LabOptions, node: &str, ns: &Netns) -> Result<i32> {
    let log_path = paths::node_dir(&o.name, node).join("agent.log");
    let log = File::create(&log_path).with_context(|| format!("create {}", log_path.display()))?;
    let exe = o.weft_exe.to_string_lossy().into_owned();
    let mut cmd = in_netns_command(ns, node, &exe);
    cmd.args(["--lab", &o.name, "--node", node, "agent"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    if let Some(url) = crate::etcd::agent_store_url(&o.name) {
        // Like an agent on another host: etcd over the underlay, and of the lab's files only
        // its own node's directory.
        cmd.env(paths::STORE_ENV, url);
        crate::isolate::only_own_node_dir(
            &mut cmd,
            &paths::lab_dir(&o.name),
            &paths::node_dir(&o.name, node),
        )?;
    }
    let child = cmd
        .spawn()
        .with_context(|| format!("start the agent of node {node}"))?;
    Ok(child.id() as i32)
}
