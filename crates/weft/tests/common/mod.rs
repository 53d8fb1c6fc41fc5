//! Test support: a lab of its own per test, removed on drop (also when the test panics).
#![allow(dead_code)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// True when the tests can build labs (root); otherwise the test prints why and returns.
pub fn can_run() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: lab tests need root");
        return false;
    }
    true
}

/// State root shared by the test run (images are reused between tests; labs are not).
pub fn test_root() -> String {
    std::env::temp_dir()
        .join("weft-tests")
        .to_string_lossy()
        .into_owned()
}

pub fn weft_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_weft"));
    c.env("WEFT_ROOT", test_root())
        .env_remove("WEFT_LAB")
        .env_remove("WEFT_NODE");
    c
}

/// Result of a command, with its output as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

pub struct Lab {
    pub name: String,
    pub nodes: Vec<String>,
}

impl Lab {
    /// Builds a lab with these nodes (and the default pool).
    pub fn up(nodes: &[&str]) -> Lab {
        Self::up_with(nodes, &[])
    }

    pub fn up_with(nodes: &[&str], extra: &[&str]) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}-{n}", std::process::id());
        let lab = Lab {
            name,
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
        };
        let joined = nodes.join(",");
        let mut args = vec!["lab", "up", "--nodes", joined.as_str()];
        args.extend_from_slice(extra);
        let r = lab.weft(&args);
        assert!(r.ok(), "lab up failed: {}{}", r.stdout, r.stderr);
        lab
    }

    /// `weft --lab NAME ARGS...`
    pub fn weft(&self, args: &[&str]) -> Run {
        let out = weft_cmd()
            .arg("--lab")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run weft");
        Run::from(out)
    }

    /// Like `weft` but the command must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.weft(args);
        assert!(
            r.ok(),
            "weft {} failed ({}): {}{}",
            args.join(" "),
            r.code,
            r.stdout,
            r.stderr
        );
        r.stdout
    }

    /// `weft lab exec MEMBER -- CMD...`, must succeed.
    pub fn on(&self, member: &str, cmd: &[&str]) -> String {
        let mut args = vec!["lab", "exec", member, "--"];
        args.extend_from_slice(cmd);
        self.ok(&args)
    }

    /// Runs a detached container running httpd.
    pub fn run(&self, node: &str, name: &str, net: &str) -> String {
        self.ok(&[
            "--node", node, "run", "-d", "--name", name, "--net", net, "toolbox", "httpd",
        ])
    }

    pub fn inspect(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["-o", "json", "inspect", name])).expect("inspect json")
    }

    pub fn ip(&self, name: &str) -> String {
        self.inspect(name)["ip"].as_str().expect("ip").to_string()
    }

    /// `weft apply -f` of `yaml`, through a file as a user would.
    pub fn apply(&self, yaml: &str) -> Run {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("weft-{}-{n}.yaml", self.name));
        std::fs::write(&path, yaml).expect("write the resource file");
        let r = self.weft(&["apply", "-f", path.to_str().expect("utf-8 path")]);
        let _ = std::fs::remove_file(&path);
        r
    }

    pub fn netns(&self, member: &str) -> String {
        format!("weft-{}-{member}", self.name)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let r = self.weft(&["lab", "down"]);
        if !r.ok() {
            eprintln!("lab down {} failed: {}{}", self.name, r.stdout, r.stderr);
        }
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Seed 001's cast on node `node`, network `net`: nginx (app=nginx, serving 80 and 8080), pod1
/// (role=pod1) and pod2 (role=pod2).
pub fn seed001_cast(lab: &Lab, node: &str, net: &str) {
    lab.ok(&[
        "--node",
        node,
        "run",
        "-d",
        "--name",
        "nginx",
        "--net",
        net,
        "--label",
        "app=nginx",
        "toolbox",
        "sh",
        "-c",
        "httpd -p 8080 & exec httpd",
    ]);
    for (name, role) in [("pod1", "role=pod1"), ("pod2", "role=pod2")] {
        lab.ok(&[
            "--node", node, "run", "-d", "--name", name, "--net", net, "--label", role, "toolbox",
            "sleep", "600",
        ]);
    }
}

/// Two endpoints labelled app=web, web-a on master and web-b on slave1, and a client pod on
/// master, all on network `net`.
pub fn web_endpoints_and_client(lab: &Lab, net: &str) {
    for (node, name) in [("master", "web-a"), ("slave1", "web-b")] {
        lab.ok(&[
            "--node", node, "run", "-d", "--name", name, "--net", net, "--label", "app=web",
            "toolbox", "httpd",
        ]);
    }
    lab.ok(&[
        "--node", "master", "run", "-d", "--name", "client", "--net", net, "toolbox", "sleep",
        "600",
    ]);
}

/// A ping running in the background from container `from` to `to`: `count` packets, one every
/// 0.2 s (a probe that counts what a fault loses).
pub fn start_ping(lab: &Lab, from: &str, to: &str, count: u32) -> std::process::Child {
    weft_cmd()
        .args([
            "--lab", &lab.name, "exec", from, "ping", "-i", "0.2", "-W", "1", "-c",
        ])
        .arg(count.to_string())
        .arg(to)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ping")
}

/// (transmitted, received) of a finished [`start_ping`].
pub fn ping_counts(child: std::process::Child) -> (u32, u32) {
    let out = child.wait_with_output().expect("wait for ping");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| {
            panic!(
                "no ping statistics: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    let num = |word: &str| -> u32 {
        let i = words.iter().position(|w| *w == word).expect(word);
        words[i - 1].parse().expect("a count")
    };
    (num("packets"), num("received"))
}
