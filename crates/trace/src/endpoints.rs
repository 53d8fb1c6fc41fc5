//! The lab as weft knows it (store + runtime state), and FROM / TO resolved against it: a
//! container name, `node:NAME` or a node name, `ext`, `gw`, or an IP address.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use weft_dataplane::ClusterState;
use weft_model::lab::{EXT_ADDR, FABRIC_BRIDGE, GW_ADDR, INTERNET_ADDR};
use weft_model::{paths, ClusterConfig, Workload};

use crate::model::{Endpoint, MemberKind};
use crate::world::Member;

/// Everything a trace or doctor needs to know about a lab before reading any namespace.
pub struct LabView {
    pub lab: String,
    pub cluster: ClusterState,
    pub config: ClusterConfig,
    /// Nodes, then fabric, gw, ext, then running containers.
    pub members: Vec<Member>,
    /// Where each member's namespace is (`/run/netns/…`, `/proc/PID/ns/net`).
    pub netns: HashMap<String, PathBuf>,
    /// Containers of the store that have no running process (so no namespace), with why.
    pub not_running: Vec<(String, String)>,
    /// The store, while `cluster.services` holds only the services asked for so far (see
    /// [`LabView::open_for_trace`]); None when it holds them all.
    pub(crate) lazy: Option<Box<dyn weft_store::Store>>,
}

impl LabView {
    /// Reads the lab's store and its nodes' runtime state. Fails when the lab is not up.
    pub fn open(lab: &str) -> Result<LabView> {
        Self::open_with(lab, false)
    }

    /// Like [`LabView::open`], but services are read only when asked for (by name, or by
    /// the addresses a trace goes to: see `service_target`): a trace needs one service of
    /// thousands, and decoding them all was most of its time.
    pub fn open_for_trace(lab: &str) -> Result<LabView> {
        Self::open_with(lab, true)
    }

    fn open_with(lab: &str, lazy_services: bool) -> Result<LabView> {
        let Some(location) = paths::lab_store_location(lab) else {
            bail!(
                "lab {lab:?} is not up (no store at {}); start it with `weft lab up --lab {lab}` or pick one from `weft lab ls`",
                paths::lab_store(lab).display()
            );
        };
        let store = weft_store::open(&location)
            .with_context(|| format!("open the store of lab {lab} ({location})"))?;
        let cluster = if lazy_services {
            ClusterState::load_without_services(store.as_ref())?
        } else {
            ClusterState::load(store.as_ref())?
        };
        let config = cluster.config.clone();
        let mut view = LabView {
            lab: lab.to_string(),
            cluster,
            config,
            members: Vec::new(),
            netns: HashMap::new(),
            not_running: Vec::new(),
            lazy: lazy_services.then_some(store),
        };
        view.collect_members();
        Ok(view)
    }

    fn add(&mut self, m: Member, path: PathBuf) {
        self.netns.insert(m.key.clone(), path);
        self.members.push(m);
    }

    /// (Re)builds `members`, `netns` and `not_running` from `cluster`.
    pub(crate) fn collect_members(&mut self) {
        self.members.clear();
        self.netns.clear();
        self.not_running.clear();
        let lab = self.lab.clone();
        let named =
            |m: &str| PathBuf::from(weft_netlink::NETNS_RUN_DIR).join(paths::lab_netns(&lab, m));
        let mut nodes = self.cluster.nodes.clone();
        nodes.sort_by_key(|n| n.address);
        for n in &nodes {
            let m = fixed(
                &lab,
                &format!("node/{}", n.name),
                MemberKind::Node,
                &n.name,
                &format!("node {}", n.name),
            );
            self.add(m, named(&n.name));
        }
        for (name, kind, label) in [
            (
                "fabric",
                MemberKind::Fabric,
                format!("fabric (switch {FABRIC_BRIDGE})"),
            ),
            ("gw", MemberKind::Gateway, "gw (gateway)".to_string()),
            (
                "ext",
                MemberKind::External,
                "ext (outside client)".to_string(),
            ),
        ] {
            self.add(fixed(&lab, name, kind, name, &label), named(name));
        }
        let workloads = self.cluster.workloads.clone();
        for w in workloads.iter().filter(|w| w.net_of.is_none()) {
            let root = paths::runtime_root(&lab, &w.node);
            match weft_runtime::state(&root, &w.id) {
                Ok(st) if st.pid_alive() => {
                    let path = PathBuf::from(format!("/proc/{}/ns/net", st.pid));
                    let m = Member {
                        key: format!("container/{}", w.name),
                        kind: MemberKind::Container,
                        name: w.name.clone(),
                        label: format!("container {} (on {})", w.name, w.node),
                        netns: path.display().to_string(),
                        node: Some(w.node.clone()),
                        host_iface: (!w.host_iface.is_empty()).then(|| w.host_iface.clone()),
                    };
                    self.add(m, path);
                }
                Ok(st) => self.not_running.push((
                    w.name.clone(),
                    format!(
                        "container {} is {} (no process, so no network namespace)",
                        w.name, st.status
                    ),
                )),
                Err(e) => self.not_running.push((
                    w.name.clone(),
                    format!(
                        "container {} has no runtime state on {}: {e}",
                        w.name, w.node
                    ),
                )),
            }
        }
    }

