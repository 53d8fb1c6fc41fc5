//! `nslookup NAME [SERVER]`: A records (or PTR for an IPv4 address), busybox-style output.

use crate::dns::{self, RData};
use crate::resolve::{self, LookupError, ResolvConf};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

/// Parses SERVER: `IP`, `IP:PORT` or a host name.
pub fn server_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    resolve::resolve_ipv4(s)
        .ok()
        .and_then(|v| v.first().copied())
        .map(|ip| SocketAddr::new(IpAddr::V4(ip), 53))
        .ok_or_else(|| format!("can't resolve '{s}'"))
}

/// Looks `name` up and writes the busybox-style report; returns the exit code.
pub fn run(rc: &ResolvConf, server: Option<SocketAddr>, name: &str, out: &mut dyn Write) -> i32 {
    let shown = server.or_else(|| rc.nameservers.first().copied());
    if let Some(s) = shown {
        let _ = writeln!(out, "Server:\t\t{}\nAddress:\t{s}\n", s.ip());
    }
    let reverse = name.parse::<Ipv4Addr>().ok();
    let (qname, qtype) = match reverse {
        Some(ip) => (format!("{}.", dns::reverse_name(ip)), dns::TYPE_PTR),
        None => (name.to_string(), dns::TYPE_A),
    };
    let code = match resolve::lookup(rc, server, &qname, qtype) {
        Ok(ans) => {
            for r in &ans.message.answers {
                let _ = match &r.data {
                    RData::Cname(c) => writeln!(out, "{}\tcanonical name = {c}", r.name),
                    RData::A(ip) => writeln!(out, "Name:\t{}\nAddress: {ip}", r.name),
                    RData::Ptr(p) => writeln!(out, "{}\tname = {p}", r.name),
                    RData::Other(_) => Ok(()),
                };
            }
            0
        }
        Err(LookupError::NxDomain) => {
            let _ = writeln!(out, "** server can't find {name}: NXDOMAIN");
            1
        }
        Err(LookupError::NoAnswer) => {
            let _ = writeln!(out, "*** Can't find {name}: No answer");
            1
        }
        Err(LookupError::Rcode(c)) => {
            let _ = writeln!(out, "** server can't find {name}: {}", dns::rcode_name(c));
            1
        }
        Err(LookupError::Io(_)) => {
            let _ = writeln!(out, ";; connection timed out; no servers could be reached");
            1
        }
        Err(e) => {
            let _ = writeln!(out, "nslookup: {e}");
            1
        }
    };
    let _ = writeln!(out);
    let _ = out.flush();
    code
}

/// The applet.
pub fn main(args: &[String]) -> i32 {
    let o = match crate::getopt::parse(args, "", &[]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("nslookup: {e}\nUsage: nslookup NAME [SERVER]");
            return 1;
        }
    };
    let (name, server) = match o.operands.as_slice() {
        [n] => (n, None),
        [n, s] => match server_addr(s) {
            Ok(a) => (n, Some(a)),
            Err(e) => {
                eprintln!("nslookup: {e}");
                return 1;
            }
        },
        _ => {
            eprintln!("Usage: nslookup NAME [SERVER]");
            return 1;
        }
    };
    let rc = ResolvConf::load(Path::new(resolve::RESOLV_CONF));
    run(&rc, server, name, &mut std::io::stdout())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Message, Record, CLASS_IN};
    use std::net::UdpSocket;

    /// A one-shot loopback DNS server: answers web1.lab with 10.0.0.2, the PTR of 10.0.0.2
    /// with web1.lab, anything else with NXDOMAIN.
    fn server(queries: usize) -> SocketAddr {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        std::thread::spawn(move || {
            for _ in 0..queries {
                let mut buf = [0u8; 512];
                let (n, peer) = srv.recv_from(&mut buf).unwrap();
                let q = Message::decode(&buf[..n]).unwrap();
                let mut a = q.clone();
                a.response = true;
                let qn = q.questions[0].name.as_str();
                let data = match qn {
                    "web1.lab" => Some(RData::A(Ipv4Addr::new(10, 0, 0, 2))),
                    "2.0.0.10.in-addr.arpa" => Some(RData::Ptr("web1.lab".into())),
                    _ => None,
                };
                match data {
                    Some(d) => a.answers.push(Record {
                        name: qn.into(),
                        rtype: q.questions[0].qtype,
                        class: CLASS_IN,
                        ttl: 5,
                        data: d,
                    }),
                    None => a.rcode = dns::RCODE_NXDOMAIN,
                }
                srv.send_to(&a.encode().unwrap(), peer).unwrap();
            }
        });
        addr
    }

    #[test]
    fn forward_reverse_and_nxdomain() {
        let rc = ResolvConf::parse("");
        let s = server(3);
        let mut out = Vec::new();
        assert_eq!(run(&rc, Some(s), "web1.lab", &mut out), 0);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(&format!("Server:\t\t127.0.0.1\nAddress:\t{s}\n")),
            "{text}"
        );
        assert!(
            text.contains("Name:\tweb1.lab\nAddress: 10.0.0.2\n"),
            "{text}"
        );

        let mut out = Vec::new();
        assert_eq!(run(&rc, Some(s), "10.0.0.2", &mut out), 0);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("2.0.0.10.in-addr.arpa\tname = web1.lab\n"),
            "{text}"
        );

        let mut out = Vec::new();
        assert_eq!(run(&rc, Some(s), "nope.lab", &mut out), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("** server can't find nope.lab: NXDOMAIN"),
            "{text}"
        );
    }
}
