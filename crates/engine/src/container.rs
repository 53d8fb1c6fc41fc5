//! A container's life: run (image → bundle → create → attach → start), stop, kill, rm, ps,
//! inspect, logs, exec.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use weft_dataplane::endpoint::{self, Endpoint};
use weft_image::{Image, ImageStore};
use weft_ipam::Ipam;
use weft_model::{host_iface_name, keys, paths, validate_name, AgentStatus, Network, Workload};
use weft_netlink::{Handle, Netns};
use weft_runtime::{Bundle, NsMode, RunSpec};

use crate::{Cluster, ContainerView, NodeRef};

/// What `weft run` asks for.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub name: Option<String>,
    /// Network name, or `container:NAME` to share another container's network namespace.
    pub net: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<String>,
    pub hostname: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub detach: bool,
    pub remove: bool,
    pub tty: bool,
    /// Limits and security, passed to the runtime as they are.
    pub memory: Option<i64>,
    pub cpus: Option<f64>,
    pub pids_limit: Option<i64>,
    pub restart: weft_runtime::RestartPolicy,
    pub user: Option<String>,
    pub read_only: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    pub userns: bool,
    /// `-p HOSTPORT:PORT[/PROTO]` (bridge networks).
    pub publish: Vec<weft_model::PublishedPort>,
}

/// What `run` did.
pub struct RunOutcome {
    pub view: ContainerView,
    /// Exit code when run in the foreground.
    pub exit_code: Option<i32>,
}

const DEFAULT_NETWORK: &str = "default";
const PATH_ENV: &str = "PATH=/bin:/sbin:/usr/bin:/usr/sbin";

fn image_store() -> Result<ImageStore> {
    ImageStore::open(&paths::images_root()).context("open the image store")
}

fn resolve_image(name: &str) -> Result<Image> {
    let images = image_store()?;
    if name == "toolbox" {
        let exe = weft_exe()?;
        return images
            .ensure_toolbox(&exe)
            .context("build the toolbox image");
    }
    images
        .get(name)?
        .with_context(|| format!("image {name:?} not found; see `weft image ls`, or use toolbox"))
}

fn weft_exe() -> Result<std::path::PathBuf> {
    match std::env::var_os("WEFT_EXE") {
        Some(p) => Ok(p.into()),
        None => std::env::current_exe().context("find the weft executable"),
    }
}

type UndoStep<'a> = Box<dyn FnOnce() -> Result<()> + 'a>;

/// Undo steps of a half-made container, run in reverse unless disarmed.
struct Rollback<'a> {
    steps: Vec<(&'static str, UndoStep<'a>)>,
}

impl<'a> Rollback<'a> {
    fn push(&mut self, what: &'static str, f: impl FnOnce() -> Result<()> + 'a) {
        self.steps.push((what, Box::new(f)));
    }
    fn disarm(mut self) {
        self.steps.clear();
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        while let Some((what, f)) = self.steps.pop() {
            if let Err(e) = f() {
                eprintln!("weft: cleanup after a failed run: {what}: {e:#}");
            }
        }
    }
}

