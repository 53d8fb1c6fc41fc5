//! `networking.k8s.io/v1` NetworkPolicy, and its conversion into the normalized form (the
//! way Calico converts Kubernetes policies: order 1000, name `knp.default.<name>`, one Allow
//! rule per peer and protocol).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::common::{
    check_label_key, check_label_value, check_types, port_from_u64, port_number, Action, Cidr,
    FieldError, ObjectMeta, PolicyType, Protocol,
};
use super::normalized::{
    namespace_labels_selector, namespace_selector, NEntity, NRule, NormalizedPolicy,
    K8S_POLICY_ORDER, K8S_POLICY_PREFIX,
};
use crate::selector::Selector;

/// A Kubernetes NetworkPolicy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct K8sNetworkPolicy {
    pub metadata: ObjectMeta,
    pub spec: K8sNetworkPolicySpec,
}

/// `spec` of a Kubernetes NetworkPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sNetworkPolicySpec {
    /// Pods (of the policy's namespace) it applies to; `{}` selects all of them.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// Defaulted like Kubernetes: Ingress, plus Egress when there are egress rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy_types: Vec<PolicyType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IngressRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
}

/// A Kubernetes label selector: every condition must hold; empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: LabelOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Operator of a `matchExpressions` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// An ingress rule: traffic from any of `from` (all sources if empty) to any of `ports`
/// (all ports if empty) is allowed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngressRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<Peer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<K8sPort>,
}

/// An egress rule: traffic to any of `to` on any of `ports` is allowed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<Peer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<K8sPort>,
}

/// A peer: pods (by pod and/or namespace labels) or an IP block.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Peer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// `ipBlock`: a CIDR minus some sub-ranges.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBlock {
    pub cidr: Cidr,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<Cidr>,
}

/// A port entry: protocol (default TCP), port (all ports if absent), and `endPort` for a range.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct K8sPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// A number; named ports are refused.
    #[serde(
        default,
        deserialize_with = "port_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub port: Option<u16>,
    #[serde(
        default,
        deserialize_with = "port_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_port: Option<u16>,
}

/// Reads a port given as a number (or numeric string); names get a clear refusal.
fn port_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<u16>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a port number 1-65535")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(V)
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            port_from_u64(n).map(Some).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            Err(E::custom(format!("port {n} is out of range: use 1-65535")))
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
            port_number(s).map(Some).map_err(E::custom)
        }
    }
    d.deserialize_option(V)
}

impl LabelSelector {
    /// The equivalent Calico selector (`In` → `in {…}`, `Exists` → `has()`, …).
    fn to_selector(&self, path: &str) -> Result<Selector, FieldError> {
        let mut parts = Vec::new();
        for (k, v) in &self.match_labels {
            check_label_key(k).map_err(|r| FieldError::new(format!("{path}.matchLabels"), r))?;
            check_label_value(v)
                .map_err(|r| FieldError::new(format!("{path}.matchLabels.{k}"), r))?;
            parts.push(Selector::Eq(k.clone(), v.clone()));
        }
        for (i, r) in self.match_expressions.iter().enumerate() {
            let here = format!("{path}.matchExpressions[{i}]");
            check_label_key(&r.key).map_err(|e| FieldError::new(format!("{here}.key"), e))?;
            for (j, v) in r.values.iter().enumerate() {
                check_label_value(v)
                    .map_err(|e| FieldError::new(format!("{here}.values[{j}]"), e))?;
            }
            let values: BTreeSet<String> = r.values.iter().cloned().collect();
            let needs_values = matches!(r.operator, LabelOperator::In | LabelOperator::NotIn);
            if needs_values && values.is_empty() {
                return Err(FieldError::new(
                    format!("{here}.values"),
                    format!("operator {:?} needs at least one value", r.operator),
                ));
            }
            if !needs_values && !values.is_empty() {
                return Err(FieldError::new(
                    format!("{here}.values"),
                    format!("operator {:?} takes no values: remove them", r.operator),
                ));
            }
            let key = r.key.clone();
            parts.push(match r.operator {
                LabelOperator::In => Selector::In(key, values),
                LabelOperator::NotIn => Selector::NotIn(key, values),
                LabelOperator::Exists => Selector::Has(key),
                LabelOperator::DoesNotExist => Selector::Not(Box::new(Selector::Has(key))),
            });
        }
        Ok(Selector::all_of(parts))
    }
}

/// The peer side of a rule.
fn peer(path: &str, p: &Peer, namespace: &str) -> Result<NEntity, FieldError> {
    if let Some(b) = &p.ip_block {
        if p.pod_selector.is_some() || p.namespace_selector.is_some() {
            return Err(FieldError::new(path, "ipBlock cannot be combined with podSelector or namespaceSelector in one peer: make them separate peers"));
        }
        for (i, e) in b.except.iter().enumerate() {
            if !(b.cidr.0.contains(&e.0) && b.cidr.0 != e.0) {
                return Err(FieldError::new(
                    format!("{path}.ipBlock.except[{i}]"),
                    format!(
                        "{e} is not inside {} (and smaller): except only carves ranges out of cidr",
                        b.cidr
                    ),
                ));
            }
        }
        return Ok(NEntity {
            nets: vec![b.cidr.0],
            not_nets: b.except.iter().map(|c| c.0).collect(),
            ..NEntity::default()
        });
    }
    let pods = match &p.pod_selector {
        Some(s) => Some(s.to_selector(&format!("{path}.podSelector"))?),
        None => None,
    };
    let namespaces = match &p.namespace_selector {
        Some(s) => Some(namespace_labels_selector(
            &s.to_selector(&format!("{path}.namespaceSelector"))?,
        )),
        None => None,
    };
    let selector = match (namespaces, pods) {
        (None, None) => {
            return Err(FieldError::new(
                path,
                "a peer needs podSelector, namespaceSelector or ipBlock",
            ))
        }
        (None, Some(pods)) => namespace_selector(namespace).and(pods),
        (Some(ns), pods) => ns.and(pods.unwrap_or(Selector::All)),
    };
    Ok(NEntity {
        selector: Some(selector),
        ..NEntity::default()
    })
}

