//! TO as a service: `svc:NAME[.NAMESPACE]` or its ClusterIP. The packet goes to the service's
//! address; the node's table DNATs it to one of the endpoints.

use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use weft_model::policy::Service;

use crate::endpoints::LabView;
use crate::model::{Endpoint, Proto};

/// A service TO resolved: the endpoint, and its ports as (protocol, port).
pub struct ServiceTarget {
    pub endpoint: Endpoint,
    pub ports: Vec<(Proto, u16)>,
}

fn proto(p: u8) -> Option<Proto> {
    match p {
        6 => Some(Proto::Tcp),
        17 => Some(Proto::Udp),
        _ => None,
    }
}

fn target(spec: &str, s: &Service, ip: Ipv4Addr) -> ServiceTarget {
    let ports = s
        .ports()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| Some((proto(p.protocol)?, p.port)))
                .collect()
        })
        .unwrap_or_default();
    ServiceTarget {
        endpoint: Endpoint {
            spec: spec.to_string(),
            kind: "service".into(),
            label: format!(
                "service {}.{} ({ip})",
                s.metadata.name, s.metadata.namespace
            ),
            ip,
            netns: None,
        },
        ports,
    }
}

/// Whether the stored record `raw` holds `what`. The store's records are JSON as serde writes
/// it (no escapes in addresses or field names), so a record that does not hold `"ADDRESS"`
/// has no such ClusterIP, and one that does not hold `"nodePort"` no NodePort. A record that
/// is not text is kept (decoding it then says what is wrong).
fn holds(raw: &[u8], what: &str) -> bool {
    std::str::from_utf8(raw).map_or(true, |s| s.contains(what))
}

impl LabView {
    /// Reads (when the view reads services lazily) the services under `prefix` that `keep`
    /// accepts on their raw record. When the store changed since the view was read, the
    /// whole lab is read again instead, every service with it, so what the view holds stays
    /// from one revision.
    fn read_services(&mut self, prefix: &str, keep: &dyn Fn(&[u8]) -> bool) -> Result<()> {
        let Some(store) = &self.lazy else {
            return Ok(());
        };
        let revision = self.cluster.add_services(store.as_ref(), prefix, keep)?;
        if revision != self.cluster.revision {
            self.cluster = weft_dataplane::ClusterState::load(store.as_ref())?;
            self.config = self.cluster.config.clone();
            self.lazy = None;
            self.collect_members();
        }
        Ok(())
    }

    /// Makes sure the view holds every service a packet to `addrs` may meet: those whose
    /// ClusterIP is one of them, and, when one is a node's address, every NodePort service
    /// (the services a trace's tables keep: see `netfilter::node_table`). `weft apply` gives
    /// each service a ClusterIP of its own from the service range, so the services are read
    /// only for an address in that range that no service the view holds has already.
    pub fn load_services_for(&mut self, addrs: &[Ipv4Addr]) -> Result<()> {
        let range = self.config.service_cidr;
        let quoted: Vec<String> = addrs
            .iter()
            .filter(|a| range.contains(*a))
            .filter(|a| {
                !self
                    .cluster
                    .services
                    .iter()
                    .any(|s| s.cluster_ip() == Some(**a))
            })
            .map(|a| format!("\"{a}\""))
            .collect();
        let node_ports = addrs
            .iter()
            .any(|a| self.cluster.nodes.iter().any(|n| n.address == *a));
        if quoted.is_empty() && !node_ports {
            return Ok(());
        }
        self.read_services(weft_model::keys::SERVICES, &|raw| {
            quoted.iter().any(|q| holds(raw, q)) || (node_ports && holds(raw, "\"nodePort\""))
        })
    }

    /// `svc:NAME[.NAMESPACE]` (the namespace is `default` when not given).
    pub fn resolve_service(&mut self, spec: &str) -> Result<ServiceTarget> {
        let Some(name) = spec.trim().strip_prefix("svc:") else {
            bail!("{spec:?} is not svc:NAME[.NAMESPACE]");
        };
        let (name, ns) = name.split_once('.').unwrap_or((name, "default"));
        self.read_services(&weft_model::keys::service(ns, name), &|_| true)?;
        if !self
            .cluster
            .services
            .iter()
            .any(|s| s.metadata.name == name && s.metadata.namespace == ns)
        {
            // Not there: read them all, to say which there are.
            self.read_services(weft_model::keys::SERVICES, &|_| true)?;
        }
        let Some(s) = self
            .cluster
            .services
            .iter()
            .find(|s| s.metadata.name == name && s.metadata.namespace == ns)
        else {
            let known: Vec<String> = self
                .cluster
                .services
                .iter()
                .take(20)
                .map(|s| format!("{}.{}", s.metadata.name, s.metadata.namespace))
                .collect();
            bail!(
                "no service {name} in namespace {ns} of lab {:?} (services: {})",
                self.lab,
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            );
        };
        let Some(ip) = s.cluster_ip() else {
            bail!("service {name}.{ns} has no ClusterIP yet: weft apply assigns one");
        };
        Ok(target(spec, s, ip))
    }

    /// The service whose ClusterIP is `ip`, if any.
    pub fn service_at(&mut self, spec: &str, ip: Ipv4Addr) -> Result<Option<ServiceTarget>> {
        self.load_services_for(&[ip])?;
        Ok(self
            .cluster
            .services
            .iter()
            .find(|s| s.cluster_ip() == Some(ip))
            .map(|s| target(spec, s, ip)))
    }
}

