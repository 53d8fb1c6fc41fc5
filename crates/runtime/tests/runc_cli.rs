//! The `weft-runc` command line driven like an engine drives runc: create (the init keeps
//! create's stdout and stderr; its pid in the pid file), state JSON, start, ps, exec, kill,
//! delete; `run` in the foreground; errors on stderr and as JSON lines in the --log file,
//! exit code 1.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use weft_runtime::RunSpec;

const EXE: &str = env!("CARGO_BIN_EXE_weft-runc");

/// Deletes the container (force) when the test ends, also on panic.
struct Cleanup<'a>(&'a Env, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = weft_runtime::delete(&self.0.root, &self.1, true);
    }
}

fn sh(script: &str) -> RunSpec {
    RunSpec {
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        ..RunSpec::default()
    }
}

/// `weft-runc --root R --log L --log-format json ARGS...`, stdout and stderr captured.
fn runc(env: &Env, args: &[&str]) -> Output {
    Command::new(EXE)
        .arg("--root")
        .arg(&env.root)
        .arg("--log")
        .arg(log_path(env))
        .args(["--log-format", "json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run weft-runc")
}

fn log_path(env: &Env) -> PathBuf {
    env.tmp.path().join("runc.log")
}

fn state_json(env: &Env, id: &str) -> serde_json::Value {
    let out = runc(env, &["state", id]);
    assert!(
        out.status.success(),
        "state {id}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("state JSON")
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Makes this test process the reaper of orphans (as conmon is), so it can collect the
/// container's exit code like conmon does.
fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only changes this process's attributes.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

fn reap(pid: i32, timeout: Duration) -> i32 {
    let deadline = Instant::now() + timeout;
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a pid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            if libc::WIFEXITED(status) {
                return libc::WEXITSTATUS(status);
            }
            return 128 + libc::WTERMSIG(status);
        }
        assert!(r == 0, "waitpid {pid}: not our child");
        assert!(Instant::now() < deadline, "process {pid} did not exit");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn engine_lifecycle_through_the_cli() {
    let Some(env) = Env::new("engine_lifecycle_through_the_cli") else {
        return;
    };
    become_subreaper();
    let id = format!("rc-{}", std::process::id());
    let bundle = env.bundle(
        &id,
        sh("echo hello from $(hostname); echo to-err >&2; sleep 30"),
    );
    let _cleanup = Cleanup(&env, id.clone());
    let pid_file = env.tmp.path().join("pid");
    let out_path = env.tmp.path().join("stdout");
    let err_path = env.tmp.path().join("stderr");
    let status = Command::new(EXE)
        .arg("--root")
        .arg(&env.root)
        .args(["create", "--bundle"])
        .arg(&bundle.dir)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).expect("stdout file"))
        .stderr(File::create(&err_path).expect("stderr file"))
        .status()
        .expect("create");
    assert!(status.success());
    let pid_from_file: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .parse()
        .expect("pid");

    let v = state_json(&env, &id);
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(|k| k.as_str())
        .collect();
    for k in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ] {
        assert!(keys.contains(&k), "state lacks {k}: {v}");
    }
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "created");
    assert_eq!(v["owner"], "");
    assert_eq!(v["bundle"], bundle.dir.to_str().expect("utf8"));
    assert_eq!(
        v["rootfs"],
        bundle.dir.join("rootfs").to_str().expect("utf8")
    );
    let init = v["pid"].as_i64().expect("pid") as i32;
    assert_eq!(
        init, pid_from_file,
        "the pid file names the container's init"
    );

    assert!(runc(&env, &["start", &id]).status.success());
    assert_eq!(state_json(&env, &id)["status"], "running");
    // The init writes to create's stdout and stderr directly, each to its own.
    wait_for("the output", Duration::from_secs(10), || {
        std::fs::read_to_string(&out_path).is_ok_and(|s| s.contains("hello from"))
            && std::fs::read_to_string(&err_path).is_ok_and(|s| s == "to-err\n")
    });
    assert!(!std::fs::read_to_string(&out_path)
        .expect("stdout")
        .contains("to-err"));

    let ps = runc(&env, &["ps", "--format", "json", &id]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).expect("ps json");
    assert!(pids.contains(&init), "{pids:?}");

    let ex = runc(
        &env,
        &["exec", &id, "/bin/sh", "-c", "echo in-exec; exit 4"],
    );
    assert_eq!(ex.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&ex.stdout), "in-exec\n");
    let process = env.tmp.path().join("process.json");
    std::fs::write(
        &process,
        r#"{"args":["/bin/sh","-c","echo $FOO"],"env":["FOO=bar"],"cwd":"/","user":{"uid":0,"gid":0}}"#,
    )
    .expect("process.json");
    let ex = runc(
        &env,
        &["exec", "--process", process.to_str().expect("utf8"), &id],
    );
    assert_eq!(String::from_utf8_lossy(&ex.stdout), "bar\n");

    // An exec runs from a read-only bind mount of the weft binary (CVE-2019-5736): what a
    // container may reach through its /proc/<pid>/exe cannot be written.
    let mut slow = Command::new(EXE)
        .arg("--root")
        .arg(&env.root)
        .args(["exec", &id, "/bin/sh", "-c", "sleep 2"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn exec");
    let exe = format!("/proc/{}/exe", slow.id());
    wait_for(
        "exec to run from a read-only mount",
        Duration::from_secs(5),
        || {
            nix::sys::statvfs::statvfs(exe.as_str())
                .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        },
    );
    assert_eq!(
        std::fs::read_link(&exe).expect("exe link"),
        std::fs::canonicalize(EXE).expect("weft-runc"),
        "the same binary, re-executed"
    );
    assert!(slow.wait().expect("wait exec").success());

    assert!(runc(&env, &["kill", &id, "KILL"]).status.success());
    assert_eq!(
        reap(init, Duration::from_secs(10)),
        137,
        "the subreaper reaps the container's init"
    );
    let v = state_json(&env, &id);
    assert_eq!(v["status"], "stopped");
    assert_eq!(v["pid"], 0);

    let k = runc(&env, &["kill", &id, "TERM"]);
    assert_eq!(k.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&k.stderr).contains("container not running"));

    assert!(runc(&env, &["delete", &id]).status.success());
    let gone = runc(&env, &["state", &id]);
    assert_eq!(gone.status.code(), Some(1));
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(err.contains("does not exist"), "{err}");
    // Engines read errors back from the --log file as JSON lines.
    let log = std::fs::read_to_string(log_path(&env)).expect("log");
    let last: serde_json::Value =
        serde_json::from_str(log.lines().last().expect("a line")).expect("json line");
    assert_eq!(last["level"], "error");
    assert!(last["msg"]
        .as_str()
        .expect("msg")
        .contains("does not exist"));
    assert!(last["time"].is_string());
    assert!(runc(&env, &["delete", "--force", &id]).status.success());
    env.assert_no_mounts();
}