/// `weft run`: the container has its network when this returns (or, in the foreground, has exited).
pub fn run(c: &Cluster, node: &NodeRef, o: &RunOptions) -> Result<RunOutcome> {
    let store = c.store.as_ref();
    let id = weft_model::new_id(o.name.as_deref().unwrap_or("weft"));
    let name = match &o.name {
        Some(n) => {
            validate_name("container", n)?;
            n.clone()
        }
        None => format!("weft-{}", &id[..12]),
    };
    if let Some((k, _)) = o.labels.iter().find(|(k, _)| k.is_empty()) {
        bail!("invalid label {k:?}: write labels as key=value");
    }
    let net_arg = o.net.clone().unwrap_or_else(|| DEFAULT_NETWORK.into());
    // Resolve what the container joins before anything is made.
    let (network, shared_with): (Network, Option<Workload>) =
        match net_arg.strip_prefix("container:") {
            Some(other) => {
                let w = get_workload(c, other)?;
                let net = crate::inspect_network(c, &w.network)?;
                if w.node != node.node.name {
                    bail!(
                        "container {other} runs on node {}; run this one there too (--node {})",
                        w.node,
                        w.node
                    );
                }
                (net, Some(w))
            }
            None => (crate::inspect_network(c, &net_arg)?, None),
        };
    crate::bridge_net::check_publish(&network, &o.publish, shared_with.is_some())?;
    let bridged = network.driver == weft_model::Driver::Bridge;
    let image = resolve_image(&o.image)?;

    let workload = Workload {
        name: name.clone(),
        id: id.clone(),
        node: node.node.name.clone(),
        network: network.name.clone(),
        ip: shared_with.as_ref().and_then(|w| w.ip),
        host_iface: if shared_with.is_some() {
            String::new()
        } else if bridged {
            weft_model::bridge_port_name(&id)
        } else {
            host_iface_name(&id)
        },
        labels: o.labels.clone(),
        image: image.name.clone(),
        command: o.command.clone(),
        net_of: shared_with.as_ref().map(|w| w.name.clone()),
        created: weft_model::now(),
    };
    let key = keys::workload(&name);
    weft_store::create_json(store, &key, &workload).map_err(|e| match e {
        weft_store::Error::Conflict(_) => anyhow!(
            "container name {name:?} is already in use; remove that container (weft rm -f {name}) or choose another name"
        ),
        e => anyhow!(e).context(format!("record container {name}")),
    })?;
    let mut undo = Rollback { steps: vec![] };
    undo.push("remove the container record", || {
        weft_store::delete(store, &key)
            .map(|_| ())
            .map_err(Into::into)
    });

    let ports = crate::bridge_net::claim_ports(c, &node.node.name, &name, &o.publish)?;
    let p2 = ports.clone();
    undo.push("unpublish the ports", move || {
        crate::bridge_net::release_ports(c, &p2);
        Ok(())
    });

    let mut workload = workload;
    let mut programmed_from = 0;
    let ipam = Ipam::new(store);
    if shared_with.is_none() {
        let handle = workload.ipam_handle();
        let ip = if bridged {
            crate::bridge_net::allocate(c, &network, &node.node.name, &handle, o.ip)
        } else {
            ipam.allocate(&handle, &node.node.name, &network.pool, o.ip)
                .map_err(Into::into)
        }
        .with_context(|| format!("allocate an address for {name} in network {}", network.name))?;
        workload.ip = Some(ip);
        let h2 = handle.clone();
        let ipam2 = Ipam::new(store);
        undo.push("release the address", move || {
            ipam2.release(&h2).map(|_| ()).map_err(Into::into)
        });
        programmed_from = weft_store::put_json(store, &key, &workload)?;
    }

    // Bundle: config.json + upper layer with the container's own /etc files.
    let bundle_dir = node.bundles.join(&id);
    let mut env = vec![
        PATH_ENV.to_string(),
        format!("HOSTNAME={}", o.hostname.as_deref().unwrap_or(&name)),
    ];
    env.extend(image.config.env.iter().cloned());
    env.extend(o.env.iter().cloned());
    let args = if o.command.is_empty() {
        let mut a = image.config.entrypoint.clone();
        a.extend(image.config.cmd.iter().cloned());
        if a.is_empty() {
            vec!["sh".to_string()]
        } else {
            a
        }
    } else {
        o.command.clone()
    };
    let netns_mode = match &shared_with {
        Some(w) => {
            let st = weft_runtime::state(&node.runtime_root, &w.id)
                .with_context(|| format!("state of container {}", w.name))?;
            if st.status != weft_runtime::Status::Running {
                bail!(
                    "container {} is not running; cannot share its network",
                    w.name
                );
            }
            NsMode::Join(format!("/proc/{}/ns/net", st.pid).into())
        }
        None => NsMode::New,
    };
    let hostname = o.hostname.clone().unwrap_or_else(|| name.clone());
    let spec = RunSpec {
        args,
        env,
        cwd: image
            .config
            .working_dir
            .clone()
            .unwrap_or_else(|| "/".into()),
        hostname: hostname.clone(),
        rootfs_lower: if image.layers.is_empty() {
            vec![image.rootfs.clone()]
        } else {
            image.layers.clone()
        },
        user: o
            .user
            .clone()
            .or_else(|| image.config.user.clone().filter(|u| !u.is_empty())),
        netns: netns_mode,
        tty: o.tty,
        labels: o.labels.clone(),
        memory: o.memory,
        cpus: o.cpus,
        pids_limit: o.pids_limit,
        restart: o.restart,
        read_only: o.read_only,
        cap_add: o.cap_add.clone(),
        cap_drop: o.cap_drop.clone(),
        privileged: o.privileged,
        userns: o.userns,
        cgroup_parent: Some(format!("weft/{}/{}", c.lab, node.node.name)),
        ..Default::default()
    };
    let bd = bundle_dir.clone();
    undo.push("remove the bundle", move || {
        std::fs::remove_dir_all(&bd)
            .or_else(ignore_missing)
            .map_err(Into::into)
    });
    Bundle::write(&bundle_dir, &spec).with_context(|| format!("write the bundle of {name}"))?;
    write_etc(&bundle_dir, &hostname, workload.ip, node.node.address)?;

    let root = node.runtime_root.clone();
    let state = weft_runtime::create(&root, &id, &bundle_dir)
        .with_context(|| format!("create container {name}"))?;
    let (r2, id2) = (root.clone(), id.clone());
    undo.push("delete the container", move || {
        weft_runtime::delete(&r2, &id2, true).map_err(Into::into)
    });

    if shared_with.is_none() {
        let ip = workload.ip.expect("allocated above");
        let node_ns = node.netns()?;
        let cns = Netns::from_pid(state.pid)
            .with_context(|| format!("open the network namespace of {name}"))?;
        let mut h = Handle::in_netns(&node_ns)?;
        // Workloads of a pool whose traffic may be encapsulated (its vxlanMode, or the
        // cluster's default) get the underlay's MTU less the tunnel's overhead.
        let pools = Ipam::new(c.store.as_ref()).pools()?;
        let encap = c.config()?.encap;
        let mtu = match weft_dataplane::vxlan::pool_overhead(&pools, &network.pool, encap) {
            None => None,
            Some(overhead) => {
                let underlay = h.link_by_name(&node.node.interface)?.with_context(|| {
                    format!(
                        "underlay {} missing on node {}",
                        node.node.interface, node.node.name
                    )
                })?;
                Some(underlay.mtu.saturating_sub(overhead))
            }
        };
        if bridged {
            let wiring = crate::bridge_net::Wiring {
                node,
                node_ns: &node_ns,
                h: &mut h,
                cns: &cns,
            };
            crate::bridge_net::attach(c, &network, wiring, &workload.host_iface, ip, mtu)
        } else {
            endpoint::attach(
                &mut h,
                &node_ns,
                &cns,
                &Endpoint {
                    host_iface: &workload.host_iface,
                    ip,
                    mtu,
                },
            )
        }
        .with_context(|| format!("attach {name} to network {}", network.name))?;
        let iface = workload.host_iface.clone();
        undo.push("remove the veth", move || {
            let mut h = Handle::in_netns(&node_ns)?;
            endpoint::detach(&mut h, &iface)
        });
    }

    if let (false, Some(ip)) = (ports.is_empty(), workload.ip) {
        programmed_from = crate::bridge_net::set_port_address(c, &ports, ip)?;
    }
    if programmed_from > 0 {
        wait_for_agent(c, &node.node.name, programmed_from);
    }
    weft_runtime::start(&root, &id).with_context(|| format!("start container {name}"))?;
    undo.disarm();

    let mut exit_code = None;
    if !o.detach {
        let mut out = std::io::stdout();
        weft_runtime::logs(&root, &id, true, &mut out)?;
        out.flush().ok();
        let st = weft_runtime::state(&root, &id)?;
        exit_code = st.exit_code;
        if o.remove {
            remove(c, &name, true)?;
        }
    }
    let rt = weft_runtime::state(&root, &id).ok();
    let mut view = ContainerView::new(&workload, rt.as_ref());
    view.ports = ports.iter().map(|p| p.to_string()).collect();
    Ok(RunOutcome { view, exit_code })
}

