//! The shim's control socket: a unix stream socket in the state dir, one line per request
//! and per reply (`start` → `ok` | `error <message>`).

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest socket path we hand to bind/connect directly (sun_path holds 108 bytes).
const MAX_SUN_PATH: usize = 100;

/// Runs `f` with a path for `path` short enough for a unix socket address: the path itself,
/// or `/proc/self/fd/<dirfd>/<name>` through an open handle on its directory.
fn with_short_path<T>(path: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    if path.as_os_str().len() <= MAX_SUN_PATH {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let d = std::fs::File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    let r = f(&short);
    drop(d);
    r
}

/// Binds the listening socket at `path` (replacing a stale one).
pub(crate) fn bind(path: &Path) -> io::Result<UnixListener> {
    let _ = std::fs::remove_file(path);
    with_short_path(path, |p| UnixListener::bind(p))
}

/// Sends one request line and returns the reply line (without the newline).
pub(crate) fn request(path: &Path, line: &str, timeout: Duration) -> io::Result<String> {
    let mut s = with_short_path(path, |p| UnixStream::connect(p))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let mut reply = String::new();
    BufReader::new(s).read_line(&mut reply)?;
    if reply.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the shim closed the connection without replying",
        ));
    }
    Ok(reply.trim_end_matches('\n').to_string())
}

/// Reads one request line from an accepted connection.
pub(crate) fn read_request(s: &UnixStream) -> io::Result<String> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = String::new();
    BufReader::new(io::Read::take(s, 4096)).read_line(&mut line)?;
    Ok(line.trim_end_matches('\n').to_string())
}

/// Writes one reply line.
pub(crate) fn reply(mut s: &UnixStream, line: &str) {
    let _ = s.write_all(format!("{}\n", line.replace('\n', "; ")).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_socket_paths_work() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("x".repeat(60)).join("y".repeat(60));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("shim.sock");
        assert!(path.as_os_str().len() > MAX_SUN_PATH);
        let l = bind(&path).expect("bind");
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            let req = read_request(&s).expect("read");
            reply(&s, &format!("echo {req}"));
        });
        let r = request(&path, "start", Duration::from_secs(5)).expect("request");
        assert_eq!(r, "echo start");
        t.join().expect("join");
    }
}