/// An inclusive port range.
type PortSpan = (u16, u16);
/// A protocol and its port ranges (empty: every port).
type PortGroup = (u8, Vec<PortSpan>);

/// Port entries grouped by protocol, in order of first appearance; an empty range list means
/// every port of that protocol.
fn port_groups(path: &str, ports: &[K8sPort]) -> Result<Vec<PortGroup>, FieldError> {
    // `None`: every port of the protocol.
    let mut groups: Vec<(u8, Option<Vec<PortSpan>>)> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let here = format!("{path}[{i}]");
        let proto = p.protocol.unwrap_or(Protocol::TCP);
        if !matches!(proto, Protocol::TCP | Protocol::UDP | Protocol::SCTP) {
            return Err(FieldError::new(
                format!("{here}.protocol"),
                format!("{proto} is not allowed here: use TCP, UDP or SCTP"),
            ));
        }
        let range = match (p.port, p.end_port) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(FieldError::new(
                    format!("{here}.endPort"),
                    "endPort needs port: add port (the start of the range)",
                ))
            }
            (Some(a), None) => Some((a, a)),
            (Some(a), Some(b)) if b < a => {
                return Err(FieldError::new(
                    format!("{here}.endPort"),
                    format!("endPort {b} is below port {a}: it must be at least port"),
                ))
            }
            (Some(a), Some(b)) => Some((a, b)),
        };
        let slot = match groups.iter().position(|(p, _)| *p == proto.0) {
            Some(i) => i,
            None => {
                groups.push((proto.0, Some(Vec::new())));
                groups.len() - 1
            }
        };
        match (range, &mut groups[slot].1) {
            (None, all) => *all = None,
            (Some(r), Some(list)) => list.push(r),
            (Some(_), None) => {}
        }
    }
    Ok(groups
        .into_iter()
        .map(|(p, r)| (p, r.unwrap_or_default()))
        .collect())
}

/// One Allow rule per peer and protocol group.
fn convert_rule(
    path: &str,
    peers_field: &str,
    peers: &[Peer],
    ports: &[K8sPort],
    namespace: &str,
    ingress: bool,
) -> Result<Vec<NRule>, FieldError> {
    let mut entities = Vec::new();
    for (i, p) in peers.iter().enumerate() {
        entities.push(peer(&format!("{path}.{peers_field}[{i}]"), p, namespace)?);
    }
    if entities.is_empty() {
        entities.push(NEntity::default());
    }
    let groups = port_groups(&format!("{path}.ports"), ports)?;
    let mut out = Vec::new();
    for e in entities {
        let mut base = NRule::new(Action::Allow);
        if ingress {
            base.src = e;
        } else {
            base.dst = e;
        }
        if groups.is_empty() {
            out.push(base);
            continue;
        }
        for (proto, ranges) in &groups {
            let mut r = base.clone();
            r.protocol = Some(*proto);
            r.dst.ports = ranges.clone();
            out.push(r);
        }
    }
    Ok(out)
}

impl K8sNetworkPolicy {
    /// `NetworkPolicy (networking.k8s.io/v1) namespace/name`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "NetworkPolicy (networking.k8s.io/v1) {}/{}",
            self.metadata.namespace, self.metadata.name
        )
    }

    /// Validates and converts to the normalized form.
    pub fn normalize(&self) -> Result<NormalizedPolicy, super::PolicyError> {
        self.normalize_fields().map_err(|e| e.on(self.describe()))
    }

    fn normalize_fields(&self) -> Result<NormalizedPolicy, FieldError> {
        self.metadata.check(true)?;
        let s = &self.spec;
        let ns = self.metadata.namespace.as_str();
        let selector = namespace_selector(ns).and(s.pod_selector.to_selector("spec.podSelector")?);
        let types = if s.policy_types.is_empty() {
            let mut t = vec![PolicyType::Ingress];
            if !s.egress.is_empty() {
                t.push(PolicyType::Egress);
            }
            t
        } else {
            check_types("spec.policyTypes", &s.policy_types)?;
            let mut t = s.policy_types.clone();
            t.sort();
            t
        };
        // Rules of a direction the policy does not govern are checked, then ignored (as
        // Kubernetes does).
        let mut ingress = Vec::new();
        for (i, r) in s.ingress.iter().enumerate() {
            ingress.extend(convert_rule(
                &format!("spec.ingress[{i}]"),
                "from",
                &r.from,
                &r.ports,
                ns,
                true,
            )?);
        }
        let mut egress = Vec::new();
        for (i, r) in s.egress.iter().enumerate() {
            egress.extend(convert_rule(
                &format!("spec.egress[{i}]"),
                "to",
                &r.to,
                &r.ports,
                ns,
                false,
            )?);
        }
        if !types.contains(&PolicyType::Ingress) {
            ingress.clear();
        }
        if !types.contains(&PolicyType::Egress) {
            egress.clear();
        }
        Ok(NormalizedPolicy {
            name: format!("{K8S_POLICY_PREFIX}{}", self.metadata.name),
            namespace: Some(ns.to_string()),
            order: Some(K8S_POLICY_ORDER),
            selector,
            types,
            ingress,
            egress,
        })
    }
}