/// Waits until every node's agent has programmed its node from the last change of the cluster's
/// desired state or later (what a script waits for after `weft apply` before it relies on the
/// change). Agents report the revision of the last change under `/weft/` they planned from; the
/// store's own revision also counts their status writes, which they never plan from.
pub fn wait_for_agents(c: &Cluster) -> Result<()> {
    let (kvs, _) = c.store.list("/weft/")?;
    let revision = kvs.iter().map(|kv| kv.mod_revision).max().unwrap_or(0);
    for n in c.nodes()? {
        wait_for_agent(c, &n.name, revision);
    }
    Ok(())
}

/// Waits until the node's agent has programmed the node from `revision` or later, so the new
/// workload's rules are in the kernel when it starts. An agent that does not answer in time
/// gets a warning, not a failure: the workload runs, fail-closed, until its agent catches up.
fn wait_for_agent(c: &Cluster, node: &str, revision: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let key = keys::agent_status(node);
    loop {
        let status = weft_store::get_json::<AgentStatus>(c.store.as_ref(), &key);
        if let Ok(Some((st, _))) = status {
            if st.revision >= revision {
                if let Some(e) = st.error {
                    eprintln!("weft: warning: the agent of node {node} reports: {e}");
                }
                return;
            }
        }
        if std::time::Instant::now() > deadline {
            eprintln!(
                "weft: warning: the agent of node {node} has not programmed revision {revision} \
                 after 10 s; is it running? (weft doctor)"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The container's own /etc/hostname, /etc/hosts and /etc/resolv.conf, in its upper layer.
fn write_etc(bundle: &Path, hostname: &str, ip: Option<Ipv4Addr>, dns: Ipv4Addr) -> Result<()> {
    let etc = bundle.join("upper/etc");
    std::fs::create_dir_all(&etc).with_context(|| format!("create {}", etc.display()))?;
    let mut hosts =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = ip {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for (f, body) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        (
            "resolv.conf",
            format!(
                "# weft: the node's name server (containers by name, services)\nnameserver {dns}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n"
            ),
        ),
    ] {
        std::fs::write(etc.join(f), body).with_context(|| format!("write /etc/{f}"))?;
    }
    Ok(())
}

fn get_workload(c: &Cluster, name: &str) -> Result<Workload> {
    weft_store::get_json::<Workload>(c.store.as_ref(), &keys::workload(name))?
        .map(|(w, _)| w)
        .with_context(|| format!("no such container: {name} (see `weft ps -a`)"))
}

fn runtime_root_of(c: &Cluster, w: &Workload) -> std::path::PathBuf {
    paths::runtime_root(&c.lab, &w.node)
}

fn view_of(c: &Cluster, w: &Workload) -> ContainerView {
    let rt = weft_runtime::state(&runtime_root_of(c, w), &w.id).ok();
    let mut v = ContainerView::new(w, rt.as_ref());
    v.ports = crate::bridge_net::ports_of(c, &w.node, &w.name)
        .unwrap_or_default()
        .iter()
        .map(|p| p.to_string())
        .collect();
    v
}

/// `weft ps [-a]`: containers of every node, running ones only unless `all`.
pub fn ps(c: &Cluster, all: bool) -> Result<Vec<ContainerView>> {
    let mut out: Vec<ContainerView> =
        weft_store::list_json::<Workload>(c.store.as_ref(), keys::WORKLOADS)?
            .iter()
            .map(|(_, w, _)| view_of(c, w))
            .filter(|v| all || v.state == crate::State::Running)
            .collect();
    out.sort_by(|a, b| (&a.node, &a.name).cmp(&(&b.node, &b.name)));
    Ok(out)
}

/// `weft stats`: usage of running containers (all, or those named).
pub fn stats(c: &Cluster, names: &[String]) -> Result<Vec<(ContainerView, weft_runtime::Stats)>> {
    let mut out = vec![];
    for v in ps(c, false)? {
        if !names.is_empty() && !names.contains(&v.name) {
            continue;
        }
        let st = weft_runtime::stats(&paths::runtime_root(&c.lab, &v.node), &v.id)
            .with_context(|| format!("stats of {}", v.name))?;
        out.push((v, st));
    }
    Ok(out)
}

/// `weft inspect NAME`.
pub fn inspect(c: &Cluster, name: &str) -> Result<ContainerView> {
    Ok(view_of(c, &get_workload(c, name)?))
}

/// `weft logs [-f] NAME`.
pub fn logs(c: &Cluster, name: &str, follow: bool, out: &mut dyn Write) -> Result<()> {
    let w = get_workload(c, name)?;
    weft_runtime::logs(&runtime_root_of(c, &w), &w.id, follow, out)?;
    Ok(())
}

/// `weft exec NAME CMD...`: returns the command's exit code. Call before any thread is started.
pub fn exec(c: &Cluster, name: &str, args: &[String], env: &[String], tty: bool) -> Result<i32> {
    let w = get_workload(c, name)?;
    let v = view_of(c, &w);
    if v.state != crate::State::Running {
        bail!(
            "container {name} is not running (state {}); start a new one with weft run",
            v.state
        );
    }
    let mut full_env = vec![PATH_ENV.to_string(), format!("HOSTNAME={name}")];
    full_env.extend(env.iter().cloned());
    Ok(weft_runtime::exec(
        &runtime_root_of(c, &w),
        &w.id,
        args,
        &full_env,
        tty,
    )?)
}

/// `weft kill [-s SIG] NAME`.
pub fn kill(c: &Cluster, name: &str, signal: i32) -> Result<()> {
    let w = get_workload(c, name)?;
    weft_runtime::kill(&runtime_root_of(c, &w), &w.id, signal)
        .with_context(|| format!("kill {name}"))?;
    Ok(())
}

/// `weft stop NAME`: SIGTERM, then SIGKILL after `timeout`.
pub fn stop(c: &Cluster, name: &str, timeout: Duration) -> Result<()> {
    let w = get_workload(c, name)?;
    weft_runtime::stop(&runtime_root_of(c, &w), &w.id, timeout)
        .with_context(|| format!("stop {name}"))?;
    Ok(())
}

/// How long `remove` lets the kernel remove a deleted container's veth (with its network
/// namespace) before deleting it itself: measured 0-13 ms after the container's end; longer
/// only when something else still holds the namespace.
const TEARDOWN_GRACE: Duration = Duration::from_millis(200);

/// `weft rm [-f] NAME`: removes the container, its veth, its address and its record.
pub fn remove(c: &Cluster, name: &str, force: bool) -> Result<()> {
    let w = get_workload(c, name)?;
    let v = view_of(c, &w);
    if v.state == crate::State::Running && !force {
        bail!("container {name} is running; stop it first (weft stop {name}) or use weft rm -f {name}");
    }
    let root = runtime_root_of(c, &w);
    if v.state != crate::State::Unknown {
        weft_runtime::delete(&root, &w.id, true).with_context(|| format!("delete {name}"))?;
    }
    // The bundle goes first: meanwhile the kernel tears down the container's network namespace.
    std::fs::remove_dir_all(paths::bundles_dir(&c.lab, &w.node).join(&w.id))
        .or_else(ignore_missing)
        .with_context(|| format!("remove the bundle of {name}"))?;
    if !w.host_iface.is_empty() {
        let node = c.node_ref(
            c.nodes()?
                .into_iter()
                .find(|n| n.name == w.node)
                .with_context(|| format!("node {} of {name} is gone", w.node))?,
        );
        if let Ok(ns) = node.netns() {
            let mut h = Handle::in_netns(&ns)?;
            let shared = weft_store::list_json::<Workload>(c.store.as_ref(), keys::WORKLOADS)?
                .iter()
                .any(|(_, o, _)| o.net_of.as_deref() == Some(name));
            match w.ip {
                // A routed workload whose namespace dies with it: its route goes now, the
                // veth with the namespace, in the kernel's time (see `endpoint::unroute`).
                Some(ip) if !shared && w.host_iface == weft_model::host_iface_name(&w.id) => {
                    endpoint::unroute(&mut h, &w.host_iface, ip)?
                }
                // Another container still lives in the namespace: the veth must go now.
                _ if shared => endpoint::detach(&mut h, &w.host_iface)?,
                // A bridge port: the old end answers ARP on the bridge until it is gone, so
                // its address is released only after that. With its last process gone, the
                // namespace dies and takes the pair with it; deleting it ourselves during
                // that teardown is slower.
                _ => endpoint::detach_after_teardown(&mut h, &w.host_iface, TEARDOWN_GRACE)?,
            }
        }
    }
    crate::bridge_net::release_ports(c, &crate::bridge_net::ports_of(c, &w.node, &w.name)?);
    // The record goes before its address: released first, the address could be handed to a
    // new container while this record still claims it (two workloads, one address, for the
    // agents). Interrupted between the two, the address is only leaked, and `weft ipam gc`
    // returns a handle whose workload is gone.
    weft_store::delete(c.store.as_ref(), &keys::workload(name))?;
    if !w.host_iface.is_empty() {
        Ipam::new(c.store.as_ref())
            .release(&w.ipam_handle())
            .with_context(|| format!("release the address of {name}"))?;
    }
    Ok(())
}
