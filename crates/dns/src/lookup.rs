//! What a name means in a zone, for one asker, before any DNS message is involved.

use std::net::Ipv4Addr;

use crate::zone::Zone;
use crate::CLUSTER_DOMAIN;

/// The outcome of looking a name up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hit {
    /// The name exists and has this address.
    Addr(Ipv4Addr),
    /// The name is a reverse name with this target (a fully qualified name, final dot included).
    Ptr(String),
    /// The name exists but has no address (a workload that has none yet).
    NoData,
    /// The name is weft's to answer and does not exist (for this asker).
    NxDomain,
    /// Not a weft name: forward it or refuse.
    NotOurs,
}

impl Zone {
    /// Looks up `name` (lowercase, no final dot) for `asker`.
    pub(crate) fn lookup(&self, asker: Ipv4Addr, name: &str) -> Hit {
        if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
            return self.lookup_reverse(asker, rest);
        }
        if name.is_empty() || name == "in-addr.arpa" || name == "arpa" {
            return Hit::NotOurs;
        }
        // A container by its own name (which may contain dots).
        if let Some(hit) = self.workload_hit(asker, name, None) {
            return hit;
        }
        // A container qualified by its network: NAME.NETWORK.
        if let Some((short, network)) = name.rsplit_once('.') {
            if self.networks.contains(network) {
                if let Some(hit) = self.workload_hit(asker, short, Some(network)) {
                    return hit;
                }
            }
        }
        if let Some(ip) = self.service_addr(name) {
            return Hit::Addr(ip);
        }
        if self.is_authority(name) {
            Hit::NxDomain
        } else {
            Hit::NotOurs
        }
    }

    /// The record of workload `name` if the asker may see it (and it is in `network`, when
    /// given); `None` when there is no such workload for this asker.
    fn workload_hit(&self, asker: Ipv4Addr, name: &str, network: Option<&str>) -> Option<Hit> {
        let w = self.workloads.get(name)?;
        if network.is_some_and(|n| n != w.network) || !self.visible(asker, &w.network) {
            return None;
        }
        Some(w.ip.map_or(Hit::NoData, Hit::Addr))
    }

    /// The cluster IP of a service name: `NAME`, `NAME.NS`, `NAME.NS.svc`,
    /// `NAME.NS.svc.cluster.local`. A bare `NAME` means the service in namespace `default`, or
    /// else in the first namespace (in name order) that has one of that name.
    fn service_addr(&self, name: &str) -> Option<Ipv4Addr> {
        let qualified = name
            .strip_suffix(&format!(".svc.{CLUSTER_DOMAIN}"))
            .or_else(|| name.strip_suffix(".svc"))
            .unwrap_or(name);
        match qualified.split_once('.') {
            Some((svc, ns)) => self
                .services
                .get(&(ns.to_string(), svc.to_string()))
                .map(|s| s.cluster_ip),
            None => self
                .services
                .get(&("default".to_string(), qualified.to_string()))
                .or_else(|| {
                    self.services
                        .iter()
                        .find(|((_, svc), _)| svc == qualified)
                        .map(|(_, s)| s)
                })
                .map(|s| s.cluster_ip),
        }
    }

    /// Whether an unknown `name` is weft's to deny (NXDOMAIN) rather than someone else's: single
    /// labels (container names), the cluster domain, and names under a known network or
    /// namespace.
    fn is_authority(&self, name: &str) -> bool {
        if !name.contains('.') {
            return true;
        }
        if name == CLUSTER_DOMAIN || name.ends_with(&format!(".{CLUSTER_DOMAIN}")) {
            return true;
        }
        let under_namespace = |ns: &str| self.namespaces.contains(ns);
        if let Some((_, last)) = name.rsplit_once('.') {
            if self.networks.contains(last) || under_namespace(last) {
                return true;
            }
        }
        if let Some(rest) = name.strip_suffix(".svc") {
            if let Some((_, ns)) = rest.rsplit_once('.') {
                return under_namespace(ns);
            }
            return under_namespace(rest);
        }
        false
    }

    /// Reverse lookup of `d.c.b.a` (the part before `.in-addr.arpa`).
    fn lookup_reverse(&self, asker: Ipv4Addr, rest: &str) -> Hit {
        let Some(ip) = parse_reverse(rest) else {
            return Hit::NotOurs;
        };
        if let Some(key) = self.workload_ips.get(&ip) {
            if let Some(w) = self.workloads.get(key) {
                if self.visible(asker, &w.network) {
                    return Hit::Ptr(format!("{}.", w.name));
                }
                return Hit::NxDomain;
            }
        }
        if let Some(s) = self.service_ips.get(&ip).and_then(|k| self.services.get(k)) {
            return Hit::Ptr(format!("{}.", s.fqdn()));
        }
        if self.reverse_ranges.iter().any(|r| r.contains(&ip)) {
            Hit::NxDomain
        } else {
            Hit::NotOurs
        }
    }
}

/// `4.3.2.1` → 1.2.3.4; anything but four decimal octets → `None`.
fn parse_reverse(rest: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut n = 0;
    for label in rest.split('.') {
        if n == 4 || label.is_empty() || label.len() > 3 || label.starts_with('+') {
            return None;
        }
        octets[3 - n] = label.parse().ok()?;
        n += 1;
    }
    (n == 4).then(|| Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::parse_reverse;

    #[test]
    fn reverse_names_parse() {
        assert_eq!(
            parse_reverse("4.3.2.1"),
            Some("1.2.3.4".parse().expect("ip"))
        );
        assert_eq!(parse_reverse("3.2.1"), None);
        assert_eq!(parse_reverse("5.4.3.2.1"), None);
        assert_eq!(parse_reverse("256.3.2.1"), None);
        assert_eq!(parse_reverse("a.3.2.1"), None);
        assert_eq!(parse_reverse(""), None);
    }
}
