//! `ping [-c N] [-W S] [-i S] [-w S] [-s SIZE] [-t TTL] [-q] HOST`, iputils-style output.

pub mod format;
pub mod socket;

use format::Stats;
use socket::{Event, IcmpSocket};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// What to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Stop after this many requests (`-c`); unlimited if None.
    pub count: Option<u64>,
    /// Time between requests (`-i`, default 1 s).
    pub interval: Duration,
    /// Time to wait for the last replies (`-W`, default 10 s).
    pub timeout: Duration,
    /// Stop after this long whatever happens (`-w`).
    pub deadline: Option<Duration>,
    /// Only print the header and the statistics (`-q`).
    pub quiet: bool,
    /// Payload bytes (`-s`, default 56).
    pub size: usize,
    /// IP TTL of the requests (`-t`).
    pub ttl: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            count: None,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            deadline: None,
            quiet: false,
            size: 56,
            ttl: None,
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU16 = AtomicU16::new(0);

extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

const USAGE: &str = "Usage: ping [-c count] [-i interval] [-W timeout] [-w deadline] [-s size] \
                     [-t ttl] [-q] HOST";

/// Parses the command line.
pub fn parse_args(args: &[String]) -> Result<(Config, String), String> {
    let o = crate::getopt::parse(args, "c:i:W:w:s:t:qn4v", &[])?;
    let mut c = Config::default();
    let secs = |f: char| -> Result<Option<Duration>, String> {
        o.value(f)
            .map(|v| {
                crate::getopt::seconds(v).ok_or_else(|| format!("invalid argument to -{f}: '{v}'"))
            })
            .transpose()
    };
    if let Some(v) = o.value('c') {
        let n: u64 = v.parse().map_err(|_| format!("invalid argument: '{v}'"))?;
        if n == 0 {
            return Err(format!("invalid argument: '{v}': out of range: 1 <= value"));
        }
        c.count = Some(n);
    }
    if let Some(d) = secs('i')? {
        c.interval = d.max(Duration::from_millis(2));
    }
    if let Some(d) = secs('W')? {
        c.timeout = d;
    }
    c.deadline = secs('w')?;
    if let Some(v) = o.value('s') {
        c.size = v
            .parse::<usize>()
            .ok()
            .filter(|s| *s <= 65507 - 8)
            .ok_or_else(|| format!("invalid argument: '{v}'"))?;
    }
    if let Some(v) = o.value('t') {
        c.ttl = Some(
            v.parse::<u32>()
                .ok()
                .filter(|t| (1..=255).contains(t))
                .ok_or_else(|| {
                    format!("invalid argument: '{v}': out of range: 1 <= value <= 255")
                })?,
        );
    }
    c.quiet = o.has('q');
    match o.operands.as_slice() {
        [host] => Ok((c, host.clone())),
        [] => Err("usage error: Destination address required".into()),
        _ => Err(format!("too many arguments\n{USAGE}")),
    }
}

/// The applet: exit 0 if any reply arrived, 1 if none, 2 on errors.
pub fn main(args: &[String]) -> i32 {
    let (cfg, host) = match parse_args(args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ping: {e}");
            return 2;
        }
    };
    let ip = match crate::resolve::resolve_ipv4(&host) {
        Ok(ips) if !ips.is_empty() => ips[0],
        _ => {
            eprintln!("ping: unknown host {host}");
            return 2;
        }
    };
    let sock = match IcmpSocket::open(cfg.ttl) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ping: socket: {}", crate::os_err_msg(&e));
            return 2;
        }
    };
    // SAFETY: installing a handler that only stores to an atomic; no SA_RESTART so that poll
    // returns EINTR and the statistics get printed.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
    let mut out = std::io::stdout();
    match run(&cfg, &sock, &host, ip, &mut out, &STOP) {
        Ok(stats) if stats.received > 0 => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("ping: {e}");
            2
        }
    }
}

