//! Kubernetes v1 Service: a stable address (ClusterIP, and optionally a NodePort on every
//! node) in front of the workloads its selector matches.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::common::{ObjectMeta, PolicyError, Protocol};

/// `v1` Service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type", default)]
    pub service_type: ServiceType,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// Given by the user, or allocated from the service range when applied.
    #[serde(rename = "clusterIP", default, skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
}

/// `spec.sessionAffinityConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct SessionAffinityConfig {
    #[serde(rename = "clientIP", default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

/// `spec.sessionAffinityConfig.clientIP`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClientIpConfig {
    /// Seconds a client stays with its endpoint after its last new connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

/// How long a ClientIP affinity lasts when the service does not say (Kubernetes' default).
pub const DEFAULT_AFFINITY_TIMEOUT: u32 = 10800;
/// The longest ClientIP affinity Kubernetes accepts.
pub const MAX_AFFINITY_TIMEOUT: i64 = 86400;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    pub port: i64,
    /// A number (named target ports are refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<serde_yaml_ng::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<i64>,
}

/// Range Kubernetes takes NodePorts from.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// One port of a service, checked and resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedPort {
    pub protocol: u8,
    pub port: u16,
    pub target_port: u16,
    pub node_port: Option<u16>,
}

impl ServicePort {
    pub fn protocol(&self) -> u8 {
        self.protocol.map(|p| p.0).unwrap_or(Protocol::TCP.0)
    }
}

impl Service {
    fn err(&self, path: String, reason: impl Into<String>) -> PolicyError {
        PolicyError {
            resource: format!("Service {}/{}", self.metadata.namespace, self.metadata.name),
            path,
            reason: reason.into(),
        }
    }

    /// Whether the service's selector picks a workload with these labels (an empty selector
    /// picks none: such a service has its endpoints managed by hand).
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.spec.selector.is_empty()
            && self
                .spec
                .selector
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
    }

    /// Addresses of the workloads the service selects, sorted.
    pub fn endpoints(&self, workloads: &[crate::Workload]) -> Vec<Ipv4Addr> {
        let mut v: Vec<Ipv4Addr> = workloads
            .iter()
            .filter(|w| self.selects(&w.labels))
            .filter_map(|w| w.ip)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// The cluster IP, if set and valid.
    pub fn cluster_ip(&self) -> Option<Ipv4Addr> {
        self.spec.cluster_ip.as_deref().and_then(|s| s.parse().ok())
    }

    /// Checks every field (not clashes with other services: the engine does that).
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.ports()?;
        self.session_affinity().map(drop)
    }

    /// With `sessionAffinity: ClientIP`, how many seconds a client sticks to the endpoint
    /// it was sent to (`sessionAffinityConfig.clientIP.timeoutSeconds`, 1-86400, default
    /// 10800); `None` without affinity.
    pub fn session_affinity(&self) -> Result<Option<u32>, PolicyError> {
        let timeout = self
            .spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds);
        let client_ip = match self.spec.session_affinity.as_deref() {
            None | Some("None") => false,
            Some("ClientIP") => true,
            Some(_) => return Err(self.err("spec.sessionAffinity".into(), "use None or ClientIP")),
        };
        match timeout {
            Some(t) if !(1..=MAX_AFFINITY_TIMEOUT).contains(&t) => Err(self.err(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds".into(),
                format!("{t} is out of range 1-{MAX_AFFINITY_TIMEOUT}"),
            )),
            Some(_) if !client_ip => Err(self.err(
                "spec.sessionAffinityConfig".into(),
                "only a service with sessionAffinity: ClientIP takes a clientIP timeout",
            )),
            Some(t) => Ok(Some(t as u32)),
            None => Ok(client_ip.then_some(DEFAULT_AFFINITY_TIMEOUT)),
        }
    }

    /// The ports, checked: 1-65535, TCP/UDP/SCTP, numeric targetPort, NodePort range, no
    /// repeated port and protocol.
    pub fn ports(&self) -> Result<Vec<ResolvedPort>, PolicyError> {
        if let Some(ip) = &self.spec.cluster_ip {
            if ip.parse::<Ipv4Addr>().is_err() {
                return Err(self.err(
                    "spec.clusterIP".into(),
                    format!("{ip:?} is not an IPv4 address (headless services are not supported)"),
                ));
            }
        }
        if self.spec.ports.is_empty() {
            return Err(self.err("spec.ports".into(), "a service needs at least one port"));
        }
        let mut out: Vec<ResolvedPort> = vec![];
        for (i, p) in self.spec.ports.iter().enumerate() {
            let path = |f: &str| format!("spec.ports[{i}].{f}");
            let port = u16::try_from(p.port)
                .ok()
                .filter(|&x| x > 0)
                .ok_or_else(|| {
                    self.err(path("port"), format!("{} is out of range 1-65535", p.port))
                })?;
            let protocol = p.protocol();
            if ![6, 17, 132].contains(&protocol) {
                return Err(self.err(
                    path("protocol"),
                    format!(
                        "{} is not a service protocol: use TCP, UDP or SCTP",
                        Protocol(protocol)
                    ),
                ));
            }
            let target_port = match &p.target_port {
                None => port,
                Some(serde_yaml_ng::Value::Number(n)) => n
                    .as_i64()
                    .and_then(|x| u16::try_from(x).ok())
                    .filter(|&x| x > 0)
                    .ok_or_else(|| {
                        self.err(path("targetPort"), format!("{n} is out of range 1-65535"))
                    })?,
                Some(other) => {
                    return Err(self.err(
                        path("targetPort"),
                        format!("{other:?}: named target ports are not supported; give the number"),
                    ))
                }
            };
            let node_port = match p.node_port {
                None => None,
                Some(_) if self.spec.service_type != ServiceType::NodePort => {
                    return Err(self.err(
                        path("nodePort"),
                        "only a service of type NodePort has node ports",
                    ))
                }
                Some(n) if NODE_PORT_RANGE.contains(&n) => Some(n as u16),
                Some(n) => {
                    return Err(self.err(path("nodePort"), format!("{n} is outside 30000-32767")))
                }
            };
            if out.iter().any(|o| o.port == port && o.protocol == protocol) {
                return Err(self.err(
                    path("port"),
                    format!("port {port}/{} is listed twice", Protocol(protocol)),
                ));
            }
            out.push(ResolvedPort {
                protocol,
                port,
                target_port,
                node_port,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(extra: &str) -> Service {
        let yaml = format!(
            "metadata:\n  name: web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n{extra}"
        );
        serde_yaml_ng::from_str(&yaml).expect("a service")
    }

    #[test]
    fn session_affinity_and_its_timeout() {
        assert_eq!(svc("").session_affinity().unwrap(), None);
        assert_eq!(
            svc("  sessionAffinity: None\n").session_affinity().unwrap(),
            None
        );
        assert_eq!(
            svc("  sessionAffinity: ClientIP\n")
                .session_affinity()
                .unwrap(),
            Some(DEFAULT_AFFINITY_TIMEOUT)
        );
        let with = |t: &str| {
            svc(&format!(
                "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: {t}\n"
            ))
        };
        assert_eq!(with("60").session_affinity().unwrap(), Some(60));
        for bad in ["0", "86401"] {
            let e = with(bad).validate().unwrap_err().to_string();
            assert!(
                e.contains("timeoutSeconds") && e.contains(bad),
                "{bad}: {e}"
            );
        }
        let e = svc("  sessionAffinity: Sticky\n")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("ClientIP"), "{e}");
        let e = svc("  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 5\n")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("sessionAffinity: ClientIP"), "{e}");
    }
}
