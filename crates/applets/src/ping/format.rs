//! The text ping prints, in the shape of iputils: header, reply and error lines, statistics.

use std::net::Ipv4Addr;

/// Counters and round-trip times of one ping run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Echo requests sent.
    pub transmitted: u64,
    /// Distinct echo replies received.
    pub received: u64,
    /// Replies to a sequence number already answered.
    pub duplicates: u64,
    /// ICMP errors (unreachable, time exceeded, ...) received.
    pub errors: u64,
    /// Smallest round-trip time, microseconds.
    pub rtt_min_us: u64,
    /// Largest round-trip time, microseconds.
    pub rtt_max_us: u64,
    /// Sum of round-trip times, microseconds.
    pub rtt_sum_us: u128,
    /// Sum of squared round-trip times, microseconds².
    pub rtt_sum2_us: u128,
    /// Number of round-trip samples (replies and duplicates).
    pub rtt_samples: u64,
    /// Wall time of the run, milliseconds.
    pub elapsed_ms: u64,
}

impl Stats {
    /// Records one round-trip time.
    pub fn add_rtt(&mut self, us: u64) {
        if self.rtt_samples == 0 || us < self.rtt_min_us {
            self.rtt_min_us = us;
        }
        self.rtt_max_us = self.rtt_max_us.max(us);
        self.rtt_sum_us += u128::from(us);
        self.rtt_sum2_us += u128::from(us) * u128::from(us);
        self.rtt_samples += 1;
    }
}

/// `PING host (ip) 56(84) bytes of data.`
pub fn header(host: &str, ip: Ipv4Addr, payload: usize) -> String {
    format!(
        "PING {host} ({ip}) {payload}({}) bytes of data.",
        payload + 28
    )
}

/// A round-trip time as iputils prints it: 3 decimals below 1 ms, 2 below 10 ms, 1 below
/// 100 ms, none above.
pub fn rtt(us: u64) -> String {
    if us >= 100_000 - 50 {
        format!("{} ms", (us + 500) / 1000)
    } else if us >= 10_000 - 5 {
        let r = us + 50;
        format!("{}.{} ms", r / 1000, (r % 1000) / 100)
    } else if us >= 1000 {
        let r = us + 5;
        format!("{}.{:02} ms", r / 1000, (r % 1000) / 10)
    } else {
        format!("{}.{:03} ms", us / 1000, us % 1000)
    }
}

/// `64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.050 ms`, with ` (DUP!)` for duplicates.
pub fn reply(
    bytes: usize,
    from: Ipv4Addr,
    seq: u16,
    ttl: Option<u8>,
    us: u64,
    dup: bool,
) -> String {
    let ttl = ttl.map(|t| format!(" ttl={t}")).unwrap_or_default();
    let dup = if dup { " (DUP!)" } else { "" };
    format!(
        "{bytes} bytes from {from}: icmp_seq={seq}{ttl} time={}{dup}",
        rtt(us)
    )
}

/// The description of an ICMP error type/code, as iputils words it.
pub fn icmp_error(icmp_type: u8, code: u8, info: u32) -> String {
    let s = match (icmp_type, code) {
        (3, 0) => "Destination Net Unreachable",
        (3, 1) => "Destination Host Unreachable",
        (3, 2) => "Destination Protocol Unreachable",
        (3, 3) => "Destination Port Unreachable",
        (3, 4) => return format!("Frag needed and DF set (mtu = {info})"),
        (3, 5) => "Source Route Failed",
        (3, 6) => "Destination Net Unknown",
        (3, 7) => "Destination Host Unknown",
        (3, 8) => "Source Host Isolated",
        (3, 9) => "Destination Net Prohibited",
        (3, 10) => "Destination Host Prohibited",
        (3, 11) => "Destination Net Unreachable for Type of Service",
        (3, 12) => "Destination Host Unreachable for Type of Service",
        (3, 13) => "Packet filtered",
        (3, 14) => "Precedence Violation",
        (3, 15) => "Precedence Cutoff",
        (3, c) => return format!("Dest Unreachable, Bad Code: {c}"),
        (4, _) => "Source Quench",
        (5, 0) => "Redirect Network",
        (5, 1) => "Redirect Host",
        (5, 2) => "Redirect Type of Service and Network",
        (5, 3) => "Redirect Type of Service and Host",
        (11, 0) => "Time to live exceeded",
        (11, 1) => "Frag reassembly time exceeded",
        (12, _) => return format!("Parameter problem: pointer = {}", info >> 24),
        (t, c) => return format!("Bad ICMP type: {t}, code: {c}"),
    };
    s.to_string()
}