/// Pings `ip` as configured, writing iputils-style lines to `out`, until the count is reached,
/// the deadline passes or `stop` is set. Returns the statistics (already printed).
pub fn run(
    cfg: &Config,
    sock: &IcmpSocket,
    host: &str,
    ip: Ipv4Addr,
    out: &mut dyn Write,
    stop: &AtomicBool,
) -> std::io::Result<Stats> {
    let id = (std::process::id() as u16) ^ NEXT_ID.fetch_add(0x3b1, Ordering::Relaxed);
    let start = Instant::now();
    let end = cfg.deadline.map(|d| start + d);
    let mut stats = Stats::default();
    let mut sent: HashMap<u16, Instant> = HashMap::new();
    let mut answered: HashSet<u16> = HashSet::new();
    let mut seq: u16 = 1;
    let mut next_send = start;
    let mut last_send = start;
    line(out, &format::header(host, ip, cfg.size))?;
    loop {
        if stop.load(Ordering::SeqCst) || end.is_some_and(|e| Instant::now() >= e) {
            break;
        }
        let now = Instant::now();
        let all_sent = cfg.count.is_some_and(|c| stats.transmitted >= c);
        if !all_sent && now >= next_send {
            stats.transmitted += 1;
            sent.insert(seq, now);
            answered.remove(&seq);
            if let Err(e) = sock.send_echo(ip, id, seq, cfg.size) {
                stats.errors += 1;
                line(out, &format!("ping: sendmsg: {}", crate::os_err_msg(&e)))?;
            }
            last_send = now;
            seq = seq.wrapping_add(1);
            next_send += cfg.interval;
            if next_send < now {
                next_send = now + cfg.interval;
            }
            continue;
        }
        if let Some(c) = cfg.count {
            if all_sent && stats.received + stats.errors >= c {
                break;
            }
        }
        let mut wait_until = if all_sent {
            last_send + cfg.timeout
        } else {
            next_send
        };
        if let Some(e) = end {
            wait_until = wait_until.min(e);
        }
        if all_sent && now >= wait_until {
            break;
        }
        match sock.recv(wait_until, id, ip)? {
            Some(Event::Reply {
                from,
                seq: rseq,
                ttl,
                bytes,
            }) => {
                let Some(t0) = sent.get(&rseq) else { continue };
                let us = t0.elapsed().as_micros() as u64;
                let dup = !answered.insert(rseq);
                if dup {
                    stats.duplicates += 1;
                } else {
                    stats.received += 1;
                }
                stats.add_rtt(us);
                if !cfg.quiet {
                    line(out, &format::reply(bytes, from, rseq, ttl, us, dup))?;
                }
            }
            Some(Event::Error {
                from,
                seq: rseq,
                icmp_type,
                code,
                info,
            }) => {
                if !sent.contains_key(&rseq) {
                    continue;
                }
                stats.errors += 1;
                if !cfg.quiet {
                    let what = format::icmp_error(icmp_type, code, info);
                    line(out, &format::error_line(from, rseq, &what))?;
                }
            }
            None => {}
        }
    }
    stats.elapsed_ms = start.elapsed().as_millis() as u64;
    writeln!(out)?;
    write!(out, "{}", format::statistics(host, &stats))?;
    out.flush()?;
    Ok(stats)
}

fn line(out: &mut dyn Write, s: &str) -> std::io::Result<()> {
    writeln!(out, "{s}")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn args() {
        let (c, h) = parse_args(&s(&["-c", "3", "-W", "1", "-i", "0.2", "-q", "web1"])).unwrap();
        assert_eq!(h, "web1");
        assert_eq!(c.count, Some(3));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.interval, Duration::from_millis(200));
        assert!(c.quiet);
        assert!(parse_args(&s(&["-c", "x", "h"])).is_err());
        assert!(parse_args(&s(&[])).is_err());
    }

    /// Pings 127.0.0.1 in-process when an ICMP socket can be opened (root, or ping_group_range).
    #[test]
    fn ping_loopback() {
        let sock = match IcmpSocket::open(None) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("skipping ping_loopback: {e}");
                return;
            }
        };
        let cfg = Config {
            count: Some(2),
            interval: Duration::from_millis(50),
            timeout: Duration::from_secs(2),
            ..Config::default()
        };
        let mut out = Vec::new();
        let stop = AtomicBool::new(false);
        let st = run(
            &cfg,
            &sock,
            "127.0.0.1",
            Ipv4Addr::LOCALHOST,
            &mut out,
            &stop,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(st.transmitted, 2, "{text}");
        assert_eq!(st.received, 2, "{text}");
        assert!(text.starts_with("PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.\n"));
        assert!(
            text.contains("64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time="),
            "{text}"
        );
        assert!(
            text.contains("2 packets transmitted, 2 received, 0% packet loss"),
            "{text}"
        );
        assert!(text.contains("rtt min/avg/max/mdev = "), "{text}");
    }
}
