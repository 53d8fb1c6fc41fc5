//! Signals by name and the processes of a container (for `kill --all` and `ps`).

use std::fs;
use std::path::Path;

/// Signal names (without `SIG`) and numbers.
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses a signal: a number (1-64), a name (`KILL`, `SIGKILL`, any case) or `RTMIN+N`.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let bad = || format!("invalid signal {s:?}: use a name such as TERM or KILL, or a number");
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some((_, n)) = SIGNALS.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    let rt = |base: i32, off: &str, sign: i32| -> Result<i32, String> {
        let o: i32 = if off.is_empty() {
            0
        } else {
            off.parse().map_err(|_| bad())?
        };
        let n = base + sign * o;
        if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(off) = name.strip_prefix("RTMIN") {
        return rt(libc::SIGRTMIN(), off.trim_start_matches('+'), 1);
    }
    if let Some(off) = name.strip_prefix("RTMAX") {
        return rt(libc::SIGRTMAX(), off.trim_start_matches('-'), -1);
    }
    Err(bad())
}

fn ns_of(pid: i32) -> Option<std::path::PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// The parent pid of `pid`, from /proc/<pid>/stat.
fn ppid(pid: i32) -> Option<i32> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn all_pids() -> Vec<i32> {
    let mut v: Vec<i32> = fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// The host pids of the processes of the container whose init is `init`: those in its pid
/// namespace (so processes added by `exec` count), or, for a container sharing the host's
/// pid namespace, the init and its descendants. Sorted; empty when `init` is gone.
pub fn container_pids(init: i32) -> Vec<i32> {
    if init <= 0 {
        return Vec::new();
    }
    let Some(ns) = ns_of(init) else {
        return Vec::new();
    };
    let own = ns_of(std::process::id() as i32);
    let pids = all_pids();
    if own.as_ref() != Some(&ns) && Path::new("/proc/self/ns/pid").exists() {
        return pids
            .into_iter()
            .filter(|p| ns_of(*p).as_ref() == Some(&ns))
            .collect();
    }
    let mut out = vec![init];
    let mut grew = true;
    while grew {
        grew = false;
        for p in &pids {
            if !out.contains(p) && ppid(*p).is_some_and(|pp| out.contains(&pp)) {
                out.push(*p);
                grew = true;
            }
        }
    }
    out.sort_unstable();
    out
}

/// Filters ps(1) output to the lines of `pids`: keeps the header, finds the PID column in
/// it, and keeps the rows whose PID is one of `pids`.
pub fn filter_ps(output: &str, pids: &[i32]) -> Result<String, String> {
    let mut lines = output.lines();
    let header = lines.next().ok_or("ps printed nothing")?;
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or("ps output has no PID column; pass options that print one")?;
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p: i32| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Waits for child `pid` and returns its exit code (128+signal if killed).
pub fn wait(pid: i32) -> std::io::Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9"), Ok(9));
        assert_eq!(parse_signal("KILL"), Ok(libc::SIGKILL));
        assert_eq!(parse_signal("sigterm"), Ok(libc::SIGTERM));
        assert_eq!(parse_signal("SIGUSR1"), Ok(libc::SIGUSR1));
        assert_eq!(parse_signal("RTMIN+1"), Ok(libc::SIGRTMIN() + 1));
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("65").is_err());
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn own_process_tree() {
        let me = std::process::id() as i32;
        assert!(container_pids(me).contains(&me));
        assert!(container_pids(0).is_empty());
    }

    #[test]
    fn ps_filter() {
        let out =
            "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 x ? 0 init\nroot 42 1 0 x ? 0 sleep\n";
        let f = filter_ps(out, &[42]).expect("filter");
        assert_eq!(
            f,
            "UID PID PPID C STIME TTY TIME CMD\nroot 42 1 0 x ? 0 sleep\n"
        );
        assert!(filter_ps("A B\n", &[1]).is_err());
    }
}
