//! `weft doctor`: every node checked for the faults that break paths — forwarding off, planned
//! routes missing or stale, workload interfaces missing, down, without proxy ARP or with an
//! MTU that differs from the container's end or leaves no room for encapsulation, rp_filter on
//! the tunnel, the nftables table missing or drifted from the plan, an agent not running, IPAM
//! inconsistent — each finding with its fix.

use std::collections::HashSet;
use std::fmt::Write;

use anyhow::{Context, Result};
use serde::Serialize;
use weft_dataplane::rules::{ruleset, RulesInput};
use weft_dataplane::{plan, PlanInput};
use weft_ipam::Ipam;
use weft_model::{paths, Encap, Node, ROUTE_PROTO, VXLAN_DEVICE, VXLAN_OVERHEAD};
use weft_netlink::{Netns, Route};
use weft_nft::{drift, Backend, NetlinkBackend, Summary};

use crate::endpoints::LabView;
use crate::live::LiveSource;
use crate::lookup::{route_command_args, show_route};
use crate::snapshot::NsSnapshot;
use crate::world::World;

/// One problem and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The node, or `cluster` for store-wide problems.
    pub node: String,
    /// `forwarding`, `routes`, `interfaces`, `proxy_arp`, `mtu`, `rp_filter`, `agent`, `ipam`.
    pub check: String,
    pub problem: String,
    pub fix: String,
}

/// Everything doctor found.
#[derive(Clone, Debug, Serialize)]
pub struct DoctorReport {
    pub lab: String,
    pub nodes: Vec<String>,
    /// The checks that ran.
    pub checks: Vec<String>,
    pub findings: Vec<Finding>,
    /// What was not checked, and why.
    pub notes: Vec<String>,
}

impl DoctorReport {
    /// True when nothing was found.
    pub fn healthy(&self) -> bool {
        self.findings.is_empty()
    }

    /// Exit code for scripts: 0 healthy, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.healthy() {
            0
        } else {
            1
        }
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "doctor: lab {} (nodes: {})",
            self.lab,
            self.nodes.join(", ")
        );
        let _ = writeln!(o, "  checked: {}", self.checks.join(", "));
        for f in &self.findings {
            let _ = writeln!(o, "PROBLEM [{}] {}: {}", f.check, f.node, f.problem);
            let _ = writeln!(o, "  fix: {}", f.fix);
        }
        for n in &self.notes {
            let _ = writeln!(o, "note: {n}");
        }
        if self.healthy() {
            let _ = writeln!(o, "no problems found");
        } else {
            let _ = writeln!(o, "{} problem(s) found", self.findings.len());
        }
        o
    }
}

const CHECKS: [&str; 9] = [
    "forwarding",
    "routes",
    "interfaces",
    "proxy_arp",
    "mtu",
    "rp_filter",
    "nftables",
    "agent",
    "ipam",
];

/// Checks every node of lab `lab`.
pub fn doctor(lab: &str) -> Result<DoctorReport> {
    let view = LabView::open(lab)?;
    let mut report = DoctorReport {
        lab: lab.to_string(),
        nodes: view.cluster.nodes.iter().map(|n| n.name.clone()).collect(),
        checks: CHECKS.iter().map(|c| c.to_string()).collect(),
        findings: Vec::new(),
        notes: Vec::new(),
    };
    let mut world = World::new(
        view.members.clone(),
        Box::new(LiveSource::new(view.netns.clone())),
    );
    for node in &view.cluster.nodes {
        let mut add = |check: &str, problem: String, fix: String| {
            report.findings.push(Finding {
                node: node.name.clone(),
                check: check.into(),
                problem,
                fix,
            })
        };
        let snap = match world.snapshot(&format!("node/{}", node.name)) {
            Ok(s) => s,
            Err(e) => {
                add(
                    "interfaces",
                    format!("the namespace of node {} cannot be read: {e}", node.name),
                    format!("rebuild the lab: weft lab down --lab {lab}, then weft lab up"),
                );
                continue;
            }
        };
        check_forwarding(node, &snap, &mut add);
        check_routes(&view, node, &snap, &mut add);
        check_workloads(&view, &mut world, node, &snap, &mut add);
        check_rp_filter(&view, node, &snap, &mut add);
        check_nftables(&view, node, &mut add);
    }
    check_agents(lab, &mut report);
    check_ipam(lab, &view, &mut report)?;
    Ok(report)
}

