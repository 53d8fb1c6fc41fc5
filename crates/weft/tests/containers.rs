//! Seed 002's "own docker" and seed 003's pod: S14 isolation and limits, S15 overlay rootfs
//! and images from host binaries, S20 containers sharing a network namespace.

mod common;

use std::time::{Duration, Instant};

use common::{can_run, Lab};

/// S14: own hostname, PID 1, own IPC, own mounts and /proc, own network; a 50 % CPU quota holds
/// a busy loop near half a core; a memory limit is enforced (OOM: 137 and OOMKilled).
#[test]
fn s14_isolation_and_limits() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&[
        "--node", "n1", "run", "-d", "--name", "box", "--net", "net1", "toolbox", "sleep", "600",
    ]);
    assert_eq!(lab.ok(&["exec", "box", "hostname"]).trim(), "box", "UTS");
    let pid1 = lab.ok(&["exec", "box", "cat", "/proc/1/cmdline"]);
    assert!(
        pid1.starts_with("sleep"),
        "PID 1 is the container's process: {pid1:?}"
    );
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let inner_ipc = lab.ok(&["exec", "box", "sh", "-c", "ls -l /proc/self/ns/ipc"]);
    assert!(
        !inner_ipc.contains(&host_ipc.to_string_lossy().to_string()),
        "IPC namespace is its own"
    );
    let mounts = lab.ok(&["exec", "box", "cat", "/proc/mounts"]);
    assert!(
        mounts
            .lines()
            .next()
            .unwrap_or_default()
            .starts_with("overlay / overlay"),
        "{mounts}"
    );
    let points: Vec<&str> = mounts.lines().filter_map(|l| l.split(' ').nth(1)).collect();
    assert!(
        points.iter().all(|p| ["/", "/proc", "/dev", "/sys"]
            .iter()
            .any(|r| *p == *r || p.starts_with(&format!("{r}/")))),
        "only the container's own mounts: {points:?}"
    );
    let links = lab.ok(&["exec", "box", "ip", "-o", "link"]);
    assert_eq!(links.lines().count(), 2, "only lo and eth0: {links}");
    // `weft exec` enters the container from a read-only bind mount of the weft binary
    // (CVE-2019-5736): what the container could reach through /proc/<pid>/exe is read-only.
    let mut slow = common::weft_cmd()
        .args(["--lab", &lab.name, "exec", "box", "sleep", "2"])
        .spawn()
        .expect("spawn weft exec");
    let exe = format!("/proc/{}/exe", slow.id());
    assert!(
        common::wait_until(Duration::from_secs(5), || {
            nix::sys::statvfs::statvfs(exe.as_str())
                .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        }),
        "weft exec does not run from a read-only mount"
    );
    assert!(slow.wait().expect("wait weft exec").success());

    // CPU: --cpus 0.5 holds a busy loop near half a core.
    lab.ok(&[
        "--node",
        "n1",
        "run",
        "-d",
        "--name",
        "busy",
        "--net",
        "net1",
        "--cpus",
        "0.5",
        "toolbox",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let usage = |name: &str| -> f64 {
        let v: serde_json::Value =
            serde_json::from_str(&lab.ok(&["-o", "json", "stats", name])).unwrap();
        v[0]["cpu_usage_ns"].as_f64().unwrap()
    };
    let (u0, t0) = (usage("busy"), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let share = (usage("busy") - u0) / 1e9 / t0.elapsed().as_secs_f64();
    assert!(
        (0.25..0.7).contains(&share),
        "a 50% quota holds near half a core, got {share:.2}"
    );

    // Memory: 32 MiB, and a process that wants more is killed by the OOM killer.
    let r = lab.weft(&[
        "--node",
        "n1",
        "run",
        "--name",
        "hog",
        "--net",
        "net1",
        "-m",
        "32m",
        "toolbox",
        "sh",
        "-c",
        "x=a; while :; do x=$x$x; done",
    ]);
    assert_eq!(
        r.code, 137,
        "killed by the OOM killer: {}{}",
        r.stdout, r.stderr
    );
    let hog = lab.inspect("hog");
    assert_eq!(hog["oom_killed"], true, "{hog}");
}

/// S15: the rootfs is copy-on-write: writes inside do not reach the image; an image can be built
/// from host binaries with the libraries they need.
#[test]
fn s15_overlay_rootfs_and_images_from_host_binaries() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&[
        "--node", "n1", "run", "-d", "--name", "a", "--net", "net1", "toolbox", "sleep", "600",
    ]);
    lab.ok(&[
        "exec",
        "a",
        "sh",
        "-c",
        "echo changed > /bin/cat-was-here; echo broken > /bin/hostname",
    ]);
    lab.ok(&[
        "--node", "n1", "run", "-d", "--name", "b", "--net", "net1", "toolbox", "sleep", "600",
    ]);
    assert!(
        !lab.weft(&["exec", "b", "cat", "/bin/cat-was-here"]).ok(),
        "a's write is a's alone"
    );
    assert_eq!(
        lab.ok(&["exec", "b", "hostname"]).trim(),
        "b",
        "a's overwrite is a's alone"
    );

    let name = format!("tiny-{}", lab.name);
    let built = lab.weft(&[
        "image",
        "build",
        &name,
        "--from-host",
        "/bin/sh",
        "/bin/ls",
        "/bin/sleep",
    ]);
    assert!(built.ok(), "{}", built.stderr);
    lab.ok(&[
        "--node",
        "n1",
        "run",
        "-d",
        "--name",
        "c",
        "--net",
        "net1",
        &name,
        "sh",
        "-c",
        "sleep 600",
    ]);
    let ls = lab.ok(&["exec", "c", "ls", "/"]);
    assert!(ls.contains("bin") && ls.contains("lib"), "{ls}");
    lab.ok(&["rm", "-f", "c"]);
    lab.ok(&["image", "rm", &name]);
}

/// S20: two containers of one pod share a network namespace: they talk over localhost and
/// nothing shows on eth0.
#[test]
fn s20_pod_containers_share_localhost() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&[
        "--node", "n1", "run", "-d", "--name", "pod", "--net", "net1", "toolbox", "httpd", "-p",
        "8080",
    ]);
    lab.ok(&[
        "--node",
        "n1",
        "run",
        "-d",
        "--name",
        "side",
        "--net",
        "container:pod",
        "toolbox",
        "sleep",
        "600",
    ]);
    let side = lab.inspect("side");
    assert_eq!(
        side["ip"],
        lab.inspect("pod")["ip"],
        "same address: same namespace"
    );
    let tx = |what: &str| -> u64 {
        lab.ok(&[
            "exec",
            "pod",
            "cat",
            &format!("/sys/class/net/eth0/statistics/{what}"),
        ])
        .trim()
        .parse()
        .unwrap()
    };
    let before = tx("tx_packets") + tx("rx_packets");
    let body = lab.ok(&["exec", "side", "wget", "-qO-", "http://127.0.0.1:8080/"]);
    assert!(body.starts_with("pod\n127.0.0.1:"), "{body}");
    assert_eq!(
        tx("tx_packets") + tx("rx_packets"),
        before,
        "nothing crossed eth0"
    );
}
