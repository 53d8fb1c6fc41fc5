//! The one internal form every policy shape turns into (as Calico converts Kubernetes
//! policies into its own model), ready for a dataplane compiler.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::common::{Action, PolicyType};
use crate::selector::Selector;

/// Label every endpoint carries implicitly: the namespace it lives in. Namespaced policies
/// restrict their selectors with it.
pub const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";
/// Prefix under which an endpoint carries its namespace's labels; namespace selectors are
/// rewritten to match these (`has(x)` becomes `has(pcns.x)`), as Calico does.
pub const NAMESPACE_LABELS_PREFIX: &str = "pcns.";
/// The labels every namespace carries with its own name (Calico's and Kubernetes').
pub const NAMESPACE_NAME_LABELS: [&str; 2] =
    ["projectcalico.org/name", "kubernetes.io/metadata.name"];
/// Order Calico gives converted Kubernetes NetworkPolicies.
pub const K8S_POLICY_ORDER: f64 = 1000.0;
/// Name prefix of converted Kubernetes NetworkPolicies (Calico's `knp.default.` tier prefix).
pub const K8S_POLICY_PREFIX: &str = "knp.default.";

/// The labels a selector is evaluated against for an endpoint in `namespace` with its own
/// `labels`: those, plus [`NAMESPACE_LABEL`] and the namespace's own labels under
/// [`NAMESPACE_LABELS_PREFIX`] (weft's namespaces carry only their name labels).
pub fn endpoint_labels(
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut all = labels.clone();
    all.insert(NAMESPACE_LABEL.to_string(), namespace.to_string());
    for key in NAMESPACE_NAME_LABELS {
        all.insert(
            format!("{NAMESPACE_LABELS_PREFIX}{key}"),
            namespace.to_string(),
        );
    }
    all
}

/// The selector matching endpoints of `namespace`.
pub fn namespace_selector(namespace: &str) -> Selector {
    Selector::Eq(NAMESPACE_LABEL.to_string(), namespace.to_string())
}

/// A namespace selector (over namespace labels) as an endpoint selector.
pub fn namespace_labels_selector(s: &Selector) -> Selector {
    s.map_keys(&|k| format!("{NAMESPACE_LABELS_PREFIX}{k}"))
}

/// A policy in the normalized form.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormalizedPolicy {
    /// The policy's name (`knp.default.<name>` for a Kubernetes NetworkPolicy).
    pub name: String,
    /// `None` for global policies.
    pub namespace: Option<String>,
    /// Lower applies first; `None` after every ordered policy.
    pub order: Option<f64>,
    /// Endpoints the policy applies to; for namespaced policies already restricted to the
    /// namespace with [`NAMESPACE_LABEL`].
    pub selector: Selector,
    /// Directions it governs, `Ingress` before `Egress`. A governed direction with no
    /// matching rule ends in deny (once every policy of the endpoint has been tried).
    pub types: Vec<PolicyType>,
    pub ingress: Vec<NRule>,
    pub egress: Vec<NRule>,
}

/// One rule: every non-empty condition must hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NRule {
    pub action: Action,
    /// IP protocol number.
    pub protocol: Option<u8>,
    pub not_protocol: Option<u8>,
    /// ICMP type and optional code.
    pub icmp: Option<(u8, Option<u8>)>,
    pub not_icmp: Option<(u8, Option<u8>)>,
    pub src: NEntity,
    pub dst: NEntity,
}

impl NRule {
    /// A rule with this action and no condition.
    pub fn new(action: Action) -> Self {
        NRule {
            action,
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            src: NEntity::default(),
            dst: NEntity::default(),
        }
    }
}

/// One side (source or destination) of a rule.
///
/// `selector: Some(s)` means the address must be that of an endpoint whose labels (see
/// [`endpoint_labels`]) match `s`; `Some(all())` thus means "any endpoint" and excludes
/// addresses outside the cluster. `None` puts no condition on the peer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NEntity {
    /// The address is in one of these (when non-empty).
    pub nets: Vec<Ipv4Net>,
    /// The address is in none of these.
    pub not_nets: Vec<Ipv4Net>,
    pub selector: Option<Selector>,
    /// The address is not that of an endpoint matching this (not restricted to the policy's
    /// namespace, as in Calico).
    pub not_selector: Option<Selector>,
    /// The port is in one of these inclusive ranges (when non-empty).
    pub ports: Vec<(u16, u16)>,
    pub not_ports: Vec<(u16, u16)>,
}

impl NormalizedPolicy {
    /// `namespace/name`, or `name` for a global policy.
    pub fn key(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }

    /// Whether the policy governs `t`.
    pub fn governs(&self, t: PolicyType) -> bool {
        self.types.contains(&t)
    }

    /// Calico's application order: ascending `order`, policies without one last, then by
    /// [`key`](Self::key).
    pub fn cmp_order(&self, other: &Self) -> Ordering {
        let by_order = match (self.order, other.order) {
            (Some(a), Some(b)) => a.total_cmp(&b),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        by_order.then_with(|| self.key().cmp(&other.key()))
    }
}

/// Sorts policies into the order they apply in (see [`NormalizedPolicy::cmp_order`]).
pub fn sort_policies(policies: &mut [NormalizedPolicy]) {
    policies.sort_by(NormalizedPolicy::cmp_order);
}
