//! Where each resource lives in the store.

pub const NODES: &str = "/weft/nodes/";
pub const NETWORKS: &str = "/weft/networks/";
pub const WORKLOADS: &str = "/weft/workloads/";
pub const CONFIG: &str = "/weft/config";

pub fn node(name: &str) -> String {
    format!("{NODES}{name}")
}
pub fn network(name: &str) -> String {
    format!("{NETWORKS}{name}")
}
pub fn workload(name: &str) -> String {
    format!("{WORKLOADS}{name}")
}

/// Policies of every kind: `/weft/policies/<kind>/<namespace or ->/<name>`.
pub const POLICIES: &str = "/weft/policies/";

pub fn policy(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!(
        "{POLICIES}{}/{}/{name}",
        kind.to_ascii_lowercase(),
        namespace.unwrap_or("-")
    )
}

/// What each node's agent reports (outside `/weft/`, so agents do not wake themselves).
pub const AGENT_STATUS: &str = "/status/agents/";

pub fn agent_status(node: &str) -> String {
    format!("{AGENT_STATUS}{node}")
}

/// Services: `/weft/services/<namespace>/<name>`.
pub const SERVICES: &str = "/weft/services/";

pub fn service(namespace: &str, name: &str) -> String {
    format!("{SERVICES}{namespace}/{name}")
}

/// Published ports: `/weft/ports/<node>/<proto>-<host port>` (one record per port and node, so
/// claiming one is a compare-and-swap create).
pub const PORTS: &str = "/weft/ports/";

pub fn published_port(node: &str, proto: &str, port: u16) -> String {
    format!("{PORTS}{node}/{proto}-{port}")
}