#[test]
fn run_in_the_foreground_returns_the_exit_code() {
    let Some(env) = Env::new("run_in_the_foreground_returns_the_exit_code") else {
        return;
    };
    let id = format!("rr-{}", std::process::id());
    let bundle = env.bundle(&id, sh("echo out; exit 3"));
    let _cleanup = Cleanup(&env, id.clone());
    let out = runc(
        &env,
        &["run", "--bundle", bundle.dir.to_str().expect("utf8"), &id],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    // run deletes the container once it exited.
    let list = runc(&env, &["list", "--quiet"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains(&id));
    assert!(Path::new(&env.root).exists());

    let bad = runc(&env, &["kill", "no-such", "NOPE"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid signal"));
}

/// `process.rlimits` of config.json apply to the container's process; a soft limit above
/// its hard one is refused with the limit's name.
#[test]
fn rlimits_of_the_spec_apply_to_the_process() {
    let Some(env) = Env::new("rlimits_of_the_spec_apply_to_the_process") else {
        return;
    };
    let id = format!("rl-{}", std::process::id());
    let bundle = env.bundle(&id, sh("ulimit -n; ulimit -Hn"));
    let _cleanup = Cleanup(&env, id.clone());
    let config = bundle.dir.join("config.json");
    let set_rlimits = |soft: u64, hard: u64| {
        let mut spec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config).expect("read config.json"))
                .expect("config.json");
        spec["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "soft": soft, "hard": hard}]);
        std::fs::write(&config, spec.to_string()).expect("write config.json");
    };
    let dir = bundle.dir.to_str().expect("utf8");

    set_rlimits(123, 456);
    let out = runc(&env, &["run", "--bundle", dir, &id]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "123\n456\n");

    set_rlimits(500, 400);
    let out = runc(&env, &["run", "--bundle", dir, &id]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RLIMIT_NOFILE soft limit 500 is above its hard limit 400"),
        "{err}"
    );
}