    /// The workload named `name`.
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.cluster.workloads.iter().find(|w| w.name == name)
    }

    /// The member whose namespace holds workload `w` (its own, or the one it joined).
    fn workload_member(&self, w: &Workload) -> Result<&Member> {
        let owner = w.net_of.as_deref().unwrap_or(&w.name);
        if let Some(m) = self
            .members
            .iter()
            .find(|m| m.key == format!("container/{owner}"))
        {
            return Ok(m);
        }
        let why = self
            .not_running
            .iter()
            .find(|(n, _)| n == owner)
            .map(|(_, why)| why.clone())
            .unwrap_or_else(|| format!("container {owner} has no network namespace"));
        bail!("{why}; start it (weft ps -a shows its state) before tracing from or to it")
    }

    fn member(&self, key: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.key == key)
    }

    /// Resolves FROM (`from` = true) or TO. An address no member owns is only accepted as TO.
    pub fn resolve(&self, spec: &str, from: bool) -> Result<(Endpoint, Option<String>)> {
        let spec = spec.trim();
        let ep = |kind: &str, m: &Member, ip: Ipv4Addr| {
            (
                Endpoint {
                    spec: spec.to_string(),
                    kind: kind.to_string(),
                    label: m.label.clone(),
                    ip,
                    netns: Some(m.netns.clone()),
                },
                Some(m.key.clone()),
            )
        };
        if let Some(svc) = spec.strip_prefix("svc:") {
            bail!("service {svc:?}: a service is only a TO (it sends nothing itself); trace from one of its endpoints' containers instead");
        }
        if let Ok(ip) = spec.parse::<Ipv4Addr>() {
            return match self.owner_of(ip)? {
                Some((kind, key)) => {
                    let m = self.member(&key).context("member vanished")?;
                    Ok(ep(&kind, m, ip))
                }
                None if from => bail!(
                    "no container, node or lab member of lab {:?} holds {ip}, so there is no namespace to send from; give a container name, node:NAME, ext or gw",
                    self.lab
                ),
                None => Ok((
                    Endpoint {
                        spec: spec.to_string(),
                        kind: "address".into(),
                        label: format!("{ip} (owned by nothing weft knows in lab {})", self.lab),
                        ip,
                        netns: None,
                    },
                    None,
                )),
            };
        }
        let node_name = spec.strip_prefix("node:");
        if let Some(n) = node_name.or_else(|| self.cluster.node(spec).map(|n| n.name.as_str())) {
            let node = self.cluster.node(n).with_context(|| self.unknown(spec))?;
            let m = self
                .member(&format!("node/{n}"))
                .with_context(|| self.unknown(spec))?;
            return Ok(ep("node", m, node.address));
        }
        match spec {
            "gw" => return Ok(ep("gw", self.member("gw").context("no gw")?, GW_ADDR)),
            "ext" => return Ok(ep("ext", self.member("ext").context("no ext")?, EXT_ADDR)),
            "fabric" => bail!("fabric is the lab's switch: it has no address to send from or to"),
            _ => {}
        }
        if let Some(w) = self.workload(spec) {
            let m = self.workload_member(w)?;
            let ip = w.ip.with_context(|| {
                format!("container {spec} has no IP address (it has no network)")
            })?;
            return Ok(ep("container", m, ip));
        }
        bail!(self.unknown(spec))
    }

    /// Which member holds `ip`: (kind, member key).
    fn owner_of(&self, ip: Ipv4Addr) -> Result<Option<(String, String)>> {
        if let Some(w) = self.cluster.workloads.iter().find(|w| w.ip == Some(ip)) {
            let m = self.workload_member(w)?;
            return Ok(Some(("container".into(), m.key.clone())));
        }
        if let Some(n) = self
            .cluster
            .nodes
            .iter()
            .find(|n| n.address == ip || n.tunnel_address == Some(ip))
        {
            return Ok(Some(("node".into(), format!("node/{}", n.name))));
        }
        if ip == GW_ADDR || ip == INTERNET_ADDR {
            return Ok(Some(("gw".into(), "gw".into())));
        }
        if ip == EXT_ADDR {
            return Ok(Some(("ext".into(), "ext".into())));
        }
        Ok(None)
    }

    /// The error for a name that is nothing known, listing what is.
    fn unknown(&self, spec: &str) -> String {
        let containers: Vec<_> = self
            .cluster
            .workloads
            .iter()
            .map(|w| w.name.as_str())
            .collect();
        let nodes: Vec<_> = self.cluster.nodes.iter().map(|n| n.name.as_str()).collect();
        format!(
            "{spec:?} is not a container, node or member of lab {:?}: containers: {}; nodes: {}; also ext, gw, node:NAME, or an IP address",
            self.lab,
            if containers.is_empty() { "none".to_string() } else { containers.join(", ") },
            nodes.join(", ")
        )
    }
}

