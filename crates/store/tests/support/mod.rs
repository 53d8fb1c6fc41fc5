//! The backends every contract test runs against: SQLite, memory, and a real etcd when the
//! `etcd` binary is installed (each test gets its own server, on loopback, killed on drop).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weft_store::{MemStore, SqliteStore, Store};

/// One backend under test. `location` opens it again (from another thread or process) with
/// `weft_store::open`; empty for the in-memory store.
pub struct Backend {
    pub name: &'static str,
    pub store: Box<dyn Store>,
    pub location: String,
    _guard: Guard,
}

enum Guard {
    Dir(tempfile::TempDir),
    Etcd(EtcdServer),
}

pub fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/dir/store.db");
    let store = SqliteStore::open(&path).expect("open sqlite");
    Backend {
        name: "sqlite",
        store: Box::new(store),
        location: path.to_string_lossy().into_owned(),
        _guard: Guard::Dir(dir),
    }
}

pub fn mem() -> Backend {
    Backend {
        name: "mem",
        store: Box::new(MemStore::new()),
        location: String::new(),
        _guard: Guard::Dir(tempfile::tempdir().expect("tempdir")),
    }
}

/// A fresh etcd, or `None` (after saying "skipped") when the binary is not installed.
pub fn etcd() -> Option<Backend> {
    let server = EtcdServer::start()?;
    let location = server.url();
    let store = weft_store::open(&location).expect("open etcd store");
    Some(Backend {
        name: "etcd",
        store,
        location,
        _guard: Guard::Etcd(server),
    })
}

/// Every backend.
pub fn all() -> Vec<Backend> {
    let mut v = vec![sqlite(), mem()];
    v.extend(etcd());
    v
}

/// The backends that several processes can share.
pub fn shared() -> Vec<Backend> {
    let mut v = vec![sqlite()];
    v.extend(etcd());
    v
}

/// An `etcd` process on 127.0.0.1 with free ports and a temporary data directory.
pub struct EtcdServer {
    child: Option<Child>,
    bin: &'static str,
    pub client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl EtcdServer {
    /// Starts one and waits until it answers; `None` when `etcd` is not installed.
    pub fn start() -> Option<EtcdServer> {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(bin) = bin else {
            eprintln!("skipped: etcd tests (no etcd binary; apt-get install etcd-server)");
            return None;
        };
        for _ in 0..3 {
            let mut s = EtcdServer {
                child: None,
                bin,
                client_port: free_port(),
                peer_port: free_port(),
                dir: tempfile::tempdir().expect("tempdir"),
            };
            if s.spawn_and_wait() {
                return Some(s);
            }
        }
        panic!("etcd did not start (3 attempts)");
    }

    /// Runs etcd (again) on the same ports and data; false if it did not come up.
    fn spawn_and_wait(&mut self) -> bool {
        let c = format!("http://127.0.0.1:{}", self.client_port);
        let p = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .expect("etcd log");
        let child = Command::new(self.bin)
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args([
                "--listen-peer-urls",
                &p,
                "--initial-advertise-peer-urls",
                &p,
            ])
            .args(["--initial-cluster", &format!("t={p}")])
            .args(["--logger", "zap", "--log-level", "error"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
        let probe = weft_store::open(&self.url()).expect("open etcd store");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false; // e.g. a port taken meanwhile: try other ports
            }
            if probe.revision().is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.stop();
        false
    }

    pub fn url(&self) -> String {
        format!("etcd://127.0.0.1:{}", self.client_port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("etcd running").id() as i32
    }

    /// Kills it (SIGKILL), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again from its data.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn_and_wait(), "etcd did not restart");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
