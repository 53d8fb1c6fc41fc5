//! The shim's control socket: a unix stream socket in the state dir, one line per request
//! and per reply (`start` → `ok` | `error <message>`).

use std::io::{self, Read, Write};
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

/// Connects to the socket at `path`.
pub(crate) fn connect(path: &Path) -> io::Result<UnixStream> {
    with_short_path(path, |p| UnixStream::connect(p))
}

/// Reads one line (without the newline), byte by byte so that nothing after it is
/// consumed; at most 4096 bytes.
fn read_line(mut s: &UnixStream) -> io::Result<String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while line.len() < 4096 {
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => line.push(b[0]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Sends one request line on `s` and returns the reply line.
pub(crate) fn exchange(s: &mut UnixStream, line: &str, timeout: Duration) -> io::Result<String> {
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(format!("{line}\n").as_bytes())?;
    let reply = read_line(s)?;
    if reply.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the shim closed the connection without replying",
        ));
    }
    Ok(reply)
}

/// Sends one request line and returns the reply line (without the newline).
pub(crate) fn request(path: &Path, line: &str, timeout: Duration) -> io::Result<String> {
    let mut s = connect(path)?;
    exchange(&mut s, line, timeout)
}

/// Reads one request line from an accepted connection.
pub(crate) fn read_request(s: &UnixStream) -> io::Result<String> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    read_line(s)
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