type Add<'a> = dyn FnMut(&str, String, String) + 'a;

fn exec(node: &str, cmd: &str) -> String {
    format!("weft lab exec {node} -- {cmd}")
}

fn check_forwarding(node: &Node, s: &NsSnapshot, add: &mut Add) {
    let n = &node.name;
    if s.ip_forward() == Some(false) {
        add(
            "forwarding",
            format!("forwarding disabled on {n}: net.ipv4.ip_forward=0, so {n} drops every packet it should route (cross-node and container traffic)"),
            exec(n, "sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'"),
        );
        return;
    }
    for l in s
        .links
        .iter()
        .filter(|l| l.name == node.interface || l.name.starts_with("cali"))
    {
        if s.forwarding(&l.name) == Some(false) {
            add(
                "forwarding",
                format!("{} on {n} does not forward (conf/{}/forwarding=0): packets arriving on it are dropped", l.name, l.name),
                exec(n, &format!("sh -c 'echo 1 > /proc/sys/net/ipv4/conf/{}/forwarding'", l.name)),
            );
        }
    }
}

fn same(a: &Route, b: &Route) -> bool {
    (a.dst, a.kind, a.gateway, a.oif) == (b.dst, b.kind, b.gateway, b.oif)
}

fn check_routes(view: &LabView, node: &Node, s: &NsSnapshot, add: &mut Add) {
    let n = &node.name;
    let ifindex = |name: &str| s.link_by_name(name).map(|l| l.index);
    let p = plan(&PlanInput {
        node: n,
        state: &view.cluster,
        encap: view.config.encap,
        ifindex: &ifindex,
    });
    for w in &p.warnings {
        add(
            "routes",
            format!("the plan of {n} is incomplete: {w}"),
            "check the node's agent log (nodes/NODE/agent.log under the lab directory)".into(),
        );
    }
    for r in p
        .routes
        .iter()
        .filter(|r| !s.main.iter().any(|k| same(k, r)))
    {
        let what = match (r.kind, r.dst.prefix_len()) {
            (weft_netlink::RouteKind::Blackhole, _) => {
                "the blackhole route of a local block".to_string()
            }
            (_, 32) => match view
                .cluster
                .workloads
                .iter()
                .find(|w| w.ip == Some(r.dst.addr()))
            {
                Some(w) => format!("the route to workload {}", w.name),
                None => "a workload route".to_string(),
            },
            _ => "the route to a remote block".to_string(),
        };
        add(
            "routes",
            format!("{what} is missing on {n}: `{}`", show_route(s, r)),
            format!(
                "let weft's agent resync (it restores planned routes on its next periodic resync) or re-add it: {}",
                exec(n, &format!("ip route replace {}", route_command_args(s, r)))
            ),
        );
    }
    for r in s
        .main
        .iter()
        .filter(|r| r.protocol == ROUTE_PROTO && !p.routes.iter().any(|x| same(x, r)))
    {
        add(
            "routes",
            format!(
                "stale route on {n}: `{}` is weft's (proto {ROUTE_PROTO}) but not in the plan",
                show_route(s, r)
            ),
            format!(
                "let the agent resync, or remove it: {}",
                exec(n, &format!("ip route del {}", route_command_args(s, r)))
            ),
        );
    }
}

