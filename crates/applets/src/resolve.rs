//! Name resolution for the applets: numeric addresses, `/etc/hosts`, then DNS through the
//! nameservers of `/etc/resolv.conf` (with its `search` list and `ndots`), IPv4 only.

use crate::dns::{self, Message, RData};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::Duration;

/// The hosts file.
pub const HOSTS: &str = "/etc/hosts";
/// The resolver configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// What `/etc/resolv.conf` says.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvConf {
    /// Nameservers in order (127.0.0.1:53 if none is configured, like glibc).
    pub nameservers: Vec<SocketAddr>,
    /// Search domains.
    pub search: Vec<String>,
    /// Names with fewer dots than this are tried with the search domains first.
    pub ndots: usize,
    /// Time to wait for one answer.
    pub timeout: Duration,
    /// Rounds over the nameservers.
    pub attempts: u32,
}

impl ResolvConf {
    /// Parses the text of a resolv.conf.
    pub fn parse(text: &str) -> ResolvConf {
        let mut rc = ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                        rc.nameservers.push(SocketAddr::new(ip, 53));
                    }
                }
                Some("search") | Some("domain") => {
                    rc.search = words.map(|w| w.trim_end_matches('.').to_string()).collect();
                }
                Some("options") => {
                    for w in words {
                        if let Some(v) = w.strip_prefix("ndots:").and_then(|v| v.parse().ok()) {
                            rc.ndots = v;
                        } else if let Some(v) =
                            w.strip_prefix("timeout:").and_then(|v| v.parse().ok())
                        {
                            rc.timeout = Duration::from_secs(v);
                        } else if let Some(v) =
                            w.strip_prefix("attempts:").and_then(|v| v.parse().ok())
                        {
                            rc.attempts = v;
                        }
                    }
                }
                _ => {}
            }
        }
        if rc.nameservers.is_empty() {
            rc.nameservers
                .push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        rc.timeout = rc
            .timeout
            .clamp(Duration::from_secs(1), Duration::from_secs(30));
        rc.attempts = rc.attempts.clamp(1, 5);
        rc
    }

    /// Reads `path`; a missing file gives the defaults.
    pub fn load(path: &Path) -> ResolvConf {
        ResolvConf::parse(&std::fs::read_to_string(path).unwrap_or_default())
    }

    /// The names to try for `name`, in order (search list applied as glibc does).
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(abs) = name.strip_suffix('.') {
            return vec![abs.to_string()];
        }
        let searched = self.search.iter().map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.to_string()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.to_string())).collect()
        }
    }
}

/// Why a lookup failed.
#[derive(Debug)]
pub enum LookupError {
    /// The name does not exist (the server answered NXDOMAIN).
    NxDomain,
    /// The name exists but has no record of the asked type.
    NoAnswer,
    /// The server answered with another error code.
    Rcode(u8),
    /// No server answered.
    Io(io::Error),
    /// The answer was malformed.
    Malformed(String),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NxDomain => write!(f, "NXDOMAIN"),
            LookupError::NoAnswer => write!(f, "no answer"),
            LookupError::Rcode(c) => write!(f, "{}", dns::rcode_name(*c)),
            LookupError::Io(e) => write!(f, "{}", crate::os_err_msg(e)),
            LookupError::Malformed(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for LookupError {}

/// Looks `name` up in a hosts file (case-insensitive, IPv4 entries only).
pub fn hosts_lookup(path: &Path, name: &str) -> Vec<Ipv4Addr> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let name = name.trim_end_matches('.');
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let Some(Ok(ip)) = words.next().map(str::parse::<Ipv4Addr>) else {
            continue;
        };
        if words.any(|w| w.eq_ignore_ascii_case(name)) && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// The first name a hosts file gives for `ip`.
pub fn hosts_reverse(path: &Path, ip: Ipv4Addr) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next()?.parse::<Ipv4Addr>().ok()? == ip {
            words.next().map(str::to_string)
        } else {
            None
        }
    })
}