/// The protocol and port to trace to a service: `--port` when given (with its protocol),
/// else the service's first port of the protocol asked (any protocol when ICMP was left as
/// the default: a service does not answer pings).
pub fn service_port(
    t: &ServiceTarget,
    proto: Proto,
    port: Option<u16>,
) -> Result<(Proto, u16, Option<String>)> {
    if let Some(p) = port {
        let pr = if proto == Proto::Icmp {
            Proto::Tcp
        } else {
            proto
        };
        if !t.ports.contains(&(pr, p)) {
            bail!(
                "{} has no port {p}/{pr}: its ports are {}",
                t.endpoint.label,
                list(&t.ports)
            );
        }
        return Ok((pr, p, None));
    }
    let first = t
        .ports
        .iter()
        .find(|(pr, _)| proto == Proto::Icmp || *pr == proto)
        .copied();
    let Some((pr, p)) = first else {
        bail!(
            "{} has no {proto} port: its ports are {}",
            t.endpoint.label,
            list(&t.ports)
        );
    };
    Ok((
        pr,
        p,
        Some(format!(
            "traced to {}'s first port, {p}/{pr} (give --port to pick another: {})",
            t.endpoint.label,
            list(&t.ports)
        )),
    ))
}

fn list(ports: &[(Proto, u16)]) -> String {
    ports
        .iter()
        .map(|(pr, p)| format!("{p}/{pr}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_model::{keys, Node};
    use weft_store::{MemStore, Op, Store};

    fn put(s: &dyn Store, k: &str, v: &str) {
        s.txn(&[], &[Op::Put(k.to_string(), v.as_bytes().to_vec())])
            .unwrap();
    }

    fn service(name: &str, ip: &str, node_port: Option<u16>) -> String {
        let (kind, np) = match node_port {
            Some(p) => ("NodePort", format!(r#","nodePort":{p}"#)),
            None => ("ClusterIP", String::new()),
        };
        format!(
            r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{name}","namespace":"default"}},"spec":{{"type":"{kind}","clusterIP":"{ip}","ports":[{{"port":80{np}}}]}}}}"#
        )
    }

    /// A lab of one node and three services, read as a trace reads it.
    fn lazy_view() -> (LabView, std::sync::Arc<MemStore>) {
        let store = std::sync::Arc::new(MemStore::new());
        let node = serde_json::to_string(&Node::new("master", "198.51.100.11".parse().unwrap()));
        put(store.as_ref(), &keys::node("master"), &node.unwrap());
        for (name, ip, np) in [
            ("web", "10.96.0.10", None),
            ("db", "10.96.0.11", None),
            ("np", "10.96.0.12", Some(30080)),
        ] {
            put(
                store.as_ref(),
                &keys::service("default", name),
                &service(name, ip, np),
            );
        }
        let cluster = weft_dataplane::ClusterState::load_without_services(store.as_ref()).unwrap();
        let view = LabView {
            lab: "t".into(),
            config: cluster.config.clone(),
            cluster,
            members: vec![],
            netns: Default::default(),
            not_running: vec![],
            lazy: Some(Box::new(store.clone())),
        };
        (view, store)
    }

    fn held(v: &LabView) -> Vec<&str> {
        let mut n: Vec<&str> = v
            .cluster
            .services
            .iter()
            .map(|s| s.metadata.name.as_str())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn a_trace_reads_only_the_services_its_packet_can_meet() {
        let (mut v, _) = lazy_view();
        assert!(held(&v).is_empty());
        // By name: that one service.
        let t = v.resolve_service("svc:web").unwrap();
        assert_eq!(t.endpoint.ip, "10.96.0.10".parse::<Ipv4Addr>().unwrap());
        assert_eq!(held(&v), ["web"]);
        // A container's address (outside the service range) needs none.
        v.load_services_for(&["10.244.0.5".parse().unwrap()])
            .unwrap();
        assert_eq!(held(&v), ["web"]);
        // By ClusterIP: the service that has it.
        let t = v.service_at("10.96.0.11", "10.96.0.11".parse().unwrap());
        assert_eq!(
            t.unwrap().unwrap().endpoint.label,
            "service db.default (10.96.0.11)"
        );
        assert_eq!(held(&v), ["db", "web"]);
        // A node's address: every NodePort service.
        v.load_services_for(&["198.51.100.11".parse().unwrap()])
            .unwrap();
        assert_eq!(held(&v), ["db", "np", "web"]);
        // An unknown name still lists the services there are.
        let (mut v, _) = lazy_view();
        let Err(e) = v.resolve_service("svc:nope") else {
            panic!("svc:nope resolved")
        };
        let e = e.to_string();
        assert!(e.contains("db.default, np.default, web.default"), "{e}");
    }

    #[test]
    fn a_store_changed_since_the_view_was_read_is_read_again_whole() {
        let (mut v, store) = lazy_view();
        put(
            store.as_ref(),
            &keys::service("default", "new"),
            &service("new", "10.96.0.13", None),
        );
        v.resolve_service("svc:web").unwrap();
        assert!(v.lazy.is_none(), "still lazy after the store changed");
        assert_eq!(held(&v), ["db", "new", "np", "web"]);
    }
}
