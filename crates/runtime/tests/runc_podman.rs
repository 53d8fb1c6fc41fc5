//! A real engine drives weft: Debian's podman + conmon with `--runtime weft-runc` run,
//! exec, log, stop, kill and remove containers of an image imported from a rootfs tarball.
//! Podman's state lives in a private temp dir (vfs storage, cgroupfs, file events, no
//! network). Skipped, with a message, when not root or when podman or conmon is missing
//! (`apt-get install podman conmon`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::Env;

const EXE: &str = env!("CARGO_BIN_EXE_weft-runc");

/// A private podman: every path under the test's temp dir, weft-runc as the runtime with its
/// own state root.
struct Podman {
    base: PathBuf,
}

impl Podman {
    fn cmd(&self) -> Command {
        let b = &self.base;
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(b.join("storage"))
            .arg("--runroot")
            .arg(b.join("run"))
            .arg("--tmpdir")
            .arg(b.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .arg("--runtime")
            .arg(EXE)
            .arg("--runtime-flag")
            .arg(format!("root={}", b.join("weft-runc").display()))
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd().args(args).output().expect("run podman");
        eprintln!(
            "podman {}: {:?}\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "podman {} failed", args.join(" "));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rm", "-af", "-t", "0"]).output();
        let _ = self.cmd().args(["rmi", "-af"]).output();
        // Nothing of podman's may stay mounted under our temp dir.
        let base = self.base.to_string_lossy().to_string();
        if let Ok(m) = std::fs::read_to_string("/proc/self/mounts") {
            for line in m.lines().rev() {
                if let Some(p) = line.split_whitespace().nth(1) {
                    if p.starts_with(&base) {
                        let _ = Command::new("umount").arg("-l").arg(p).status();
                    }
                }
            }
        }
    }
}

fn have(prog: &str) -> bool {
    Command::new(prog)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One rootfs tarball out of the test image's two layers (merged with cp -a first: a tar
/// with the same path twice is refused by podman).
fn rootfs_tarball(env: &Env, dest: &Path) {
    let merged = env.tmp.path().join("merged");
    std::fs::create_dir_all(&merged).expect("mkdir merged");
    for layer in env.layers.iter().rev() {
        let st = Command::new("cp")
            .arg("-a")
            .arg(layer.join("."))
            .arg(&merged)
            .status()
            .expect("cp");
        assert!(st.success(), "cp -a {}", layer.display());
    }
    let st = Command::new("tar")
        .arg("-cf")
        .arg(dest)
        .arg("-C")
        .arg(&merged)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar of the rootfs");
}

/// `--memory 64m --cpus 0.5` reached the container's cgroup (v1 or v2), when the runtime
/// put the container in the cgroup podman asked for.
fn check_limits(pm: &Podman, name: &str) {
    let id = pm.ok(&["inspect", name, "--format", "{{.Id}}"]);
    let st = Command::new(EXE)
        .arg("--root")
        .arg(pm.base.join("weft-runc"))
        .args(["state", id.trim()])
        .output()
        .expect("weft-runc state");
    let v: serde_json::Value = serde_json::from_slice(&st.stdout).expect("state json");
    let pid = v["pid"].as_i64().expect("pid");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    let path = |ctrl: &str| {
        cgroups.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, p) = (f.next()?, f.next()?, f.next()?);
            (ctrls.split(',').any(|c| c == ctrl) && p.contains(id.trim())).then(|| p.to_string())
        })
    };
    let read = |p: String| {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    if let Some(p) = path("memory") {
        assert_eq!(
            read(format!("/sys/fs/cgroup/memory{p}/memory.limit_in_bytes")),
            "67108864"
        );
        let cpu = path("cpu").expect("cpu cgroup");
        assert_eq!(
            read(format!("/sys/fs/cgroup/cpu{cpu}/cpu.cfs_quota_us")),
            "50000"
        );
    } else if let Some(p) = path("") {
        assert_eq!(read(format!("/sys/fs/cgroup{p}/memory.max")), "67108864");
        assert!(read(format!("/sys/fs/cgroup{p}/cpu.max")).starts_with("50000 "));
    } else {
        eprintln!("limits not checked: the container is not in podman's cgroup ({cgroups})");
    }
}

#[test]
fn podman_runs_containers_with_weft_runc() {
    let Some(env) = Env::new("podman_runs_containers_with_weft_runc") else {
        return;
    };
    if !have("podman") || !have("conmon") {
        eprintln!(
            "skipping podman_runs_containers_with_weft_runc: podman and conmon are not \
             installed (apt-get install podman conmon)"
        );
        return;
    }
    let pm = Podman {
        base: env.tmp.path().join("podman"),
    };
    let tarball = env.tmp.path().join("rootfs.tar");
    rootfs_tarball(&env, &tarball);
    let image = format!("localhost/weft-test-{}:1", std::process::id());
    pm.ok(&["import", tarball.to_str().expect("utf8"), &image]);

    // run --rm: output and exit codes come through.
    let out = pm.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "echo hi",
    ]);
    assert_eq!(out, "hi\n");
    let out = pm.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "echo e >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "e\n");
    // stdout and stderr stay apart (conmon's pipes reach the process).
    let out = pm.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // A command that does not exist: podman's 127, with runc's words.
    let out = pm.run(&["run", "--rm", "--network", "none", &image, "no-such-cmd"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("executable file not found"));
    // -t: the process has a terminal of the container (conmon got its master).
    let out = pm.ok(&["run", "--rm", "-t", "--network", "none", &image, "tty"]);
    assert!(out.trim_end().starts_with("/dev/pts/"), "{out:?}");

    // run -d, exec, logs, stop, rm.
    let name = format!("weft-pm-{}", std::process::id());
    pm.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        &image,
        "sh",
        "-c",
        "echo started; sleep 300",
    ]);
    assert_eq!(
        pm.ok(&["exec", &name, "sh", "-c", "echo in-exec"]),
        "in-exec\n"
    );
    assert_eq!(
        pm.run(&["exec", &name, "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    let out = pm.ok(&["exec", "-t", &name, "tty"]);
    assert!(out.trim_end().starts_with("/dev/pts/"), "{out:?}");
    let out = pm.run(&["exec", &name, "sh", "-c", "echo o; echo e >&2"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "o\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "e\n");
    // exec with the image's working directory and a user.
    assert_eq!(
        pm.ok(&[
            "exec",
            "-u",
            "1000",
            "-w",
            "/tmp",
            &name,
            "sh",
            "-c",
            "id -u; pwd"
        ]),
        "1000\n/tmp\n"
    );
    let state = pm.ok(&["inspect", &name, "--format", "{{.State.Status}}"]);
    assert_eq!(state.trim(), "running");
    assert!(pm.ok(&["logs", &name]).contains("started"));
    check_limits(&pm, &name);
    pm.ok(&["stop", "-t", "1", &name]);
    let state = pm.ok(&["inspect", &name, "--format", "{{.State.Status}}"]);
    assert_eq!(state.trim(), "exited");
    pm.ok(&["rm", &name]);

    // kill a running container.
    pm.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "none",
        &image,
        "sleep",
        "300",
    ]);
    pm.ok(&["kill", &name]);
    let code = pm.ok(&["wait", &name]);
    assert_eq!(code.trim(), "137");
    pm.ok(&["rm", &name]);
    env.assert_no_mounts();
}
