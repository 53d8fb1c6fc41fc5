//! Lab and container life cycles: many containers at once, bad input, and a clean `lab down`.

mod common;

use std::collections::HashSet;
use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{can_run, weft_cmd, Lab};

/// 100 containers started in parallel on three nodes get 100 distinct addresses; once they are
/// removed, `weft ipam check` is clean and no address is held.
#[test]
fn hundred_parallel_containers_get_distinct_addresses() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1", "n2", "n3"]);
    lab.ok(&["network", "create", "net1"]);
    let names: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    let nodes = ["n1", "n2", "n3"];
    std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let lab = &lab;
                s.spawn(move || {
                    lab.weft(&[
                        "--node",
                        nodes[i % 3],
                        "run",
                        "-d",
                        "--name",
                        n,
                        "--net",
                        "net1",
                        "toolbox",
                        "sleep",
                        "600",
                    ])
                })
            })
            .collect();
        for (h, n) in handles.into_iter().zip(&names) {
            let r = h.join().unwrap();
            assert!(r.ok(), "run {n}: {}{}", r.stdout, r.stderr);
        }
    });
    let ps: serde_json::Value = serde_json::from_str(&lab.ok(&["-o", "json", "ps"])).unwrap();
    let ips: HashSet<String> = ps
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["ip"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ps.as_array().unwrap().len(), 100);
    assert_eq!(ips.len(), 100, "addresses must be distinct");
    lab.ok(&["ipam", "check"]);

    std::thread::scope(|s| {
        for chunk in names.chunks(10) {
            let lab = &lab;
            s.spawn(move || {
                let mut args = vec!["rm", "-f"];
                args.extend(chunk.iter().map(String::as_str));
                lab.ok(&args);
            });
        }
    });
    assert_eq!(lab.ok(&["ps", "-a", "-o", "json"]).trim(), "[]");
    lab.ok(&["ipam", "check"]);
    let usage: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "ipam", "show"])).unwrap();
    for pool in usage.as_array().unwrap() {
        assert_eq!(pool["in_use"], 0, "no address may stay held: {pool}");
    }
    // The veths go with their containers' namespaces, which the kernel tears down in its own
    // time after `rm` (their routes went at once): none may remain.
    for n in nodes {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let links = lab.on(n, &["ip", "-o", "link"]);
            if !links.contains("cali") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no cali link may remain on {n}: {links}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let routes = lab.on(n, &["ip", "-o", "route"]);
        assert!(
            !routes.contains("cali"),
            "no route to a removed container may remain on {n}: {routes}"
        );
    }
}

