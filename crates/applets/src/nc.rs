//! `nc`, busybox-compatible flags:
//! `nc [-u] [-w S] [-v] HOST PORT` (stdin to the socket, the socket to stdout),
//! `nc -l [-k] [-u] [-v] [-s ADDR] [-p] PORT` (listen; print what is received),
//! `nc -z [-w S] [-v] HOST PORT` (only test that a TCP connect succeeds).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `-l`: listen instead of connecting.
    pub listen: bool,
    /// `-k`: keep listening after a connection ends.
    pub keep: bool,
    /// `-z`: only test the connection.
    pub zero: bool,
    /// `-u`: UDP.
    pub udp: bool,
    /// `-v`: say what happens on stderr.
    pub verbose: bool,
    /// `-w`: timeout for connects and final reads.
    pub timeout: Option<Duration>,
    /// Remote host (connect mode).
    pub host: Option<String>,
    /// Remote port (connect mode) or local port (listen mode).
    pub port: u16,
    /// `-s`: local address to bind.
    pub source: Option<IpAddr>,
}

const USAGE: &str =
    "Usage: nc [-u] [-w SEC] [-v] [-z] HOST PORT | nc -l [-k] [-u] [-v] [-s ADDR] [-p] PORT";

fn port_arg(p: &str) -> Result<u16, String> {
    p.parse::<u16>().map_err(|_| format!("bad port '{p}'"))
}

/// Parses the command line.
pub fn parse_args(args: &[String]) -> Result<Config, String> {
    let o = crate::getopt::parse(args, "lkzuvnw:p:s:i:", &[])?;
    let timeout = match o.value('w') {
        Some(v) => Some(crate::getopt::seconds(v).ok_or_else(|| format!("bad timeout '{v}'"))?),
        None => None,
    };
    let source = match o.value('s') {
        Some(v) => Some(v.parse().map_err(|_| format!("bad address '{v}'"))?),
        None => None,
    };
    let mut c = Config {
        listen: o.has('l'),
        keep: o.has('k'),
        zero: o.has('z'),
        udp: o.has('u'),
        verbose: o.has('v'),
        timeout,
        host: None,
        port: 0,
        source,
    };
    if c.listen {
        c.port = match (o.value('p'), o.operands.as_slice()) {
            (Some(p), _) => port_arg(p)?,
            (None, [p]) => port_arg(p)?,
            (None, [_, p]) => port_arg(p)?,
            _ => return Err(format!("listen mode needs a port\n{USAGE}")),
        };
    } else {
        match o.operands.as_slice() {
            [h, p] => {
                c.host = Some(h.clone());
                c.port = port_arg(p)?;
            }
            _ => return Err(format!("need HOST and PORT\n{USAGE}")),
        }
    }
    Ok(c)
}

/// Connects to `addr` within `timeout` (or the system's connect timeout).
pub fn probe(addr: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
    match timeout {
        Some(t) if !t.is_zero() => TcpStream::connect_timeout(&addr, t),
        _ => TcpStream::connect(addr),
    }
}

/// Like [`probe`], from a given local address (`-s`): bind, then connect within `timeout`.
pub fn probe_from(
    source: Ipv4Addr,
    addr: SocketAddr,
    timeout: Option<Duration>,
) -> io::Result<TcpStream> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let SocketAddr::V4(dst) = addr else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "IPv4 only"));
    };
    let fd = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    nix::sys::socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &nix::sys::socket::SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)),
    )?;
    // SAFETY: `fd` is a fresh, owned TCP socket handed over to the TcpStream.
    let stream = unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) };
    let Some(t) = timeout.filter(|t| !t.is_zero()) else {
        nix::sys::socket::connect(
            std::os::fd::AsRawFd::as_raw_fd(&stream),
            &nix::sys::socket::SockaddrIn::from(dst),
        )?;
        return Ok(stream);
    };
    stream.set_nonblocking(true)?;
    match nix::sys::socket::connect(
        std::os::fd::AsRawFd::as_raw_fd(&stream),
        &nix::sys::socket::SockaddrIn::from(dst),
    ) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&stream),
        nix::poll::PollFlags::POLLOUT,
    )];
    let ms = u16::try_from(t.as_millis()).unwrap_or(u16::MAX);
    if nix::poll::poll(&mut fds, ms)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "Connection timed out",
        ));
    }
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

