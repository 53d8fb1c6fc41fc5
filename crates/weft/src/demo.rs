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
    d.check(
        "S5",
        "web1 -> b-web1:80 (httpd answers with the client's own IP)",
        true,
        &["exec", "web1", "wget", "-qO-", &format!("http://{bweb1}/")],
    )?;
    d.must(&["ipam", "check"])?;
    Ok(())
}
