//! Services: their addresses (ClusterIP from the service range, NodePorts from 30000-32767),
//! assigned when applied and checked against every other service; and their endpoints, the
//! workloads whose labels match the selector.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use anyhow::{bail, Result};
use serde::Serialize;
use weft_model::policy::{Resource, Service, ServiceType, NODE_PORT_RANGE};
use weft_model::{keys, Workload};
use weft_store::Compare;

use crate::Cluster;

/// Every stored service.
pub fn list(c: &Cluster) -> Result<Vec<Service>> {
    Ok(
        weft_store::list_json::<Resource>(c.store.as_ref(), keys::SERVICES)?
            .into_iter()
            .filter_map(|(_, r, _)| match r {
                Resource::Service(s) => Some(s),
                _ => None,
            })
            .collect(),
    )
}

fn same(a: &Service, b: &Service) -> bool {
    a.metadata.namespace == b.metadata.namespace && a.metadata.name == b.metadata.name
}

/// Fills in each service's ClusterIP and NodePorts (keeping those it already had), refusing
/// clashes with other services. Adds the compares that make the write fail if another
/// service changed meanwhile.
pub fn assign(
    c: &Cluster,
    input: &[Resource],
    compares: &mut Vec<Compare>,
) -> Result<Vec<Resource>> {
    if !input.iter().any(|r| matches!(r, Resource::Service(_))) {
        return Ok(input.to_vec());
    }
    let range = c.config()?.service_cidr;
    let (kvs, _) = c.store.list(keys::SERVICES)?;
    for kv in &kvs {
        compares.push(Compare::ModRevision(kv.key.clone(), kv.mod_revision));
    }
    let stored: Vec<Service> = list(c)?;
    let mut taken_ips: HashSet<Ipv4Addr> = HashSet::new();
    let mut taken_ports: HashSet<u16> = HashSet::new();
    let new_services: Vec<&Service> = input
        .iter()
        .filter_map(|r| match r {
            Resource::Service(s) => Some(s),
            _ => None,
        })
        .collect();
    // What every service not being applied holds.
    for o in &stored {
        if new_services.iter().any(|n| same(n, o)) {
            continue;
        }
        taken_ips.extend(o.cluster_ip());
        taken_ports.extend(
            o.ports()
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.node_port),
        );
    }
    let mut out = vec![];
    for r in input {
        let Resource::Service(s) = r else {
            out.push(r.clone());
            continue;
        };
        let mut s = s.clone();
        let name = format!("service {}/{}", s.metadata.namespace, s.metadata.name);
        let previous = stored.iter().find(|o| same(o, &s));
        // ClusterIP: as given (checked), as it was, or the lowest free one from .10.
        let ip = match s.cluster_ip() {
            Some(ip) => {
                if !range.contains(&ip) {
                    bail!("{name}: clusterIP {ip} is outside the service range {range}; leave it out to get one");
                }
                if taken_ips.contains(&ip) {
                    bail!("{name}: clusterIP {ip} is already used by another service; choose another or leave it out");
                }
                ip
            }
            None => match previous.and_then(|p| p.cluster_ip()) {
                Some(ip) if !taken_ips.contains(&ip) => ip,
                _ => range
                    .hosts()
                    .skip(9)
                    .find(|ip| !taken_ips.contains(ip))
                    .ok_or_else(|| anyhow::anyhow!("{name}: the service range {range} is full"))?,
            },
        };
        taken_ips.insert(ip);
        s.spec.cluster_ip = Some(ip.to_string());
        if s.spec.service_type == ServiceType::NodePort {
            let prev_ports = previous.map(|p| p.spec.ports.clone()).unwrap_or_default();
            for (i, p) in s.spec.ports.iter_mut().enumerate() {
                let node_port = match p.node_port {
                    Some(n) => {
                        if taken_ports.contains(&(n as u16)) {
                            bail!("{name}: spec.ports[{i}].nodePort {n} is already used by another service");
                        }
                        n
                    }
                    None => {
                        let kept = prev_ports
                            .iter()
                            .find(|q| q.port == p.port && q.protocol() == p.protocol())
                            .and_then(|q| q.node_port)
                            .filter(|n| !taken_ports.contains(&(*n as u16)));
                        match kept {
                            Some(n) => n,
                            None => NODE_PORT_RANGE
                                .clone()
                                .find(|n| !taken_ports.contains(&(*n as u16)))
                                .ok_or_else(|| anyhow::anyhow!("{name}: no NodePort is free"))?,
                        }
                    }
                };
                taken_ports.insert(node_port as u16);
                p.node_port = Some(node_port);
            }
        }
        s.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        out.push(Resource::Service(s));
    }
    Ok(out)
}

/// A row of `weft get endpoints`.
#[derive(Clone, Debug, Serialize)]
pub struct Endpoints {
    pub name: String,
    pub namespace: String,
    pub endpoints: Vec<String>,
}

pub fn list_endpoints(c: &Cluster) -> Result<Vec<Endpoints>> {
    let workloads: Vec<Workload> =
        weft_store::list_json::<Workload>(c.store.as_ref(), keys::WORKLOADS)?
            .into_iter()
            .map(|(_, w, _)| w)
            .collect();
    Ok(list(c)?
        .iter()
        .map(|s| {
            let ports = s.ports().unwrap_or_default();
            Endpoints {
                name: s.metadata.name.clone(),
                namespace: s.metadata.namespace.clone(),
                endpoints: s
                    .endpoints(&workloads)
                    .iter()
                    .flat_map(|ip| ports.iter().map(move |p| format!("{ip}:{}", p.target_port)))
                    .collect(),
            }
        })
        .collect())
}