fn resolve(host: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    crate::resolve::resolve_ipv4(host)
        .ok()
        .and_then(|v| v.first().copied())
        .map(IpAddr::V4)
        .ok_or_else(|| format!("bad address '{host}'"))
}

/// The applet.
pub fn main(args: &[String]) -> i32 {
    let cfg = match parse_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nc: {e}");
            return 1;
        }
    };
    let res = if cfg.listen {
        if cfg.udp {
            udp_listen(&cfg)
        } else {
            tcp_listen(&cfg)
        }
    } else {
        connect_mode(&cfg)
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nc: {e}");
            1
        }
    }
}

fn connect_mode(cfg: &Config) -> Result<i32, String> {
    let host = cfg.host.as_deref().unwrap_or("");
    let ip = resolve(host)?;
    let addr = SocketAddr::new(ip, cfg.port);
    if cfg.udp {
        let bind = SocketAddr::new(cfg.source.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 0);
        let s = UdpSocket::bind(bind).map_err(|e| format!("bind: {}", crate::os_err_msg(&e)))?;
        s.connect(addr)
            .map_err(|e| format!("{host} ({addr}): {}", crate::os_err_msg(&e)))?;
        if cfg.zero {
            let _ = s.send(&[]);
            if cfg.verbose {
                eprintln!("{host} ({addr}) open");
            }
            return Ok(0);
        }
        return udp_session(s, None, cfg.timeout).map(|_| 0);
    }
    let connected = match cfg.source {
        Some(IpAddr::V4(src)) => probe_from(src, addr, cfg.timeout),
        _ => probe(addr, cfg.timeout),
    };
    let s = match connected {
        Ok(s) => s,
        Err(e) => {
            if cfg.verbose || !cfg.zero {
                eprintln!("nc: {host} ({addr}): {}", crate::os_err_msg(&e));
            }
            return Ok(1);
        }
    };
    if cfg.zero {
        if cfg.verbose {
            eprintln!("{host} ({addr}) open");
        }
        return Ok(0);
    }
    let mut out = io::stdout();
    tcp_session(s, Some(Box::new(io::stdin())), true, cfg.timeout, &mut out)
        .map_err(|e| crate::os_err_msg(&e))?;
    Ok(0)
}

fn tcp_listen(cfg: &Config) -> Result<i32, String> {
    let ip = cfg.source.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let l = TcpListener::bind((ip, cfg.port))
        .map_err(|e| format!("bind {ip}:{}: {}", cfg.port, crate::os_err_msg(&e)))?;
    if cfg.verbose {
        if let Ok(a) = l.local_addr() {
            eprintln!("listening on {a} ...");
        }
    }
    let mut first = true;
    loop {
        let (s, peer) = l
            .accept()
            .map_err(|e| format!("accept: {}", crate::os_err_msg(&e)))?;
        if cfg.verbose {
            let local = s.local_addr().map(|a| a.to_string()).unwrap_or_default();
            eprintln!("connect to {local} from {peer}");
        }
        // Standard input can feed one connection only.
        let input: Option<Box<dyn Read + Send>> = if first {
            Some(Box::new(io::stdin()))
        } else {
            None
        };
        first = false;
        let mut out = io::stdout();
        if let Err(e) = tcp_session(s, input, false, None, &mut out) {
            eprintln!("nc: {peer}: {}", crate::os_err_msg(&e));
        }
        if !cfg.keep {
            return Ok(0);
        }
    }
}

