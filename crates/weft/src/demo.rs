//! `weft demo`: seed 000's experiments, run as a user would run them, in a lab of their own.
//!
//! Every step is a real `weft` command (printed before its output), so the demo doubles as a
//! tour of the command line. The lab is removed at the end, also when a step fails.

use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

const LAB: &str = "demo";

struct Demo {
    exe: std::path::PathBuf,
    results: Vec<(String, String, bool, bool)>, // (experiment, detail, expected ok, got ok)
}

impl Demo {
    fn weft(&self, args: &[&str]) -> Result<Output> {
        println!("\n$ weft {}", args.join(" "));
        let out = Command::new(&self.exe)
            .arg("--lab")
            .arg(LAB)
            .args(args)
            .output()
            .with_context(|| format!("run weft {}", args.join(" ")))?;
        // Progress (stderr) came before the result (stdout) when the command ran.
        print!("{}", String::from_utf8_lossy(&out.stderr));
        print!("{}", String::from_utf8_lossy(&out.stdout));
        Ok(out)
    }

    /// Runs a step that must succeed.
    fn must(&self, args: &[&str]) -> Result<String> {
        let out = self.weft(args)?;
        if !out.status.success() {
            bail!("step failed: weft {}", args.join(" "));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// An experiment: a command whose success or failure is the result.
    fn check(&mut self, name: &str, detail: &str, expect_ok: bool, args: &[&str]) -> Result<()> {
        // As a script would: the agents first program what was just applied or started.
        let c = weft_engine::Cluster::open_lab(LAB)?;
        weft_engine::wait_for_agents(&c)?;
        let ok = self.weft(args)?.status.success();
        self.results
            .push((name.into(), detail.into(), expect_ok, ok));
        Ok(())
    }

    fn ip_of(&self, name: &str) -> Result<String> {
        let out = Command::new(&self.exe)
            .args(["--lab", LAB, "-o", "json", "inspect", name])
            .output()?;
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).with_context(|| format!("inspect {name}"))?;
        v["ip"]
            .as_str()
            .map(str::to_string)
            .context("container has no ip")
    }

    /// `weft apply -f` of `yaml` (through a temporary file, as a user would).
    fn apply(&self, yaml: &str) -> Result<String> {
        let path = std::env::temp_dir().join(format!("weft-demo-{}.yaml", std::process::id()));
        std::fs::write(&path, yaml)?;
        let out = self.must(&["apply", "-f", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        out
    }

    fn cluster_ip(&self, service: &str) -> Result<String> {
        let out = Command::new(&self.exe)
            .args(["--lab", LAB, "-o", "json", "get", "svc", service])
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        v[0]["spec"]["clusterIP"]
            .as_str()
            .map(str::to_string)
            .context("service has no cluster IP")
    }

    fn host_iface_of(&self, name: &str) -> Result<String> {
        let out = Command::new(&self.exe)
            .args(["--lab", LAB, "-o", "json", "inspect", name])
            .output()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        v["host_iface"]
            .as_str()
            .map(str::to_string)
            .context("no host_iface")
    }
}

fn section(title: &str) {
    println!("\n==== {title} ====");
}

/// Runs the demo; returns 0 when every experiment gave the expected result.
pub fn run(keep: bool) -> Result<i32> {
    let mut d = Demo {
        exe: std::env::current_exe()?,
        results: vec![],
    };
    // A previous demo that was interrupted may have left its lab.
    let _ = Command::new(&d.exe)
        .args(["--lab", LAB, "lab", "down"])
        .output();
    let res = experiments(&mut d);
    if !keep {
        section("tear down");
        let _ = d.weft(&["lab", "down"]);
    }
    res?;
    section("results");
    let mut t = crate::output::Table::new(&["EXPERIMENT", "WHAT", "EXPECTED", "RESULT"]);
    let mut all = true;
    for (name, detail, want, got) in &d.results {
        let word = |b: bool| if b { "reachable" } else { "unreachable" };
        all &= want == got;
        t.row(vec![
            name.clone(),
            detail.clone(),
            word(*want).into(),
            format!(
                "{} {}",
                word(*got),
                if want == got { "ok" } else { "MISMATCH" }
            ),
        ]);
    }
    print!("{}", t.render());
    Ok(if all { 0 } else { 1 })
}

fn experiments(d: &mut Demo) -> Result<()> {
    section("seed 000: a three-node lab (master, slave1, slave2) with Calico-style networking");
    d.must(&["lab", "up", "--nodes", "master,slave1,slave2"])?;
    d.must(&["network", "create", "net1"])?;
    d.must(&["network", "create", "net2"])?;
    d.must(&["network", "ls"])?;

    section("containers: web1, web2 (net1) and web3 (net2) on master; b-web1 (net1) on slave1");
    for (name, net, node) in [
        ("web1", "net1", "master"),
        ("web2", "net1", "master"),
        ("web3", "net2", "master"),
        ("b-web1", "net1", "slave1"),
    ] {
        d.must(&[
            "--node", node, "run", "-d", "--name", name, "--net", net, "--label", "app=web",
            "toolbox", "httpd",
        ])?;
    }
    d.must(&["ps"])?;
    d.must(&["ipam", "show", "--show-blocks"])?;

    section("what Calico made on master: a cali device and a /32 route per container, a blackhole per block");
    d.must(&["lab", "exec", "master", "--", "ip", "route"])?;
    d.must(&["lab", "exec", "master", "--", "ip", "-br", "link"])?;
    section("inside web1: eth0 holds a /32, the default route goes via 169.254.1.1 onlink");
    d.must(&["exec", "web1", "ip", "addr", "show", "eth0"])?;
    d.must(&["exec", "web1", "ip", "route"])?;
    section("which cali device pairs with web1's eth0: its iflink is the host end's ifindex");
    d.must(&["exec", "web1", "cat", "/sys/class/net/eth0/iflink"])?;
    let cali = d.host_iface_of("web1")?;
    d.must(&[
        "lab",
        "exec",
        "master",
        "--",
        "cat",
        &format!("/sys/class/net/{cali}/ifindex"),
    ])?;
    d.must(&["lab", "exec", "master", "--", "ip", "link", "show", &cali])?;

    let (web1, web2, bweb1) = (d.ip_of("web1")?, d.ip_of("web2")?, d.ip_of("b-web1")?);
    section("S2: web1 -> web2 on the same node, through web2's /32 route");
    d.check(
        "S2",
        "web1 -> web2 (same node)",
        true,
        &["exec", "web1", "ping", "-c", "2", "-W", "2", &web2],
    )?;
    section("the gateway 169.254.1.1 is answered by proxy ARP with ee:ee:ee:ee:ee:ee");
    d.must(&["exec", "web1", "ip", "neigh"])?;
    section("S2: delete web2's /32 route on master and the ping breaks; put it back and it works");
    let web2_if = d.host_iface_of("web2")?;
    d.must(&[
        "lab",
        "exec",
        "master",
        "--",
        "ip",
        "route",
        "del",
        &format!("{web2}/32"),
    ])?;
    d.check(
        "S2",
        "web1 -> web2 without its route",
        false,
        &["exec", "web1", "ping", "-c", "1", "-W", "1", &web2],
    )?;
    section("S2: what weft trace and weft doctor say about the missing route");
    d.weft(&["trace", "web1", &web2])?;
    d.weft(&["doctor"])?;
    d.must(&[
        "lab",
        "exec",
        "master",
        "--",
        "ip",
        "route",
        "add",
        &format!("{web2}/32"),
        "dev",
        &web2_if,
        "scope",
        "link",
        "proto",
        "80",
    ])?;
    d.check(
        "S2",
        "web1 -> web2 route restored",
        true,
        &["exec", "web1", "ping", "-c", "1", "-W", "2", &web2],
    )?;
    section("S2: the path, predicted from the live state and verified with captures");
    d.must(&["trace", "web1", &web2, "--verify"])?;

    section("S3: master -> web1 goes straight to the cali device, never through eth0");
    let exe = d.exe.to_string_lossy().into_owned();
    d.must(&["lab", "exec", "master", "--", "ip", "route", "get", &web1])?;
    d.check(
        "S3",
        "master -> web1 (host to local container)",
        true,
        &[
            "lab", "exec", "master", "--", &exe, "tool", "ping", "-c", "2", "-W", "2", &web1,
        ],
    )?;
    d.must(&["trace", "node:master", &web1, "--verify"])?;

    section("S5: web1 (master) -> b-web1 (slave1) across nodes, no NAT: a route per remote block via the node");
    d.must(&["lab", "exec", "slave1", "--", "ip", "route"])?;
    d.check(
        "S5",
        "web1 -> b-web1 (cross node)",
        true,
        &["exec", "web1", "ping", "-c", "2", "-W", "2", &bweb1],
    )?;
    d.check(
        "S5",
        "b-web1 -> web1 (cross node)",
        true,
        &["exec", "b-web1", "ping", "-c", "2", "-W", "2", &web1],
    )?;
    section("S5: the cross-node path hop by hop (tcpdump-like lines; * marks rewritten fields)");
    d.must(&["trace", "web1", "b-web1", "--verify"])?;
    d.check(
        "S5",
        "web1 -> b-web1:80 (httpd answers with the client's own IP)",
        true,
        &["exec", "web1", "wget", "-qO-", &format!("http://{bweb1}/")],
    )?;

    let web3 = d.ip_of("web3")?;
    section("S4: web1 (net1) -> web3 (net2) on the same node: each network's profile admits only its own");
    d.check(
        "S4",
        "web1 -> web3 (other network)",
        false,
        &["exec", "web1", "ping", "-c", "1", "-W", "1", &web3],
    )?;
    d.weft(&["trace", "web1", &web3])?;
    d.must(&[
        "lab",
        "exec",
        "master",
        "--",
        "nft",
        "list",
        "chain",
        "inet",
        "weft",
        "prof_in_net2",
    ])
    .or_else(|_| Ok::<String, anyhow::Error>(String::new()))?;
    section("S6: another node's host -> web1: denied on an isolated network");
    d.check(
        "S6",
        "slave1 (host) -> web1",
        false,
        &[
            "lab", "exec", "slave1", "--", &exe, "tool", "ping", "-c", "1", "-W", "1", &web1,
        ],
    )?;
    d.weft(&["trace", "node:slave1", &web1, "--verify"])?;

    section("seed 001: Kubernetes-style network (isolation none), a Service with a NodePort, the allow-tcp-80 policy");
    d.must(&["network", "create", "k8s", "--isolation", "none"])?;
    for (name, node, label) in [
        ("nginx", "master", "app=nginx"),
        ("nginx2", "slave1", "app=nginx"),
        ("pod1", "slave1", "role=pod1"),
        ("pod2", "slave2", "role=pod2"),
    ] {
        d.must(&[
            "--node", node, "run", "-d", "--name", name, "--net", "k8s", "--label", label,
            "toolbox", "httpd",
        ])?;
    }
    d.apply(SEED_001_SERVICE)?;
    d.must(&["get", "svc"])?;
    d.must(&["get", "endpoints"])?;
    let cluster_ip = d.cluster_ip("nginx")?;
    let nginx = d.ip_of("nginx")?;
    section("S10: pod2 -> ClusterIP: DNAT to a local or remote endpoint, chosen at random");
    for _ in 0..4 {
        d.check(
            "S10",
            "pod2 -> nginx service (ClusterIP)",
            true,
            &[
                "exec",
                "pod2",
                "wget",
                "-qO-",
                "-T",
                "2",
                &format!("http://{cluster_ip}/"),
            ],
        )?;
    }
    d.weft(&["trace", "pod2", "svc:nginx", "--verify"])?;
    section("S11: the node itself -> ClusterIP");
    d.check(
        "S11",
        "slave2 (host) -> nginx service",
        true,
        &[
            "lab",
            "exec",
            "slave2",
            "--",
            &exe,
            "tool",
            "wget",
            "-qO-",
            "-T",
            "2",
            &format!("http://{cluster_ip}/"),
        ],
    )?;
    d.weft(&["trace", "node:slave2", "svc:nginx", "--verify"])?;
    section("S12: ext -> NodePort 30080 on every node, masqueraded to the node");
    for addr in ["198.51.100.11", "198.51.100.12", "198.51.100.13"] {
        d.check(
            "S12",
            &format!("ext -> {addr}:30080"),
            true,
            &[
                "lab",
                "exec",
                "ext",
                "--",
                &exe,
                "tool",
                "wget",
                "-qO-",
                "-T",
                "2",
                &format!("http://{addr}:30080/"),
            ],
        )?;
    }
    d.weft(&[
        "trace",
        "ext",
        "198.51.100.12",
        "--proto",
        "tcp",
        "--port",
        "30080",
        "--verify",
    ])?;
    section("S13: allow-tcp-80 (seed 001): pod1 reaches nginx:80, pod2 does not");
    d.apply(SEED_001_POLICY)?;
    d.must(&["get", "policy"])?;
    d.check(
        "S13",
        "pod1 -> nginx:80",
        true,
        &[
            "exec",
            "pod1",
            "wget",
            "-qO-",
            "-T",
            "2",
            &format!("http://{nginx}/"),
        ],
    )?;
    d.check(
        "S13",
        "pod2 -> nginx:80",
        false,
        &[
            "exec",
            "pod2",
            "wget",
            "-qO-",
            "-T",
            "2",
            &format!("http://{nginx}/"),
        ],
    )?;
    d.weft(&[
        "trace", "pod2", "nginx", "--proto", "tcp", "--port", "80", "--verify",
    ])?;
    section("S17: web1 -> 203.0.113.1 (the outside, on gw): masqueraded to master");
    // A web server "on the internet"; `lab down` ends it with the lab.
    let _internet = Command::new(&d.exe)
        .args([
            "--lab", LAB, "lab", "exec", "gw", "--", &exe, "tool", "httpd", "-p", "80",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("start a web server on gw")?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.check(
        "S17",
        "web1 -> 203.0.113.1 (answers: gw, then master's address)",
        true,
        &[
            "exec",
            "web1",
            "wget",
            "-qO-",
            "-T",
            "2",
            "http://203.0.113.1/",
        ],
    )?;
    d.weft(&[
        "trace",
        "web1",
        "203.0.113.1",
        "--proto",
        "tcp",
        "--port",
        "80",
        "--verify",
    ])?;
    d.must(&[
        "lab",
        "exec",
        "master",
        "--",
        "nft",
        "list",
        "chain",
        "inet",
        "weft",
        "postrouting",
    ])
    .or_else(|_| Ok::<String, anyhow::Error>(String::new()))?;
    d.must(&["ipam", "check"])?;
    Ok(())
}

/// Seed 001's Service, with a NodePort.
const SEED_001_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  type: NodePort
  selector:
    app: nginx
  ports:
  - port: 80
    targetPort: 80
    nodePort: 30080
";

/// Seed 001's NetworkPolicy, as written there.
const SEED_001_POLICY: &str = "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-tcp-80
  namespace: default
spec:
  selector: app == 'nginx'
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: role == 'pod1'
    destination:
      ports:
      - 80
";
