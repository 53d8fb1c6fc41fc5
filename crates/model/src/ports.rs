//! Published ports (`weft run -p HOSTPORT:PORT[/tcp|udp]`): one store record per node, protocol
//! and host port, so that claiming a port is one compare-and-swap create.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortProto {
    Tcp,
    Udp,
}

impl PortProto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            PortProto::Tcp => 6,
            PortProto::Udp => 17,
        }
    }
}

impl std::fmt::Display for PortProto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PortProto::Tcp => "tcp",
            PortProto::Udp => "udp",
        })
    }
}

/// A container port published on its node's addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub node: String,
    pub proto: PortProto,
    pub host_port: u16,
    /// The container that owns the port, and its address and port.
    pub workload: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<Ipv4Addr>,
    pub container_port: u16,
}

impl PublishedPort {
    /// Parses `HOSTPORT:PORT[/tcp|udp]` (the node and owner are filled in later).
    pub fn parse(s: &str) -> Result<PublishedPort, ValidationError> {
        let bad = |hint: &str| ValidationError::new(format!("published port {s:?}"), hint);
        let (ports, proto) = match s.split_once('/') {
            None => (s, PortProto::Tcp),
            Some((p, "tcp")) => (p, PortProto::Tcp),
            Some((p, "udp")) => (p, PortProto::Udp),
            Some(_) => return Err(bad("the protocol is tcp or udp")),
        };
        let (host, ctr) = ports
            .split_once(':')
            .ok_or_else(|| bad("write it as HOSTPORT:PORT[/tcp|udp], like 8080:80"))?;
        let port = |p: &str| -> Result<u16, ValidationError> {
            match p.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad("ports are numbers from 1 to 65535")),
            }
        };
        Ok(PublishedPort {
            node: String::new(),
            proto,
            host_port: port(host)?,
            workload: String::new(),
            ip: None,
            container_port: port(ctr)?,
        })
    }

    /// The store key of this port on its node.
    pub fn key(&self) -> String {
        crate::keys::published_port(&self.node, &self.proto.to_string(), self.host_port)
    }
}

/// Like `docker ps`: `0.0.0.0:8080->80/tcp`.
impl std::fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "0.0.0.0:{}->{}/{}",
            self.host_port, self.container_port, self.proto
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_shows_like_docker() {
        let mut p = PublishedPort::parse("8080:80").unwrap();
        assert_eq!((p.host_port, p.container_port), (8080, 80));
        assert_eq!(p.proto, PortProto::Tcp);
        assert_eq!(p.to_string(), "0.0.0.0:8080->80/tcp");
        p.node = "n1".into();
        assert_eq!(p.key(), "/weft/ports/n1/tcp-8080");
        let u = PublishedPort::parse("53:5353/udp").unwrap();
        assert_eq!(u.to_string(), "0.0.0.0:53->5353/udp");
        for bad in ["80", "0:80", "x:80", "8080:80/sctp", "70000:80", ""] {
            assert!(PublishedPort::parse(bad).is_err(), "{bad}");
        }
    }
}
