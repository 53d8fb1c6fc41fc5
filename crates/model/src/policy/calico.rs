//! `projectcalico.org/v3` NetworkPolicy and GlobalNetworkPolicy, and their normalization.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::{
    check_types, Action, Cidr, FieldError, ObjectMeta, PolicyType, PortRange, Protocol,
};
use super::normalized::{
    namespace_labels_selector, namespace_selector, NEntity, NRule, NormalizedPolicy,
};
use crate::selector::Selector;

/// A namespaced Calico policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    pub metadata: ObjectMeta,
    pub spec: NetworkPolicySpec,
}

/// A cluster-wide Calico policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalNetworkPolicy {
    pub metadata: ObjectMeta,
    pub spec: GlobalNetworkPolicySpec,
}

/// `spec` of a Calico NetworkPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkPolicySpec {
    /// Only `default` (weft has one tier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Endpoints it applies to (empty: all of the namespace).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Defaulted like Calico: Ingress, plus Egress when there are egress rules (Egress alone
    /// when there are only egress rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
}

/// `spec` of a Calico GlobalNetworkPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GlobalNetworkPolicySpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Restricts the policy to endpoints in namespaces whose labels match.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
    /// Host-endpoint options: accepted when false (weft has no host endpoints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_track: Option<bool>,
    #[serde(default, rename = "preDNAT", skip_serializing_if = "Option::is_none")]
    pub pre_dnat: Option<bool>,
    /// Accepted and without effect: workload policy always applies to forwarded traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_on_forward: Option<bool>,
}

/// One Calico rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    pub action: Action,
    /// 4 or 6. IPv6 rules (also `protocol: ICMPv6`) are validated, then left out of the
    /// normalized form: weft is IPv4-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    #[serde(default, rename = "notICMP", skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpMatch>,
    #[serde(default, skip_serializing_if = "EntityRule::is_empty")]
    pub source: EntityRule,
    #[serde(default, skip_serializing_if = "EntityRule::is_empty")]
    pub destination: EntityRule,
    /// Free-form annotations (kept, not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

/// `metadata` of a rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// ICMP type (0-254) and code (0-255; needs a type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IcmpMatch {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
}

/// `source` or `destination` of a rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EntityRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nets: Vec<Cidr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_nets: Vec<Cidr>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub not_selector: String,
    /// Selects namespaces by their labels; endpoints in them match.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace_selector: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<PortRange>,
}

impl EntityRule {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == EntityRule::default()
    }
}

/// Parses a selector field, naming it in the error.
pub(crate) fn parse_selector(path: &str, text: &str) -> Result<Selector, FieldError> {
    Selector::parse(text).map_err(|e| FieldError::new(path, e.to_string()))
}

fn check_tier(tier: &Option<String>) -> Result<(), FieldError> {
    match tier.as_deref() {
        None | Some("default") => Ok(()),
        Some(t) => Err(FieldError::new(
            "spec.tier",
            format!("tier {t:?} does not exist: weft has only the default tier; remove the field"),
        )),
    }
}

fn check_order(order: Option<f64>) -> Result<(), FieldError> {
    match order {
        Some(o) if !o.is_finite() => Err(FieldError::new(
            "spec.order",
            "must be a finite number (or left out to apply after every ordered policy)",
        )),
        _ => Ok(()),
    }
}

/// Calico's default for `types` when none is given.
fn default_types(has_ingress: bool, has_egress: bool) -> Vec<PolicyType> {
    match (has_ingress, has_egress) {
        (false, true) => vec![PolicyType::Egress],
        (true, true) => vec![PolicyType::Ingress, PolicyType::Egress],
        _ => vec![PolicyType::Ingress],
    }
}

