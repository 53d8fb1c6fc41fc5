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

impl LabView {
    /// `svc:NAME[.NAMESPACE]` (the namespace is `default` when not given).
    pub fn resolve_service(&self, spec: &str) -> Result<ServiceTarget> {
        let Some(name) = spec.trim().strip_prefix("svc:") else {
            bail!("{spec:?} is not svc:NAME[.NAMESPACE]");
        };
        let (name, ns) = name.split_once('.').unwrap_or((name, "default"));
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
    pub fn service_at(&self, spec: &str, ip: Ipv4Addr) -> Option<ServiceTarget> {
        self.cluster
            .services
            .iter()
            .find(|s| s.cluster_ip() == Some(ip))
            .map(|s| target(spec, s, ip))
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