fn check_workloads(view: &LabView, world: &mut World, node: &Node, s: &NsSnapshot, add: &mut Add) {
    let n = &node.name;
    let underlay_mtu = s.link_by_name(&node.interface).map(|l| l.mtu);
    for w in view
        .cluster
        .workloads
        .iter()
        .filter(|w| &w.node == n && !w.host_iface.is_empty())
    {
        let Some(cali) = s.link_by_name(&w.host_iface) else {
            if view.not_running.iter().all(|(name, _)| name != &w.name) {
                add(
                    "interfaces",
                    format!(
                        "workload {}'s host interface {} is missing on {n}",
                        w.name, w.host_iface
                    ),
                    format!(
                        "recreate the container: weft rm -f {} and weft run it again",
                        w.name
                    ),
                );
            }
            continue;
        };
        if !cali.up {
            add(
                "interfaces",
                format!(
                    "workload {}'s host interface {} is down on {n}",
                    w.name, cali.name
                ),
                exec(n, &format!("ip link set dev {} up", cali.name)),
            );
        }
        if !s.proxy_arp(&cali.name) {
            add(
                "proxy_arp",
                format!("proxy ARP is off on {} (workload {}) on {n}: the container's gateway 169.254.1.1 gets no ARP answer", cali.name, w.name),
                exec(n, &format!("sh -c 'echo 1 > /proc/sys/net/ipv4/conf/{}/proxy_arp'", cali.name)),
            );
        }
        let inner = world
            .snapshot(&format!("container/{}", w.name))
            .ok()
            .and_then(|c| {
                c.link_by_name(weft_dataplane::endpoint::CONTAINER_IFACE)
                    .map(|l| l.mtu)
            });
        if let Some(m) = inner.filter(|m| *m != cali.mtu) {
            add(
                "mtu",
                format!(
                    "MTU mismatch on workload {}: the container's eth0 has MTU {m}, its host end {} on {n} has {}; packets larger than the smaller one are dropped",
                    w.name, cali.name, cali.mtu
                ),
                exec(n, &format!("ip link set dev {} mtu {m}", cali.name)),
            );
        }
        if let (Encap::Vxlan, Some(u)) = (view.config.encap, underlay_mtu) {
            let room = u.saturating_sub(VXLAN_OVERHEAD);
            let biggest = inner.unwrap_or(cali.mtu).max(cali.mtu);
            if biggest > room {
                add(
                    "mtu",
                    format!(
                        "workload {} has MTU {biggest} but VXLAN over {}'s MTU {u} leaves room for {room}: full-size packets to other nodes are dropped",
                        w.name, node.interface
                    ),
                    exec(n, &format!("ip link set dev {} mtu {room} (and the container's eth0 likewise)", cali.name)),
                );
            }
        }
    }
}

fn check_rp_filter(view: &LabView, node: &Node, s: &NsSnapshot, add: &mut Add) {
    if view.config.encap != Encap::Vxlan || s.link_by_name(VXLAN_DEVICE).is_none() {
        return;
    }
    if s.rp_filter(VXLAN_DEVICE) == 1 {
        add(
            "rp_filter",
            format!("strict rp_filter on {VXLAN_DEVICE} of {} can drop decapsulated traffic whose source is not routed back through the tunnel", node.name),
            exec(&node.name, &format!("sh -c 'echo 2 > /proc/sys/net/ipv4/conf/{VXLAN_DEVICE}/rp_filter'")),
        );
    }
}

