//! Service records as the name service needs them: name, namespace and cluster IP.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use serde::Deserialize;
use weft_dataplane::ClusterState;
use weft_store::Store;

/// Where services live in the store: `/weft/services/<namespace>/<name>`, each the JSON of a
/// Kubernetes v1 Service object.
pub const SERVICES: &str = weft_model::keys::SERVICES;

/// A service's name and the address it answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceName {
    pub name: String,
    pub namespace: String,
    pub cluster_ip: Ipv4Addr,
}

impl ServiceName {
    /// The service's fully qualified name, `NAME.NAMESPACE.svc.cluster.local` (no final dot).
    pub fn fqdn(&self) -> String {
        format!(
            "{}.{}.svc.{}",
            self.name,
            self.namespace,
            crate::CLUSTER_DOMAIN
        )
    }
}

impl ServiceName {
    /// The name of a decoded service, if it has an IPv4 cluster IP.
    pub fn of(svc: &weft_model::policy::Service) -> Option<ServiceName> {
        Some(ServiceName {
            name: svc.metadata.name.clone(),
            namespace: non_empty(&svc.metadata.namespace)
                .unwrap_or("default")
                .to_string(),
            cluster_ip: cluster_ip(svc.spec.cluster_ip.as_deref())?,
        })
    }
}

/// The services of a cluster state that have an IPv4 cluster IP (read at the state's revision,
/// so [`crate::Zone::from_state`] sees one consistent store).
pub fn services_of_state(st: &ClusterState) -> Vec<ServiceName> {
    st.services.iter().filter_map(ServiceName::of).collect()
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

/// An IPv4 cluster IP; `None` for none, `None` (headless), or IPv6 (not served here).
fn cluster_ip(ip: Option<&str>) -> Option<Ipv4Addr> {
    ip.map(str::trim)?.parse().ok()
}

/// The few fields of a Kubernetes v1 Service that matter here; everything else is ignored.
#[derive(Deserialize)]
struct K8sService {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
}

#[derive(Default, Deserialize)]
struct Meta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Default, Deserialize)]
struct Spec {
    #[serde(default, rename = "clusterIP")]
    cluster_ip: Option<String>,
}

/// Every service in the store that has an IPv4 cluster IP, sorted by namespace and name.
///
/// Records without a cluster IP (or with `None`, as headless services have) are skipped; so are
/// records that do not decode, with a warning, so that one bad record does not hide every name.
pub fn services_from_store(store: &dyn Store) -> Result<Vec<ServiceName>> {
    let (kvs, _) = store
        .list(SERVICES)
        .with_context(|| format!("read services under {SERVICES} from the store"))?;
    let mut out = Vec::new();
    for kv in kvs {
        match decode(&kv.key, &kv.value) {
            Ok(Some(s)) => out.push(s),
            Ok(None) => {}
            Err(e) => tracing::warn!("service record {} ignored by dns: {e}", kv.key),
        }
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// Decodes one record; `Ok(None)` for a service without an IPv4 cluster IP.
pub(crate) fn decode(key: &str, value: &[u8]) -> Result<Option<ServiceName>, String> {
    let svc: K8sService = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    // The key says where the record lives; the object's metadata wins when it is present.
    let mut parts = key.strip_prefix(SERVICES).unwrap_or(key).splitn(2, '/');
    let key_ns = parts.next().and_then(non_empty);
    let key_name = parts.next().and_then(non_empty);
    let name = svc
        .metadata
        .name
        .as_deref()
        .or(key_name)
        .ok_or("no metadata.name")?;
    let namespace = svc
        .metadata
        .namespace
        .as_deref()
        .or(key_ns)
        .unwrap_or("default");
    let Some(cluster_ip) = cluster_ip(svc.spec.cluster_ip.as_deref()) else {
        return Ok(None);
    };
    Ok(Some(ServiceName {
        name: name.to_string(),
        namespace: namespace.to_string(),
        cluster_ip,
    }))
}