fn fixed(lab: &str, key: &str, kind: MemberKind, name: &str, label: &str) -> Member {
    Member {
        key: key.to_string(),
        kind,
        name: name.to_string(),
        label: label.to_string(),
        netns: paths::lab_netns(lab, name),
        node: None,
        host_iface: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ip, member};
    use std::collections::BTreeMap;
    use weft_model::Node;

    fn view() -> LabView {
        let node = |name: &str, a: &str| Node::new(name, ip(a));
        let wl = |name: &str, a: Option<&str>, net_of: Option<&str>| Workload {
            name: name.into(),
            id: format!("id-{name}"),
            node: "master".into(),
            network: "net1".into(),
            ip: a.map(ip),
            host_iface: String::new(),
            labels: BTreeMap::new(),
            image: "toolbox".into(),
            command: vec![],
            net_of: net_of.map(str::to_string),
            created: 0,
        };
        let cluster = ClusterState {
            nodes: vec![node("master", "198.51.100.11")],
            workloads: vec![
                wl("web1", Some("10.244.0.1"), None),
                wl("side", Some("10.244.0.1"), Some("web1")),
                wl("gone", Some("10.244.0.9"), None),
            ],
            ..Default::default()
        };
        LabView {
            lab: "t".into(),
            cluster,
            config: ClusterConfig::default(),
            members: vec![
                member("node/master", MemberKind::Node),
                member("gw", MemberKind::Gateway),
                member("ext", MemberKind::External),
                member("container/web1", MemberKind::Container),
            ],
            netns: HashMap::new(),
            not_running: vec![("gone".into(), "container gone is stopped".into())],
            lazy: None,
        }
    }

    #[test]
    fn names_resolve_to_members() {
        let v = view();
        let (e, k) = v.resolve("web1", true).unwrap();
        assert_eq!(
            (e.kind.as_str(), e.ip, k.as_deref()),
            ("container", ip("10.244.0.1"), Some("container/web1"))
        );
        // A container sharing web1's namespace is traced from web1's namespace.
        let (_, k) = v.resolve("side", true).unwrap();
        assert_eq!(k.as_deref(), Some("container/web1"));
        for spec in ["master", "node:master", "198.51.100.11"] {
            let (e, k) = v.resolve(spec, false).unwrap();
            assert_eq!(
                (e.kind.as_str(), k.as_deref()),
                ("node", Some("node/master")),
                "{spec}"
            );
        }
        let (e, _) = v.resolve("203.0.113.1", false).unwrap();
        assert_eq!(e.kind, "gw");
        let (e, _) = v.resolve("ext", true).unwrap();
        assert_eq!(e.ip, EXT_ADDR);
    }

    #[test]
    fn unknown_things_are_said_plainly() {
        let v = view();
        let e = v.resolve("nosuch", false).unwrap_err().to_string();
        assert!(
            e.contains("\"nosuch\" is not a container, node or member"),
            "{e}"
        );
        assert!(e.contains("web1") && e.contains("master"), "{e}");
        let e = v.resolve("10.9.9.9", true).unwrap_err().to_string();
        assert!(e.contains("holds 10.9.9.9"), "{e}");
        let (e, k) = v.resolve("10.9.9.9", false).unwrap();
        assert_eq!((e.kind.as_str(), k), ("address", None));
        let e = v.resolve("gone", true).unwrap_err().to_string();
        assert!(e.contains("stopped") && e.contains("start it"), "{e}");
        let e = v.resolve("svc:web", false).unwrap_err().to_string();
        assert!(e.contains("only a TO"), "{e}");
        assert!(v.resolve("node:ghost", false).is_err());
    }
}
