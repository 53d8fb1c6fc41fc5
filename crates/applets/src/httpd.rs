//! `httpd [-p [IP:]PORT] [-f]`: answers every request with 200 and two lines: the hostname, then
//! the client's address as IP:PORT. One thread per connection; errors go to stderr.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// The body sent to `peer`: `hostname\nIP:PORT\n` (IPv4-mapped IPv6 peers shown as IPv4).
pub fn body(hostname: &str, peer: SocketAddr) -> String {
    let peer = match peer {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(ip) => SocketAddr::from((ip, v6.port())),
            None => peer,
        },
        v4 => v4,
    };
    format!("{hostname}\n{peer}\n")
}

/// This host's name, or `localhost` if it cannot be read.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "localhost".to_string())
}

/// Serves connections from `listener` forever, one thread each.
pub fn serve(listener: TcpListener, hostname: String) -> io::Result<()> {
    loop {
        match listener.accept() {
            Ok((stream, peer)) => {
                let h = hostname.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("httpd-conn".into())
                        .spawn(move || {
                            if let Err(e) = handle(stream, peer, &h) {
                                eprintln!("httpd: {peer}: {e}");
                            }
                        });
                if let Err(e) = spawned {
                    eprintln!("httpd: can't start a thread for {peer}: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("httpd: accept: {}", crate::os_err_msg(&e));
                // Running out of descriptors should not spin the CPU.
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Answers one connection.
fn handle(mut s: TcpStream, peer: SocketAddr, hostname: &str) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    // Read the request head (up to 64 KiB); answer anyway if the client stops early.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        if buf.len() > 64 * 1024 {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = buf.starts_with(b"HEAD ");
    let b = body(hostname, peer);
    let mut resp = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        b.len()
    );
    if !head {
        resp.push_str(&b);
    }
    s.write_all(resp.as_bytes())?;
    s.flush()?;
    let _ = s.shutdown(Shutdown::Write);
    // Drain what the client still sends so that closing does not reset the connection.
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 4096];
    let mut total = 0usize;
    while let Ok(n) = s.read(&mut sink) {
        if n == 0 || total > 1 << 20 {
            break;
        }
        total += n;
    }
    Ok(())
}

/// Parses `-p` values: `PORT` or `IP:PORT`.
pub fn listen_addr(p: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = p.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    p.parse::<SocketAddr>()
        .map_err(|_| format!("bad port '{p}' (use PORT or IP:PORT)"))
}

/// The applet; it runs in the foreground until killed.
pub fn main(args: &[String]) -> i32 {
    let o = match crate::getopt::parse(args, "p:fvh:c:r:u:", &[]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("httpd: {e}\nUsage: httpd [-p [IP:]PORT] [-f]");
            return 1;
        }
    };
    let addr = match listen_addr(o.value('p').unwrap_or("80")) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("httpd: {e}");
            return 1;
        }
    };
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("httpd: bind {addr}: {}", crate::os_err_msg(&e));
            return 1;
        }
    };
    match serve(listener, hostname()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("httpd: {}", crate::os_err_msg(&e));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_shape() {
        assert_eq!(
            body("web1", "10.244.1.3:43122".parse().unwrap()),
            "web1\n10.244.1.3:43122\n"
        );
        assert_eq!(
            body("web1", "[::ffff:10.0.0.1]:80".parse().unwrap()),
            "web1\n10.0.0.1:80\n"
        );
        assert_eq!(listen_addr("8080").unwrap().to_string(), "0.0.0.0:8080");
        assert_eq!(
            listen_addr("127.0.0.1:81").unwrap().to_string(),
            "127.0.0.1:81"
        );
        assert!(listen_addr("x").is_err());
    }

    #[test]
    fn serves_wget() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || serve(l, "testhost".into()));
        for _ in 0..3 {
            let mut out = Vec::new();
            crate::wget::fetch(
                &format!("http://127.0.0.1:{port}/anything"),
                Duration::from_secs(5),
                &mut out,
                &mut io::sink(),
            )
            .unwrap();
            let text = String::from_utf8(out).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.len(), 2, "{text:?}");
            assert_eq!(lines[0], "testhost");
            let peer: SocketAddr = lines[1].parse().unwrap();
            assert_eq!(peer.ip().to_string(), "127.0.0.1");
            assert_ne!(peer.port(), port);
        }
    }
}