/// Sends one query to `server` (UDP, falling back to TCP when truncated) and returns the
/// response, which is checked to match the query.
pub fn query(
    server: SocketAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
    attempts: u32,
) -> Result<Message, LookupError> {
    let id = random_u16();
    let q = Message::query(id, name, qtype);
    let wire = q
        .encode()
        .map_err(|e| LookupError::Malformed(e.to_string()))?;
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).map_err(LookupError::Io)?;
    sock.connect(server).map_err(LookupError::Io)?;
    sock.set_read_timeout(Some(timeout))
        .map_err(LookupError::Io)?;
    let mut last = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
    let mut buf = vec![0u8; 4096];
    for _ in 0..attempts.max(1) {
        if let Err(e) = sock.send(&wire) {
            last = e;
            continue;
        }
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let Ok(m) = Message::decode(&buf[..n]) else {
                        continue;
                    };
                    if m.id != id || !m.response || m.questions != q.questions {
                        continue;
                    }
                    if m.truncated {
                        return query_tcp(server, &wire, &q, timeout);
                    }
                    return Ok(m);
                }
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
    }
    if matches!(last.kind(), io::ErrorKind::WouldBlock) {
        last = io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
    }
    Err(LookupError::Io(last))
}

fn query_tcp(
    server: SocketAddr,
    wire: &[u8],
    q: &Message,
    timeout: Duration,
) -> Result<Message, LookupError> {
    let mut s = TcpStream::connect_timeout(&server, timeout).map_err(LookupError::Io)?;
    s.set_read_timeout(Some(timeout)).map_err(LookupError::Io)?;
    let len =
        u16::try_from(wire.len()).map_err(|_| LookupError::Malformed("query too long".into()))?;
    let mut msg = len.to_be_bytes().to_vec();
    msg.extend_from_slice(wire);
    s.write_all(&msg).map_err(LookupError::Io)?;
    let mut lb = [0u8; 2];
    s.read_exact(&mut lb).map_err(LookupError::Io)?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lb))];
    s.read_exact(&mut buf).map_err(LookupError::Io)?;
    let m = Message::decode(&buf).map_err(|e| LookupError::Malformed(e.to_string()))?;
    if m.id != q.id || m.questions != q.questions {
        return Err(LookupError::Malformed(
            "answer does not match the query".into(),
        ));
    }
    Ok(m)
}

/// The result of a DNS lookup over the search list: the name that matched and its answer.
pub struct Answer {
    /// The fully qualified name that was found.
    pub name: String,
    /// The server that answered.
    pub server: SocketAddr,
    /// The response.
    pub message: Message,
}

/// Looks up `name` (type `qtype`) through `rc`, trying the search list; the first candidate
/// with records of that type wins. `server` overrides the configured nameservers.
pub fn lookup(
    rc: &ResolvConf,
    server: Option<SocketAddr>,
    name: &str,
    qtype: u16,
) -> Result<Answer, LookupError> {
    let servers = match server {
        Some(s) => vec![s],
        None => rc.nameservers.clone(),
    };
    let mut err = LookupError::NxDomain;
    for cand in rc.candidates(name) {
        let mut answered = None;
        let mut last_io = None;
        for s in &servers {
            match query(*s, &cand, qtype, rc.timeout, rc.attempts) {
                Ok(m) => {
                    answered = Some((*s, m));
                    break;
                }
                Err(e) => last_io = Some(e),
            }
        }
        let Some((s, m)) = answered else {
            // No server answered: give up rather than wait again for every candidate.
            return Err(last_io.unwrap_or(LookupError::NxDomain));
        };
        match m.rcode {
            dns::RCODE_NOERROR => {
                if m.answers.iter().any(|r| r.rtype == qtype) {
                    return Ok(Answer {
                        name: cand,
                        server: s,
                        message: m,
                    });
                }
                err = LookupError::NoAnswer;
            }
            dns::RCODE_NXDOMAIN => {}
            c => err = LookupError::Rcode(c),
        }
    }
    Err(err)
}

