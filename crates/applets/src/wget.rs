//! `wget [-q] [-O FILE] [-T SECS] URL`: HTTP/1.0 GET, busybox-style messages.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed `http://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 by default).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses an http URL; a missing scheme means http.
    pub fn parse(s: &str) -> Result<Url, String> {
        let rest = match s.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "unsupported URL scheme '{scheme}' in '{s}' (only http://)"
                ))
            }
            None => s,
        };
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h
                .split_once(']')
                .ok_or_else(|| format!("bad address in '{s}'"))?;
            (h, p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| format!("bad port in '{s}'"))?,
            None => 80,
        };
        if host.is_empty() {
            return Err(format!("bad URL '{s}': no host"));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path: path.split('#').next().unwrap_or("/").to_string(),
        })
    }

    /// The value of the Host header.
    pub fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// Opens a connection to the URL's host, trying each address; the error is the message to
/// print after `wget: `.
fn connect(url: &Url, timeout: Duration, log: &mut dyn Write) -> Result<TcpStream, String> {
    let ips: Vec<IpAddr> = match url.host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => crate::resolve::resolve_ipv4(&url.host)
            .map_err(|_| format!("bad address '{}'", url.host))?
            .into_iter()
            .map(IpAddr::V4)
            .collect(),
    };
    let mut last = String::new();
    for ip in ips {
        let sa = SocketAddr::new(ip, url.port);
        let _ = writeln!(log, "Connecting to {} ({sa})", url.host);
        match TcpStream::connect_timeout(&sa, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => {
                last = format!(
                    "can't connect to remote host ({ip}): {}",
                    crate::os_err_msg(&e)
                )
            }
        }
    }
    Err(last)
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Fetches `url` (following up to 20 redirects) and writes the body to `out`; progress
/// messages go to `log`. The error is the message to print after `wget: `.
pub fn fetch(
    url: &str,
    timeout: Duration,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<(), String> {
    let mut url = Url::parse(url)?;
    for _ in 0..20 {
        let mut s = connect(&url, timeout, log)?;
        s.set_read_timeout(Some(timeout))
            .and_then(|_| s.set_write_timeout(Some(timeout)))
            .map_err(|e| format!("socket setup: {}", crate::os_err_msg(&e)))?;
        let req = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: Wget\r\nAccept: */*\r\n\
             Connection: close\r\n\r\n",
            url.path,
            url.host_header()
        );
        s.write_all(req.as_bytes()).map_err(|e| io_msg(&e))?;
        let (head, rest) = read_head(&mut s)?;
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or("").to_string();
        let code: u16 = status
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad response from server: '{status}'"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if matches!(code, 301 | 302 | 303 | 307 | 308) {
            if let Some(loc) = header("location") {
                url = if loc.starts_with('/') {
                    Url { path: loc, ..url }
                } else {
                    Url::parse(&loc)?
                };
                continue;
            }
        }
        if !(200..300).contains(&code) {
            return Err(format!("server returned error: {status}"));
        }
        let len: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
        let mut body_in = (&rest[..]).chain(s);
        let copied = match len {
            Some(n) => io::copy(&mut (&mut body_in).take(n), out),
            None => io::copy(&mut body_in, out),
        };
        let copied = copied.map_err(|e| io_msg(&e))?;
        if len.is_some_and(|n| copied < n) {
            return Err("connection closed prematurely".into());
        }
        out.flush().map_err(|e| io_msg(&e))?;
        return Ok(());
    }
    Err("too many redirections".into())
}

fn io_msg(e: &io::Error) -> String {
    if timed_out(e) {
        "download timed out".into()
    } else {
        format!("error in transfer: {}", crate::os_err_msg(e))
    }
}

/// Reads the response head; returns it and the body bytes already read.
fn read_head(s: &mut TcpStream) -> Result<(String, Vec<u8>), String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).into_owned();
            return Ok((head, buf[i + 4..].to_vec()));
        }
        if buf.len() > 64 * 1024 {
            return Err("response header too long".into());
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                return Err(if buf.is_empty() {
                    "error getting response: Connection reset by peer".into()
                } else {
                    "bad response from server: header not terminated".into()
                })
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_msg(&e)),
        }
    }
}

/// The applet.
pub fn main(args: &[String]) -> i32 {
    let o = match crate::getopt::parse(
        args,
        "qO:T:U:Ys:c",
        &[
            ("quiet", 'q'),
            ("output-document", 'O'),
            ("timeout", 'T'),
            ("user-agent", 'U'),
            ("spider", 's'),
        ],
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("wget: {e}\nUsage: wget [-q] [-O FILE] [-T SEC] URL");
            return 1;
        }
    };
    let Some(url) = o.operands.first() else {
        eprintln!("wget: missing URL\nUsage: wget [-q] [-O FILE] [-T SEC] URL");
        return 1;
    };
    let timeout = match o.value('T') {
        Some(v) => match crate::getopt::seconds(v).filter(|d| !d.is_zero()) {
            Some(d) => d,
            None => {
                eprintln!("wget: invalid timeout '{v}'");
                return 1;
            }
        },
        None => Duration::from_secs(10),
    };
    let quiet = o.has('q');
    let mut log: Box<dyn Write> = if quiet {
        Box::new(io::sink())
    } else {
        Box::new(io::stderr())
    };
    let target = match o.value('O') {
        Some(f) => f.to_string(),
        None => {
            let path = Url::parse(url).map(|u| u.path).unwrap_or_default();
            let path = path.split('?').next().unwrap_or("");
            match path.rsplit('/').next() {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => "index.html".to_string(),
            }
        }
    };
    let res = if target == "-" {
        let _ = writeln!(log, "writing to stdout");
        let stdout = io::stdout();
        let mut lock = stdout.lock();
        fetch(url, timeout, &mut lock, &mut log)
    } else {
        let _ = writeln!(log, "saving to '{target}'");
        match File::create(&target) {
            Ok(mut f) => fetch(url, timeout, &mut f, &mut log),
            Err(e) => Err(format!("can't open '{target}': {}", crate::os_err_msg(&e))),
        }
    };
    match res {
        Ok(()) => {
            if target != "-" {
                let _ = writeln!(log, "'{target}' saved");
            }
            0
        }
        Err(e) => {
            eprintln!("wget: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://10.0.0.2:8080/a/b?x=1").unwrap();
        assert_eq!(
            u,
            Url {
                host: "10.0.0.2".into(),
                port: 8080,
                path: "/a/b?x=1".into()
            }
        );
        assert_eq!(u.host_header(), "10.0.0.2:8080");
        let u = Url::parse("web1").unwrap();
        assert_eq!(
            (u.port, u.path.as_str(), u.host_header()),
            (80, "/", "web1".into())
        );
        assert!(Url::parse("https://x/").is_err());
        assert!(Url::parse("http://x:y/").is_err());
    }

    #[test]
    fn refused_message() {
        // Bind then drop to find a closed loopback port.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut out = Vec::new();
        let err = fetch(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(2),
            &mut out,
            &mut io::sink(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            "can't connect to remote host (127.0.0.1): Connection refused"
        );
    }
}
