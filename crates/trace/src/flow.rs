//! The packet being traced (addresses, protocol, ports, size, TTL) and its headers on a wire.

use std::net::Ipv4Addr;

use weft_netlink::format_mac;

use crate::model::{Packet, Proto};

/// Default TTL of packets a Linux namespace makes.
pub const DEFAULT_TTL: u8 = 64;

/// The packet of one leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: Proto,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub icmp_id: Option<u16>,
    /// IP total length.
    pub len: u16,
    pub ttl: u8,
    /// True for the answer (echo reply, SYN-ACK/RST, UDP answer).
    pub reply: bool,
    /// Set on the outer packet of a VXLAN tunnel.
    pub vni: Option<u32>,
}

impl Flow {
    /// The answer to this packet: addresses and ports swapped, fresh TTL.
    pub fn answer(&self) -> Flow {
        Flow {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            ttl: DEFAULT_TTL,
            reply: !self.reply,
            len: match self.proto {
                // An echo reply carries the request's payload; a SYN-ACK/RST is small.
                Proto::Icmp => self.len,
                Proto::Tcp => 60,
                Proto::Udp => self.len,
            },
            ..self.clone()
        }
    }

    /// The transport part of a tcpdump line.
    pub fn summary(&self) -> String {
        let payload = self.len.saturating_sub(20);
        if let Some(vni) = self.vni {
            return format!("VXLAN, flags [I] (0x08), vni {vni}");
        }
        match (self.proto, self.reply) {
            (Proto::Icmp, r) => format!(
                "ICMP echo {}, id {}, seq 1, length {payload}",
                if r { "reply" } else { "request" },
                self.icmp_id.unwrap_or(0)
            ),
            (Proto::Tcp, false) => "Flags [S], length 0".into(),
            (Proto::Tcp, true) => "Flags [S.] (or [R.] when nothing listens), length 0".into(),
            (Proto::Udp, _) => format!("UDP, length {}", payload.saturating_sub(8)),
        }
    }

    /// `IP[.port]` as tcpdump writes it.
    fn endpoint(ip: Ipv4Addr, port: Option<u16>) -> String {
        match port {
            Some(p) => format!("{ip}.{p}"),
            None => ip.to_string(),
        }
    }

    /// The headers on a wire, with `rewritten` fields marked by `*` in the line.
    pub fn packet(
        &self,
        src_mac: Option<[u8; 6]>,
        dst_mac: Option<[u8; 6]>,
        rewritten: Vec<String>,
    ) -> Packet {
        self.packet_with(src_mac, dst_mac, rewritten, None)
    }

    /// Like [`Flow::packet`], carrying an encapsulated frame.
    pub fn packet_with(
        &self,
        src_mac: Option<[u8; 6]>,
        dst_mac: Option<[u8; 6]>,
        rewritten: Vec<String>,
        inner: Option<Packet>,
    ) -> Packet {
        let mac = |m: Option<[u8; 6]>| m.map(|m| format_mac(&m)).unwrap_or_else(|| "?".into());
        let mut p = Packet {
            src_mac: mac(src_mac),
            dst_mac: mac(dst_mac),
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            ttl: self.ttl,
            len: self.len,
            sport: self.sport,
            dport: self.dport,
            icmp_id: self.icmp_id,
            info: self.summary(),
            rewritten,
            inner: inner.map(Box::new),
            line: String::new(),
        };
        p.line = line(&p);
        p
    }
}

/// The tcpdump-like line of a packet (and of the frame it carries).
pub fn line(p: &Packet) -> String {
    let mark = |field: &str| {
        if p.rewritten.iter().any(|r| r == field) {
            "*"
        } else {
            ""
        }
    };
    let mut s = format!(
        "{}{} > {}{}, ethertype IPv4, {}{} > {}{}: {} (ttl {}{})",
        p.src_mac,
        mark("src_mac"),
        p.dst_mac,
        mark("dst_mac"),
        Flow::endpoint(p.src, p.sport),
        mark("src"),
        Flow::endpoint(p.dst, p.dport),
        mark("dst"),
        p.info,
        p.ttl,
        mark("ttl"),
    );
    if let Some(i) = &p.inner {
        s.push_str(&format!(" | inner{}: {}", mark("encap"), line(i)));
    }
    s
}

/// The same packet as the next device sees it: nothing marked as rewritten.
pub fn unmarked(p: &Packet) -> Packet {
    let mut q = p.clone();
    q.rewritten.clear();
    if let Some(i) = q.inner.as_mut() {
        **i = unmarked(i);
    }
    q.line = line(&q);
    q
}

/// The fields that differ between the frame as it arrived and as it leaves.
pub fn rewritten(
    rx: Option<&Packet>,
    tx_src_mac: &str,
    tx_dst_mac: &str,
    tx_ttl: u8,
) -> Vec<String> {
    let Some(rx) = rx else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if rx.src_mac != tx_src_mac {
        out.push("src_mac".to_string());
    }
    if rx.dst_mac != tx_dst_mac {
        out.push("dst_mac".to_string());
    }
    if rx.ttl != tx_ttl {
        out.push("ttl".to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_like_line_marks_rewritten_fields() {
        let f = Flow {
            src: "10.244.0.1".parse().unwrap(),
            dst: "10.244.0.64".parse().unwrap(),
            proto: Proto::Icmp,
            sport: None,
            dport: None,
            icmp_id: Some(7),
            len: 84,
            ttl: 63,
            reply: false,
            vni: None,
        };
        let p = f.packet(
            Some([2, 0, 0, 0, 0, 11]),
            Some([2, 0, 0, 0, 0, 12]),
            vec!["src_mac".into(), "dst_mac".into(), "ttl".into()],
        );
        assert_eq!(
            p.line,
            "02:00:00:00:00:0b* > 02:00:00:00:00:0c*, ethertype IPv4, 10.244.0.1 > 10.244.0.64: ICMP echo request, id 7, seq 1, length 64 (ttl 63*)"
        );
        let r = f.answer();
        assert_eq!(r.src, f.dst);
        assert!(r.summary().starts_with("ICMP echo reply"));
        let t = Flow {
            proto: Proto::Tcp,
            sport: Some(40000),
            dport: Some(80),
            icmp_id: None,
            ..f
        };
        assert!(t
            .packet(None, None, vec![])
            .line
            .contains("10.244.0.1.40000 > 10.244.0.64.80: Flags [S]"));
    }
}