/// `types` checked against the rules, or defaulted; sorted Ingress first.
fn resolve_types(
    types: &[PolicyType],
    ingress: &[Rule],
    egress: &[Rule],
) -> Result<Vec<PolicyType>, FieldError> {
    if types.is_empty() {
        return Ok(default_types(!ingress.is_empty(), !egress.is_empty()));
    }
    check_types("spec.types", types)?;
    for (t, rules, field) in [
        (PolicyType::Ingress, ingress, "spec.ingress"),
        (PolicyType::Egress, egress, "spec.egress"),
    ] {
        if !rules.is_empty() && !types.contains(&t) {
            return Err(FieldError::new(
                field,
                format!("rules are given but spec.types does not list {t:?}: add {t:?} to types or remove the rules"),
            ));
        }
    }
    let mut v = types.to_vec();
    v.sort();
    Ok(v)
}

/// The policy's own namespace restriction, if any.
#[derive(Clone, Copy)]
struct Scope<'a> {
    namespace: Option<&'a str>,
}

fn icmp_pair(path: &str, m: &IcmpMatch) -> Result<Option<(u8, Option<u8>)>, FieldError> {
    let t = match m.icmp_type {
        None if m.code.is_some() => {
            return Err(FieldError::new(
                format!("{path}.code"),
                "an ICMP code needs an ICMP type: add type",
            ))
        }
        None => return Ok(None),
        Some(t) => u8::try_from(t).ok().filter(|t| *t <= 254).ok_or_else(|| {
            FieldError::new(
                format!("{path}.type"),
                format!("ICMP type {t} is out of range: use 0-254"),
            )
        })?,
    };
    let code = match m.code {
        None => None,
        Some(c) => Some(u8::try_from(c).map_err(|_| {
            FieldError::new(
                format!("{path}.code"),
                format!("ICMP code {c} is out of range: use 0-255"),
            )
        })?),
    };
    Ok(Some((t, code)))
}

fn ranges(v: &[PortRange]) -> Vec<(u16, u16)> {
    v.iter().map(|r| (r.min, r.max)).collect()
}

fn entity(
    path: &str,
    e: &EntityRule,
    proto: Option<Protocol>,
    scope: Scope,
) -> Result<NEntity, FieldError> {
    if !e.ports.is_empty() || !e.not_ports.is_empty() {
        let field = if e.ports.is_empty() {
            "notPorts"
        } else {
            "ports"
        };
        if !proto.is_some_and(Protocol::has_ports) {
            return Err(FieldError::new(
                format!("{path}.{field}"),
                "ports need the rule's protocol to be TCP, UDP, SCTP or UDPLite: add protocol: TCP (or UDP, ...)",
            ));
        }
    }
    let selector = if e.selector.is_empty() {
        None
    } else {
        Some(parse_selector(&format!("{path}.selector"), &e.selector)?)
    };
    let not_selector = if e.not_selector.is_empty() {
        None
    } else {
        Some(parse_selector(
            &format!("{path}.notSelector"),
            &e.not_selector,
        )?)
    };
    // Which namespaces the selector looks in: those the namespace selector picks, else the
    // policy's own namespace (for namespaced policies), else all.
    let ns_restriction = if e.namespace_selector.is_empty() {
        scope.namespace.map(namespace_selector)
    } else {
        let ns = parse_selector(&format!("{path}.namespaceSelector"), &e.namespace_selector)?;
        Some(namespace_labels_selector(&ns))
    };
    let selector = match (selector, e.namespace_selector.is_empty()) {
        (Some(s), _) => Some(ns_restriction.unwrap_or(Selector::All).and(s)),
        (None, false) => Some(ns_restriction.unwrap_or(Selector::All)),
        (None, true) => None,
    };
    Ok(NEntity {
        nets: e.nets.iter().map(|c| c.0).collect(),
        not_nets: e.not_nets.iter().map(|c| c.0).collect(),
        selector,
        not_selector,
        ports: ranges(&e.ports),
        not_ports: ranges(&e.not_ports),
    })
}