/// Bad input answers with a clear error, a non-zero exit, and leaves nothing half-made.
#[test]
fn bad_input_is_refused_cleanly() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    let r = lab.weft(&["network", "create", "bad", "--subnet", "10.0.0.0/33"]);
    assert!(!r.ok() && r.stderr.contains("CIDR"), "{}", r.stderr);
    assert!(!lab.ok(&["network", "ls"]).contains("bad"));

    let r = lab.weft(&[
        "run", "-d", "--name", "x", "--net", "nope", "toolbox", "sleep", "9",
    ]);
    assert!(
        !r.ok() && r.stderr.contains("network \"nope\" not found"),
        "{}",
        r.stderr
    );
    let r = lab.weft(&[
        "run",
        "-d",
        "--name",
        "x",
        "--net",
        "default",
        "no-such-image",
    ]);
    assert!(
        !r.ok() && r.stderr.contains("image \"no-such-image\" not found"),
        "{}",
        r.stderr
    );
    assert_eq!(
        lab.ok(&["ps", "-a", "-o", "json"]).trim(),
        "[]",
        "failed runs leave no record"
    );

    lab.ok(&["network", "create", "net1"]);
    lab.run("n1", "web1", "net1");
    let r = lab.weft(&[
        "run", "-d", "--name", "web1", "--net", "net1", "toolbox", "sleep", "9",
    ]);
    assert!(
        !r.ok() && r.stderr.contains("already in use"),
        "{}",
        r.stderr
    );

    // A run that fails after its veth was made: the command does not exist in the image.
    let r = lab.weft(&[
        "run",
        "-d",
        "--name",
        "broken",
        "--net",
        "net1",
        "toolbox",
        "/no/such/program",
    ]);
    assert!(!r.ok(), "{}", r.stdout);
    assert!(
        r.stderr.contains("/no/such/program"),
        "the error names the program: {}",
        r.stderr
    );
    let ps = lab.ok(&["ps", "-a"]);
    assert!(!ps.contains("broken"), "{ps}");
    let usage: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "ipam", "show"])).unwrap();
    let in_use: u64 = usage
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["in_use"].as_u64().unwrap())
        .sum();
    assert_eq!(in_use, 1, "only web1 holds an address: {usage}");
    let links = lab.on("n1", &["ip", "-o", "link"]);
    assert_eq!(
        links.matches("cali").count(),
        1,
        "only web1's veth remains: {links}"
    );
    lab.ok(&["ipam", "check"]);

    // Not root.
    let out = weft_cmd()
        .args(["--lab", &lab.name, "ps"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
}

fn root_netns_snapshot() -> String {
    let mut s = String::new();
    for args in [
        &["-o", "link"][..],
        &["-o", "addr"][..],
        &["route", "show", "table", "all"][..],
        &["rule"][..],
    ] {
        let out = Command::new("ip").args(args).output().unwrap();
        // Link statistics-free listing; strip fields that change by themselves.
        let text = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.contains("valid_lft") || l.contains("forever"))
            .collect::<Vec<_>>()
            .join("\n");
        s.push_str(&text);
        s.push('\n');
    }
    if let Ok(out) = Command::new("nft").args(["list", "tables"]).output() {
        s.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    s
}

/// After `lab down` no namespace, mount, process or state of the lab remains, and the root
/// network namespace is exactly as before `lab up`.
#[test]
fn lab_down_leaves_nothing() {
    if !can_run() {
        return;
    }
    let before = root_netns_snapshot();
    let lab = Lab::up(&["n1", "n2"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("n1", "a", "net1");
    lab.run("n2", "b", "net1");
    lab.ok(&[
        "--node", "n1", "run", "-d", "--name", "limited", "--net", "net1", "-m", "32m", "toolbox",
        "sleep", "600",
    ]);
    let pid = lab.inspect("a")["pid"].as_i64().unwrap();
    let cgroups_of_lab = |name: &str| {
        ["memory", "pids", "cpu", "unified"]
            .iter()
            .map(|c| format!("/sys/fs/cgroup/{c}/weft/{name}"))
            .filter(|d| std::path::Path::new(d).exists())
            .collect::<Vec<_>>()
    };
    assert!(
        !cgroups_of_lab(&lab.name).is_empty(),
        "the limited container has a cgroup under weft/<lab>"
    );
    let info: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "lab", "ls"])).unwrap();
    let agent_pids: Vec<i64> = info
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["name"] == lab.name.as_str())
        .flat_map(|l| {
            l["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n["agent_pid"].as_i64().unwrap())
        })
        .collect();
    assert_eq!(agent_pids.len(), 2);
    let name = lab.name.clone();
    let lab_dir = format!("{}/labs/{name}", common::test_root());
    assert!(std::path::Path::new(&lab_dir).exists());
    drop(lab);

    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let netns = String::from_utf8_lossy(&netns.stdout);
    assert!(!netns.contains(&format!("weft-{name}-")), "{netns}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(&name),
        "mounts of the lab remain: {mounts}"
    );
    assert!(
        !std::path::Path::new(&lab_dir).exists(),
        "state of the lab remains"
    );
    for p in agent_pids.iter().chain([&pid]) {
        let alive = std::fs::read_to_string(format!("/proc/{p}/status"))
            .map(|s| !s.contains("State:\tZ"))
            .unwrap_or(false);
        assert!(!alive, "process {p} of the lab is still running");
    }
    assert_eq!(
        root_netns_snapshot(),
        before,
        "the root network namespace changed"
    );
    assert_eq!(
        cgroups_of_lab(&name),
        Vec::<String>::new(),
        "cgroups of the lab remain"
    );
}

/// Containers keep running when the CLI that started them has exited and when their node's
/// agent dies; the kernel keeps their wiring.
#[test]
fn containers_outlive_the_cli_and_the_agent() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.run("n1", "a", "net1");
    lab.run("n1", "b", "net1");
    let info: serde_json::Value =
        serde_json::from_str(&lab.ok(&["-o", "json", "lab", "ls"])).unwrap();
    let agent = info
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == lab.name.as_str())
        .unwrap()["nodes"][0]["agent_pid"]
        .as_i64()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for name in ["a", "b"] {
        assert_eq!(
            lab.inspect(name)["state"],
            "running",
            "{name} must outlive its agent"
        );
    }
    let ip_b = lab.ip("b");
    lab.ok(&["exec", "a", "ping", "-c", "1", "-W", "2", &ip_b]);
}