/// The node's table `inet weft` against the one its agent programs from the store.
fn check_nftables(view: &LabView, node: &Node, add: &mut Add) {
    let n = &node.name;
    let table = ruleset(&RulesInput::from_state(n, &view.cluster));
    let want = match Summary::of(&table) {
        Ok(s) => s,
        Err(e) => {
            add(
                "nftables",
                format!("weft's rules for {n} do not compile to nftables: {e}"),
                "this is a bug in weft: report it with `weft get policy` and `weft get network`"
                    .into(),
            );
            return;
        }
    };
    let Some(ns) = view
        .netns
        .get(&format!("node/{n}"))
        .and_then(|p| Netns::open(p).ok())
    else {
        return; // Reported by the interface check already.
    };
    let read = NetlinkBackend::in_netns(&ns).and_then(|mut b| b.read(table.family, &table.name));
    let resync = format!(
        "let the agent of {n} resync (it reprograms the table on the next store change and on its periodic resync), or restart it (see the agent finding)"
    );
    match read {
        Ok(have) => {
            let diff = drift(&want, &have);
            if !diff.is_empty() {
                let shown: Vec<_> = diff.iter().take(3).cloned().collect();
                add(
                    "nftables",
                    format!(
                        "table inet {} on {n} has drifted from weft's plan ({} difference(s): {}{})",
                        table.name,
                        diff.len(),
                        shown.join("; "),
                        if diff.len() > 3 { "; ..." } else { "" }
                    ),
                    resync,
                );
            }
        }
        Err(e) if e.is_not_found() => add(
            "nftables",
            format!(
                "table inet {} is missing on {n}: its policies, services and masquerade are not in force",
                table.name
            ),
            resync,
        ),
        Err(e) => add(
            "nftables",
            format!("cannot read table inet {} on {n}: {e}", table.name),
            "check that the kernel has nf_tables (modprobe nf_tables) and that doctor runs as root".into(),
        ),
    }
}

/// Agents by the pids `lab up` recorded in `<lab dir>/lab.json`.
fn check_agents(lab: &str, report: &mut DoctorReport) {
    let path = paths::lab_dir(lab).join("lab.json");
    let info: serde_json::Value = match std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(v) => v,
        None => {
            report.notes.push(format!(
                "agents not checked: {} is missing or unreadable (not a lab?)",
                path.display()
            ));
            return;
        }
    };
    let restart = |n: &str| {
        format!("start it again inside the node: weft --lab {lab} lab exec {n} -- weft --lab {lab} --node {n} agent (in the background), or rebuild the lab")
    };
    for n in info["nodes"].as_array().into_iter().flatten() {
        let name = n["name"].as_str().unwrap_or("?").to_string();
        let pid = n["agent_pid"].as_i64();
        let alive = pid.is_some_and(|p| agent_alive(p, lab));
        if !alive {
            report.findings.push(Finding {
                node: name.clone(),
                check: "agent".into(),
                problem: format!(
                    "the agent of {name} is not running (recorded pid {}): routes are not kept in line with the store",
                    pid.map(|p| p.to_string()).unwrap_or_else(|| "none".into())
                ),
                fix: restart(&name),
            });
        }
    }
}

fn agent_alive(pid: i64, lab: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.contains(&b"agent".as_slice()) && args.contains(&lab.as_bytes())
}

fn check_ipam(lab: &str, view: &LabView, report: &mut DoctorReport) -> Result<()> {
    let location = paths::lab_store_location(lab)
        .with_context(|| format!("lab {lab:?} has no store; is it up? (weft lab ls)"))?;
    let store = weft_store::open(&location)
        .with_context(|| format!("open the store of lab {lab} ({location})"))?;
    // Handles that must keep their addresses: every workload's and every node's tunnel addresses.
    let live: HashSet<String> = view
        .cluster
        .workloads
        .iter()
        .map(|w| w.ipam_handle())
        .chain(
            view.cluster
                .nodes
                .iter()
                .flat_map(|n| weft_model::node_handles(&n.name)),
        )
        .collect();
    let nodes: Vec<String> = view.cluster.nodes.iter().map(|n| n.name.clone()).collect();
    let problems = Ipam::new(store.as_ref())
        .check(&|h| live.contains(h), &nodes)
        .context("check IPAM")?;
    for p in problems {
        report.findings.push(Finding {
            node: "cluster".into(),
            check: "ipam".into(),
            problem: p.to_string(),
            fix: "see the problem's text; `weft ipam gc` releases addresses of workloads that are gone".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;
