//! Building blocks shared by the policy shapes: metadata, actions, protocols, ports, CIDRs,
//! and the error type that names the resource and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::Ipv4Net;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The namespace a namespaced resource lands in when its metadata names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A resource or one of its fields is invalid: which resource, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {path}: {reason}")]
pub struct PolicyError {
    /// Kind and name, such as `NetworkPolicy default/allow-tcp-80`.
    pub resource: String,
    /// The field, such as `spec.ingress[0].source.selector`.
    pub path: String,
    /// What is wrong and how to fix it (for selectors: position, reason and a caret line).
    pub reason: String,
}

/// A field error before it is attached to a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub path: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn on(self, resource: impl Into<String>) -> PolicyError {
        PolicyError {
            resource: resource.into(),
            path: self.path,
            reason: self.reason,
        }
    }
}

/// `metadata` of every resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    /// `default` when not given; empty for cluster-wide kinds (such as GlobalNetworkPolicy).
    #[serde(
        default = "default_namespace",
        skip_serializing_if = "String::is_empty"
    )]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}

impl ObjectMeta {
    /// Metadata with a name in the default namespace.
    pub fn named(name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            namespace: default_namespace(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        }
    }

    /// Checks name, namespace (when `namespaced`) and labels.
    pub(crate) fn check(&self, namespaced: bool) -> Result<(), FieldError> {
        check_dns_subdomain(&self.name)
            .map_err(|r| FieldError::new("metadata.name", format!("{:?} {r}", self.name)))?;
        if namespaced {
            check_dns_label(&self.namespace).map_err(|r| {
                FieldError::new("metadata.namespace", format!("{:?} {r}", self.namespace))
            })?;
        }
        check_labels("metadata.labels", &self.labels)
    }
}

/// A DNS-1123 subdomain: lower-case letters, digits, `-` and `.`, at most 253 characters,
/// starting and ending with a letter or digit.
pub(crate) fn check_dns_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err("is not a valid name: use 1-253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit".into())
    }
}

/// A DNS-1123 label: like a subdomain without dots, at most 63 characters.
pub(crate) fn check_dns_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err("is not a valid namespace: use 1-63 lower-case letters, digits and '-', starting and ending with a letter or digit".into())
    }
}

fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A Kubernetes label key: `[prefix/]name` (prefix a DNS subdomain, name up to 63 characters).
pub(crate) fn check_label_key(k: &str) -> Result<(), String> {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let prefix_ok = prefix.is_none_or(|p| check_dns_subdomain(p).is_ok());
    if prefix_ok && is_label_name(name) {
        Ok(())
    } else {
        Err(format!("label key {k:?} is not valid: write [dns-prefix/]name, the name 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
    }
}

/// A Kubernetes label value: empty, or up to 63 letters, digits, `-`, `_`, `.`.
pub(crate) fn check_label_value(v: &str) -> Result<(), String> {
    if v.is_empty() || is_label_name(v) {
        Ok(())
    } else {
        Err(format!("label value {v:?} is not valid: use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
    }
}

pub(crate) fn check_labels(
    path: &str,
    labels: &BTreeMap<String, String>,
) -> Result<(), FieldError> {
    for (k, v) in labels {
        check_label_key(k).map_err(|r| FieldError::new(path, r))?;
        check_label_value(v).map_err(|r| FieldError::new(format!("{path}.{k}"), r))?;
    }
    Ok(())
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    #[serde(alias = "allow")]
    Allow,
    #[serde(alias = "deny")]
    Deny,
    /// Log the packet and go on with the next rule.
    #[serde(alias = "log")]
    Log,
    /// Skip the rest of this tier's policies (with one tier: go to the profile).
    #[serde(alias = "pass")]
    Pass,
}

/// Direction a policy governs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PolicyType {
    #[serde(alias = "ingress")]
    Ingress,
    #[serde(alias = "egress")]
    Egress,
}

/// Checks a `types` / `policyTypes` list has no repeats.
pub(crate) fn check_types(path: &str, types: &[PolicyType]) -> Result<(), FieldError> {
    for (i, t) in types.iter().enumerate() {
        if types[..i].contains(t) {
            return Err(FieldError::new(
                format!("{path}[{i}]"),
                format!("{t:?} is listed twice; list each type once"),
            ));
        }
    }
    Ok(())
}

/// An IP protocol, by name (`TCP`, `udp`, …) or number (1-255).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol(pub u8);

const PROTOCOL_NAMES: &[(&str, u8)] = &[
    ("TCP", 6),
    ("UDP", 17),
    ("ICMP", 1),
    ("ICMPv6", 58),
    ("SCTP", 132),
    ("UDPLite", 136),
];

impl Protocol {
    pub const ICMP: Protocol = Protocol(1);
    pub const TCP: Protocol = Protocol(6);
    pub const UDP: Protocol = Protocol(17);
    pub const ICMPV6: Protocol = Protocol(58);
    pub const SCTP: Protocol = Protocol(132);
    pub const UDPLITE: Protocol = Protocol(136);

    /// Parses a name (any case) or a number 1-255.
    pub fn parse(s: &str) -> Result<Protocol, String> {
        if let Some((_, n)) = PROTOCOL_NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
        {
            return Ok(Protocol(*n));
        }
        match s.parse::<u16>() {
            Ok(n) => Protocol::from_number(u64::from(n)),
            Err(_) => Err(format!(
                "unknown protocol {s:?}: use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255"
            )),
        }
    }

    fn from_number(n: u64) -> Result<Protocol, String> {
        match u8::try_from(n) {
            Ok(p) if p > 0 => Ok(Protocol(p)),
            _ => Err(format!("protocol number {n} is out of range: use 1-255")),
        }
    }

    /// The usual name (`TCP`, …) if it has one.
    pub fn name(self) -> Option<&'static str> {
        PROTOCOL_NAMES
            .iter()
            .find(|(_, n)| *n == self.0)
            .map(|(name, _)| *name)
    }

    /// Whether rules with this protocol may match on ports.
    pub fn has_ports(self) -> bool {
        matches!(self.0, 6 | 17 | 132 | 136)
    }

    /// Whether this is ICMP or ICMPv6 (rules may then match on ICMP type and code).
    pub fn is_icmp(self) -> bool {
        matches!(self.0, 1 | 58)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.name() {
            Some(n) => s.serialize_str(n),
            None => s.serialize_u8(self.0),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Protocol;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a protocol name (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite) or number 1-255",
                )
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Protocol, E> {
                Protocol::from_number(n).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Protocol, E> {
                Protocol::from_number(u64::try_from(n).unwrap_or(u64::MAX)).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Protocol, E> {
                Protocol::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A port or an inclusive port range (`80`, `"8080:8090"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl PortRange {
    /// One port.
    pub fn single(p: u16) -> Self {
        PortRange { min: p, max: p }
    }

    /// Parses `80` or `80:90`.
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let s = s.trim();
        let (a, b) = s.split_once(':').unwrap_or((s, s));
        let min = port_number(a.trim())?;
        let max = port_number(b.trim())?;
        if min > max {
            return Err(format!(
                "port range {s:?} is reversed: write the lower port first ({max}:{min})"
            ));
        }
        Ok(PortRange { min, max })
    }
}

/// A port number 1-65535 given as text; names are refused with a hint.
pub(crate) fn port_number(s: &str) -> Result<u16, String> {
    match s.parse::<u64>() {
        Ok(n) => port_from_u64(n),
        Err(_) if !s.is_empty() && s.chars().any(|c| c.is_ascii_alphabetic()) => Err(format!(
            "named port {s:?} is not supported: write the port number"
        )),
        Err(_) => Err(format!(
            "{s:?} is not a port: write a number 1-65535 or a range such as \"8080:8090\""
        )),
    }
}

pub(crate) fn port_from_u64(n: u64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {n} is out of range: use 1-65535")),
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}:{}", self.min, self.max)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.min == self.max {
            s.serialize_u16(self.min)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number or a range such as \"8080:8090\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<PortRange, E> {
                port_from_u64(n).map(PortRange::single).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<PortRange, E> {
                Err(E::custom(format!("port {n} is out of range: use 1-65535")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PortRange, E> {
                PortRange::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// An IPv4 network written as `a.b.c.d/n` or a bare address (a /32). Host bits are cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub Ipv4Net);

impl Cidr {
    /// Parses `10.0.0.0/8`, `10.1.2.3/16` (becomes 10.1.0.0/16) or `10.1.2.3` (a /32).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        if let Ok(net) = s.parse::<Ipv4Net>() {
            return Ok(Cidr(net.trunc()));
        }
        if let Ok(addr) = s.parse::<std::net::Ipv4Addr>() {
            return Ok(Cidr(Ipv4Net::from(addr)));
        }
        let addr_part = s.split('/').next().unwrap_or(s);
        if addr_part.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()) {
            return Err(format!(
                "{s:?} is an IPv6 network; weft is IPv4-only: remove it or use an IPv4 CIDR"
            ));
        }
        Err(format!(
            "{s:?} is not an IPv4 CIDR: write one such as 10.0.0.0/8"
        ))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cidr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an IPv4 CIDR such as 10.0.0.0/8")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cidr, E> {
                Cidr::parse(s).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}
