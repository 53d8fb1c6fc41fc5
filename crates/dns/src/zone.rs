//! The names known at one store revision.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use weft_dataplane::ClusterState;
use weft_store::Revision;

use crate::services::ServiceName;

/// A container's name record.
#[derive(Clone, Debug)]
pub(crate) struct WorkloadName {
    /// The name as the user spelled it (PTR answers use it).
    pub name: String,
    /// Its network, lowercased.
    pub network: String,
    /// Its address; a `container:NAME` workload without one of its own has the address of the
    /// workload whose namespace it joins.
    pub ip: Option<Ipv4Addr>,
}

/// The names known at one store revision: containers (scoped by network), services, and the
/// reverse names of both. Immutable; [`crate::Server`] builds a new one on every change.
#[derive(Clone, Debug)]
pub struct Zone {
    pub(crate) revision: Revision,
    pub(crate) ttl: u32,
    /// Lowercased workload name → record.
    pub(crate) workloads: HashMap<String, WorkloadName>,
    /// Workload address → lowercased name of the workload that owns it (for PTR).
    pub(crate) workload_ips: HashMap<Ipv4Addr, String>,
    /// Source address of a workload → its network (lowercased): who is asking.
    pub(crate) askers: HashMap<Ipv4Addr, String>,
    /// Every network name, lowercased.
    pub(crate) networks: HashSet<String>,
    /// (namespace, name), lowercased → service.
    pub(crate) services: BTreeMap<(String, String), ServiceName>,
    /// Cluster IP → (namespace, name) key of `services`.
    pub(crate) service_ips: HashMap<Ipv4Addr, (String, String)>,
    /// Every namespace that has a service, lowercased.
    pub(crate) namespaces: HashSet<String>,
    /// Address ranges whose reverse names are weft's (pools, network subnets, service range).
    pub(crate) reverse_ranges: Vec<Ipv4Net>,
}

impl Zone {
    /// The zone of a cluster state and the services read with it (normally
    /// [`crate::services_of_state`] of the same state), with the default TTL.
    pub fn from_state(st: &ClusterState, services: &[ServiceName]) -> Zone {
        let mut zone = Zone {
            revision: st.revision,
            ttl: crate::DEFAULT_TTL,
            workloads: HashMap::new(),
            workload_ips: HashMap::new(),
            askers: HashMap::new(),
            networks: st
                .networks
                .iter()
                .map(|n| n.name.to_ascii_lowercase())
                .collect(),
            services: BTreeMap::new(),
            service_ips: HashMap::new(),
            namespaces: HashSet::new(),
            reverse_ranges: Vec::new(),
        };
        // Own addresses first, so that `container:NAME` sharers can borrow them.
        let own_ip: HashMap<&str, Ipv4Addr> = st
            .workloads
            .iter()
            .filter_map(|w| w.ip.map(|ip| (w.name.as_str(), ip)))
            .collect();
        for w in &st.workloads {
            let ip =
                w.ip.or_else(|| w.net_of.as_deref().and_then(|of| own_ip.get(of).copied()));
            let key = w.name.to_ascii_lowercase();
            let network = w.network.to_ascii_lowercase();
            if let Some(ip) = ip {
                zone.askers.entry(ip).or_insert_with(|| network.clone());
                // The owner of an address names it, not the workloads that share it.
                if w.ip.is_some() || !zone.workload_ips.contains_key(&ip) {
                    zone.workload_ips.insert(ip, key.clone());
                }
            }
            zone.workloads.insert(
                key,
                WorkloadName {
                    name: w.name.clone(),
                    network,
                    ip,
                },
            );
        }
        for s in services {
            let key = (
                s.namespace.to_ascii_lowercase(),
                s.name.to_ascii_lowercase(),
            );
            zone.namespaces.insert(key.0.clone());
            zone.service_ips.insert(s.cluster_ip, key.clone());
            zone.services.insert(key, s.clone());
        }
        zone.reverse_ranges.push(st.config.pool);
        zone.reverse_ranges.push(st.config.service_cidr);
        zone.reverse_ranges.extend(st.pools.iter().map(|p| p.cidr));
        zone.reverse_ranges
            .extend(st.networks.iter().filter_map(|n| n.subnet));
        zone
    }

    /// The same zone answering with another time to live (seconds).
    pub fn with_ttl(mut self, ttl: u32) -> Zone {
        self.ttl = ttl;
        self
    }

    /// The store revision the zone was built from.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// The time to live of its records, in seconds.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// Whether `asker` (a source address) may see names of `network` (lowercased): workloads
    /// see their own network only; anyone else (the node, other hosts) sees all.
    pub(crate) fn visible(&self, asker: Ipv4Addr, network: &str) -> bool {
        self.askers.get(&asker).is_none_or(|n| n == network)
    }
}
