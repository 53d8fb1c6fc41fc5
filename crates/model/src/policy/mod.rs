//! Network policies in the shapes users already write — `projectcalico.org/v3`
//! NetworkPolicy and GlobalNetworkPolicy, `networking.k8s.io/v1` NetworkPolicy — their
//! validation, and their conversion into one [`NormalizedPolicy`] form for the dataplane.
//!
//! User input goes through [`decode_documents`]: multi-document YAML or JSON with mixed
//! kinds, every resource validated, all or nothing. Errors name the document, the line where
//! it can be found, the resource, the field path and the reason.

mod calico;
mod common;
mod decode;
mod k8s;
mod locate;
mod normalized;
mod resource;
mod service;
#[cfg(test)]
mod tests;

pub use calico::{
    EntityRule, GlobalNetworkPolicy, GlobalNetworkPolicySpec, IcmpMatch, NetworkPolicy,
    NetworkPolicySpec, Rule, RuleMetadata,
};
pub use common::{
    Action, Cidr, ObjectMeta, PolicyError, PolicyType, PortRange, Protocol, DEFAULT_NAMESPACE,
};
pub use decode::{decode_documents, DecodeError};
pub use k8s::{
    EgressRule, IngressRule, IpBlock, K8sNetworkPolicy, K8sNetworkPolicySpec, K8sPort,
    LabelOperator, LabelSelector, LabelSelectorRequirement, Peer,
};
pub use normalized::{
    endpoint_labels, namespace_labels_selector, namespace_selector, sort_policies, NEntity, NRule,
    NormalizedPolicy, K8S_POLICY_ORDER, K8S_POLICY_PREFIX, NAMESPACE_LABEL,
    NAMESPACE_LABELS_PREFIX, NAMESPACE_NAME_LABELS,
};
pub use resource::{Kind, Resource, KINDS};
pub use service::{
    ClientIpConfig, ResolvedPort, Service, ServicePort, ServiceSpec, ServiceType,
    SessionAffinityConfig, DEFAULT_AFFINITY_TIMEOUT, NODE_PORT_RANGE,
};