/// Copies `input` to the socket (on a thread) and the socket to `out` until the peer closes.
/// With `shutdown_on_eof`, the end of `input` half-closes the connection; `final_timeout`
/// then bounds how long to wait for the peer's remaining data.
pub fn tcp_session(
    s: TcpStream,
    input: Option<Box<dyn Read + Send>>,
    shutdown_on_eof: bool,
    final_timeout: Option<Duration>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let input_done: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    if let Some(mut input) = input {
        let mut w = s.try_clone()?;
        let done = input_done.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if w.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
            if shutdown_on_eof {
                let _ = w.shutdown(Shutdown::Write);
                if let Ok(mut d) = done.lock() {
                    *d = Some(Instant::now());
                }
            }
        });
    }
    if final_timeout.is_some() {
        s.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    let mut r = &s;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                out.write_all(&buf[..n])?;
                out.flush()?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                let since = input_done.lock().ok().and_then(|d| *d);
                if let (Some(t0), Some(w)) = (since, final_timeout) {
                    if t0.elapsed() >= w {
                        return Ok(());
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn udp_listen(cfg: &Config) -> Result<i32, String> {
    let ip = cfg.source.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let s = UdpSocket::bind((ip, cfg.port))
        .map_err(|e| format!("bind {ip}:{}: {}", cfg.port, crate::os_err_msg(&e)))?;
    if cfg.verbose {
        if let Ok(a) = s.local_addr() {
            eprintln!("listening on {a} ...");
        }
    }
    udp_session(s, Some(Arc::new(Mutex::new(None))), None).map(|_| 0)
}

/// Sends stdin as datagrams (to the connected peer, or to the last sender when `peer` is
/// given) and prints every datagram received. Ends `timeout` after stdin ends, if given.
fn udp_session(
    s: UdpSocket,
    peer: Option<Arc<Mutex<Option<SocketAddr>>>>,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let w = s
        .try_clone()
        .map_err(|e| format!("socket: {}", crate::os_err_msg(&e)))?;
    let stdin_done = Arc::new(AtomicBool::new(false));
    let done = stdin_done.clone();
    let send_peer = peer.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64 * 1024];
        let mut input = io::stdin();
        while let Ok(n) = input.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = match &send_peer {
                None => w.send(&buf[..n]),
                Some(p) => match p.lock().ok().and_then(|g| *g) {
                    Some(to) => w.send_to(&buf[..n], to),
                    None => Ok(0),
                },
            };
        }
        done.store(true, Ordering::SeqCst);
    });
    if timeout.is_some() {
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    }
    let mut done_at: Option<Instant> = None;
    let mut buf = [0u8; 64 * 1024];
    let mut out = io::stdout();
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, from)) => {
                if let Some(p) = &peer {
                    if let Ok(mut g) = p.lock() {
                        *g = Some(from);
                    }
                }
                let _ = out.write_all(&buf[..n]).and_then(|_| out.flush());
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // An ICMP port unreachable for an earlier datagram: keep going.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(e) => return Err(crate::os_err_msg(&e)),
        }
        if let Some(t) = timeout {
            if stdin_done.load(Ordering::SeqCst) {
                let at = *done_at.get_or_insert_with(Instant::now);
                if at.elapsed() >= t {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args() {
        let c = parse_args(&s(&["-l", "-p", "8080"])).unwrap();
        assert!(c.listen && c.port == 8080);
        let c = parse_args(&s(&["-lk", "9000"])).unwrap();
        assert!(c.listen && c.keep && c.port == 9000);
        let c = parse_args(&s(&["-zv", "-w", "2", "10.0.0.2", "80"])).unwrap();
        assert!(c.zero && c.verbose);
        assert_eq!(c.timeout, Some(Duration::from_secs(2)));
        assert_eq!(c.host.as_deref(), Some("10.0.0.2"));
        assert!(parse_args(&s(&["host"])).is_err());
        assert!(parse_args(&s(&["-l"])).is_err());
    }

    #[test]
    fn zero_io_open_and_closed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = l.local_addr().unwrap().port();
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert_eq!(
            main(&s(&["-z", "-w", "2", "127.0.0.1", &open.to_string()])),
            0
        );
        assert_eq!(main(&s(&["-z", "127.0.0.1", &closed.to_string()])), 1);
    }

    #[test]
    fn session_copies_both_ways() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut got = Vec::new();
            c.read_to_end(&mut got).unwrap();
            c.write_all(b"pong\n").unwrap();
            got
        });
        let s = probe(addr, Some(Duration::from_secs(2))).unwrap();
        let mut out = Vec::new();
        let input: Box<dyn Read + Send> = Box::new(io::Cursor::new(b"ping\n".to_vec()));
        tcp_session(s, Some(input), true, Some(Duration::from_secs(5)), &mut out).unwrap();
        assert_eq!(server.join().unwrap(), b"ping\n");
        assert_eq!(out, b"pong\n");
    }
}