/// IPv4 addresses of `host`: a literal, then the hosts file, then DNS.
pub fn resolve_ipv4(host: &str) -> Result<Vec<Ipv4Addr>, LookupError> {
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(vec![ip]);
    }
    let from_hosts = hosts_lookup(Path::new(HOSTS), host);
    if !from_hosts.is_empty() {
        return Ok(from_hosts);
    }
    let rc = ResolvConf::load(Path::new(RESOLV_CONF));
    let ans = lookup(&rc, None, host, dns::TYPE_A)?;
    let ips: Vec<Ipv4Addr> = ans
        .message
        .answers
        .iter()
        .filter_map(|r| match r.data {
            RData::A(ip) => Some(ip),
            _ => None,
        })
        .collect();
    if ips.is_empty() {
        Err(LookupError::NoAnswer)
    } else {
        Ok(ips)
    }
}

/// A random 16-bit number for query ids.
fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom writes at most b.len() bytes into the buffer we own.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 2 {
        u16::from_ne_bytes(b)
    } else {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        (t ^ std::process::id()) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{Record, CLASS_IN, TYPE_A};

    #[test]
    fn parse_resolv_conf() {
        let rc = ResolvConf::parse(
            "# c\nnameserver 10.96.0.10\nsearch default.svc cluster.local\noptions ndots:5 timeout:2\n",
        );
        assert_eq!(rc.nameservers, vec!["10.96.0.10:53".parse().unwrap()]);
        assert_eq!(rc.ndots, 5);
        assert_eq!(rc.timeout, Duration::from_secs(2));
        assert_eq!(
            rc.candidates("web"),
            vec!["web.default.svc", "web.cluster.local", "web"]
        );
        assert_eq!(rc.candidates("a.b."), vec!["a.b"]);
        let rc = ResolvConf::parse("");
        assert_eq!(rc.nameservers, vec!["127.0.0.1:53".parse().unwrap()]);
        assert_eq!(rc.candidates("a.b"), vec!["a.b"]);
    }

    #[test]
    fn hosts_file() {
        let dir = std::env::temp_dir().join(format!("weft-applets-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("hosts");
        std::fs::write(
            &p,
            "127.0.0.1 localhost\n10.0.0.2\tweb1 web1.lab # x\n::1 localhost\n",
        )
        .unwrap();
        assert_eq!(
            hosts_lookup(&p, "WEB1.lab"),
            vec![Ipv4Addr::new(10, 0, 0, 2)]
        );
        assert!(hosts_lookup(&p, "nope").is_empty());
        assert_eq!(
            hosts_reverse(&p, Ipv4Addr::new(10, 0, 0, 2)).as_deref(),
            Some("web1")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn query_against_loopback_server() {
        let srv = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = srv.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, peer) = srv.recv_from(&mut buf).unwrap();
            let q = Message::decode(&buf[..n]).unwrap();
            let mut a = q.clone();
            a.response = true;
            if q.questions[0].name == "web1.lab" {
                a.answers.push(Record {
                    name: "web1.lab".into(),
                    rtype: TYPE_A,
                    class: CLASS_IN,
                    ttl: 1,
                    data: RData::A(Ipv4Addr::new(10, 0, 0, 2)),
                });
            } else {
                a.rcode = dns::RCODE_NXDOMAIN;
            }
            srv.send_to(&a.encode().unwrap(), peer).unwrap();
        });
        let rc = ResolvConf::parse("search lab\n");
        let ans = lookup(&rc, Some(addr), "web1", TYPE_A).unwrap();
        assert_eq!(ans.name, "web1.lab");
        assert_eq!(
            ans.message.answers[0].data,
            RData::A(Ipv4Addr::new(10, 0, 0, 2))
        );
        t.join().unwrap();
    }
}