/// Normalizes one rule; `Ok(None)` for IPv6-only rules (they never match here).
fn rule(path: &str, r: &Rule, scope: Scope) -> Result<Option<NRule>, FieldError> {
    if let Some(v) = r.ip_version {
        if v != 4 && v != 6 {
            return Err(FieldError::new(
                format!("{path}.ipVersion"),
                format!("{v} is not an IP version: use 4 or 6"),
            ));
        }
    }
    for (field, m) in [("icmp", &r.icmp), ("notICMP", &r.not_icmp)] {
        if m.is_some() && !r.protocol.is_some_and(Protocol::is_icmp) {
            return Err(FieldError::new(
                format!("{path}.{field}"),
                "ICMP type and code need protocol: ICMP (or ICMPv6) on the rule",
            ));
        }
    }
    if r.ip_version == Some(4) && r.protocol == Some(Protocol::ICMPV6) {
        return Err(FieldError::new(
            format!("{path}.protocol"),
            "ICMPv6 with ipVersion 4 never matches: use ICMP",
        ));
    }
    let icmp = match &r.icmp {
        Some(m) => icmp_pair(&format!("{path}.icmp"), m)?,
        None => None,
    };
    let not_icmp = match &r.not_icmp {
        Some(m) => icmp_pair(&format!("{path}.notICMP"), m)?,
        None => None,
    };
    let src = entity(&format!("{path}.source"), &r.source, r.protocol, scope)?;
    let dst = entity(
        &format!("{path}.destination"),
        &r.destination,
        r.protocol,
        scope,
    )?;
    if r.ip_version == Some(6) || r.protocol == Some(Protocol::ICMPV6) {
        return Ok(None);
    }
    Ok(Some(NRule {
        action: r.action,
        protocol: r.protocol.map(|p| p.0),
        not_protocol: r.not_protocol.map(|p| p.0),
        icmp,
        not_icmp,
        src,
        dst,
    }))
}

fn rules(field: &str, list: &[Rule], scope: Scope) -> Result<Vec<NRule>, FieldError> {
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        if let Some(n) = rule(&format!("{field}[{i}]"), r, scope)? {
            out.push(n);
        }
    }
    Ok(out)
}

impl NetworkPolicy {
    /// `NetworkPolicy namespace/name`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "NetworkPolicy {}/{}",
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
        check_tier(&s.tier)?;
        check_order(s.order)?;
        let ns = self.metadata.namespace.as_str();
        let selector = namespace_selector(ns).and(parse_selector("spec.selector", &s.selector)?);
        let types = resolve_types(&s.types, &s.ingress, &s.egress)?;
        let scope = Scope {
            namespace: Some(ns),
        };
        Ok(NormalizedPolicy {
            name: self.metadata.name.clone(),
            namespace: Some(ns.to_string()),
            order: s.order,
            selector,
            types,
            ingress: rules("spec.ingress", &s.ingress, scope)?,
            egress: rules("spec.egress", &s.egress, scope)?,
        })
    }
}

impl GlobalNetworkPolicy {
    /// `GlobalNetworkPolicy name`, for messages.
    pub fn describe(&self) -> String {
        format!("GlobalNetworkPolicy {}", self.metadata.name)
    }

    /// Validates and converts to the normalized form.
    pub fn normalize(&self) -> Result<NormalizedPolicy, super::PolicyError> {
        self.normalize_fields().map_err(|e| e.on(self.describe()))
    }

    fn normalize_fields(&self) -> Result<NormalizedPolicy, FieldError> {
        self.metadata.check(false)?;
        let s = &self.spec;
        check_tier(&s.tier)?;
        check_order(s.order)?;
        for (field, v) in [("doNotTrack", s.do_not_track), ("preDNAT", s.pre_dnat)] {
            if v == Some(true) {
                return Err(FieldError::new(
                    format!("spec.{field}"),
                    "applies only to host endpoints, which weft does not have: remove the field",
                ));
            }
        }
        let mut selector = parse_selector("spec.selector", &s.selector)?;
        if !s.namespace_selector.is_empty() {
            let ns = parse_selector("spec.namespaceSelector", &s.namespace_selector)?;
            selector = namespace_labels_selector(&ns).and(selector);
        }
        let types = resolve_types(&s.types, &s.ingress, &s.egress)?;
        let scope = Scope { namespace: None };
        Ok(NormalizedPolicy {
            name: self.metadata.name.clone(),
            namespace: None,
            order: s.order,
            selector,
            types,
            ingress: rules("spec.ingress", &s.ingress, scope)?,
            egress: rules("spec.egress", &s.egress, scope)?,
        })
    }
}