/// `From 10.0.0.1 icmp_seq=1 Destination Host Unreachable`
pub fn error_line(from: Ipv4Addr, seq: u16, what: &str) -> String {
    format!("From {from} icmp_seq={seq} {what}")
}

/// A number as C's `%g` prints it (6 significant digits, no trailing zeros).
pub fn percent_g(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_string();
    }
    let digits = v.abs().log10().floor() as i32 + 1;
    let decimals = (6 - digits).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The statistics block: `--- host ping statistics ---`, the counts line, and the rtt line when
/// any reply arrived. Each line ends with a newline.
pub fn statistics(host: &str, s: &Stats) -> String {
    let mut out = format!("--- {host} ping statistics ---\n");
    out.push_str(&format!(
        "{} packets transmitted, {} received",
        s.transmitted, s.received
    ));
    if s.duplicates > 0 {
        out.push_str(&format!(", +{} duplicates", s.duplicates));
    }
    if s.errors > 0 {
        out.push_str(&format!(", +{} errors", s.errors));
    }
    if s.transmitted > 0 {
        let lost = s.transmitted.saturating_sub(s.received) as f64;
        let loss = lost * 100.0 / s.transmitted as f64;
        out.push_str(&format!(
            ", {}% packet loss, time {}ms",
            percent_g(loss),
            s.elapsed_ms
        ));
    }
    out.push('\n');
    if s.received > 0 && s.rtt_samples > 0 {
        let n = u128::from(s.rtt_samples);
        let avg = s.rtt_sum_us / n;
        let mean = s.rtt_sum_us as f64 / n as f64;
        let var = (s.rtt_sum2_us as f64 / n as f64 - mean * mean).max(0.0);
        let mdev = var.sqrt() as u64;
        let ms = |us: u64| format!("{}.{:03}", us / 1000, us % 1000);
        out.push_str(&format!(
            "rtt min/avg/max/mdev = {}/{}/{}/{} ms\n",
            ms(s.rtt_min_us),
            ms(avg as u64),
            ms(s.rtt_max_us),
            ms(mdev)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_precision() {
        assert_eq!(rtt(50), "0.050 ms");
        assert_eq!(rtt(1234), "1.23 ms");
        assert_eq!(rtt(12_345), "12.3 ms");
        assert_eq!(rtt(123_456), "123 ms");
    }

    #[test]
    fn lines() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            header("10.0.0.2", ip, 56),
            "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data."
        );
        assert_eq!(
            reply(64, ip, 1, Some(64), 50, false),
            "64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.050 ms"
        );
        assert!(reply(64, ip, 1, Some(64), 50, true).ends_with(" (DUP!)"));
        assert_eq!(
            error_line(Ipv4Addr::new(10, 0, 0, 1), 1, &icmp_error(3, 1, 0)),
            "From 10.0.0.1 icmp_seq=1 Destination Host Unreachable"
        );
        assert_eq!(icmp_error(3, 3, 0), "Destination Port Unreachable");
    }

    #[test]
    fn percent() {
        assert_eq!(percent_g(0.0), "0");
        assert_eq!(percent_g(100.0), "100");
        assert_eq!(percent_g(100.0 / 3.0), "33.3333");
        assert_eq!(percent_g(200.0 / 3.0), "66.6667");
        assert_eq!(percent_g(50.0), "50");
    }

    #[test]
    fn statistics_lines() {
        let mut s = Stats {
            transmitted: 3,
            received: 3,
            elapsed_ms: 2003,
            ..Stats::default()
        };
        for us in [41, 50, 61] {
            s.add_rtt(us);
        }
        assert_eq!(
            statistics("10.0.0.2", &s),
            "--- 10.0.0.2 ping statistics ---\n\
             3 packets transmitted, 3 received, 0% packet loss, time 2003ms\n\
             rtt min/avg/max/mdev = 0.041/0.050/0.061/0.008 ms\n"
        );
        let s = Stats {
            transmitted: 2,
            received: 0,
            errors: 2,
            elapsed_ms: 1001,
            ..Stats::default()
        };
        assert_eq!(
            statistics("web", &s),
            "--- web ping statistics ---\n\
             2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1001ms\n"
        );
        let mut s = Stats {
            transmitted: 3,
            received: 1,
            duplicates: 1,
            elapsed_ms: 5,
            ..Stats::default()
        };
        s.add_rtt(1500);
        s.add_rtt(1500);
        assert!(statistics("h", &s).contains(
            "3 packets transmitted, 1 received, +1 duplicates, 66.6667% packet loss, time 5ms\n\
             rtt min/avg/max/mdev = 1.500/1.500/1.500/0.000 ms"
        ));
    }
}
