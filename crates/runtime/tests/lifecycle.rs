//! Root tests of the container lifecycle: create, start, logs, exec, kill, stop, delete.
//! Each test skips (passes with a message) when not run as root.

mod common;

use std::fs;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::Env;
use weft_runtime::{ExecIo, NsMode, RunSpec, Status};

fn sh(script: &str, hostname: &str) -> RunSpec {
    RunSpec {
        args: vec!["sh".into(), "-c".into(), script.into()],
        hostname: hostname.into(),
        ..RunSpec::default()
    }
}

fn sleep_spec(hostname: &str) -> RunSpec {
    RunSpec {
        args: vec!["sleep".into(), "1000".into()],
        hostname: hostname.into(),
        ..RunSpec::default()
    }
}

fn ns_inode(pid: i32, ns: &str) -> u64 {
    fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .expect("ns")
        .ino()
}

/// Runs `args` in container `id` with stdout captured; returns (exit code, stdout).
fn exec_capture(env: &Env, id: &str, args: &[&str]) -> (i32, String) {
    let path = env.tmp.path().join(format!("exec-out-{id}"));
    let out = fs::File::create(&path).expect("out file");
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let io = ExecIo {
        stdout: Some(out.as_fd()),
        ..ExecIo::default()
    };
    let code = weft_runtime::exec_with(&env.root, id, &args, &[], io).expect("exec");
    (code, fs::read_to_string(&path).expect("read out"))
}

#[test]
fn run_to_completion_shows_output_hostname_and_pid_1() {
    let Some(env) = Env::new("run_to_completion") else {
        return;
    };
    let b = env.bundle(
        "echo",
        sh(
            "echo hi; hostname; echo $$; cat /proc/1/cmdline",
            "weft-echo",
        ),
    );
    let st = env.create("echo", &b).expect("create");
    assert_eq!(st.status, Status::Created);
    assert!(st.pid > 0);
    assert_eq!(st.bundle, b.dir);
    // new namespaces: pid, net, uts, ipc, mnt all differ from ours
    for ns in ["pid", "net", "uts", "ipc", "mnt"] {
        let me = std::process::id() as i32;
        if ns != "pid" {
            assert_ne!(ns_inode(st.pid, ns), ns_inode(me, ns), "{ns}");
        }
    }
    // the shim is detached: not our child
    let shim_ppid = fs::read_to_string(format!("/proc/{}/stat", st.shim_pid)).expect("stat");
    let ppid: i32 = shim_ppid[shim_ppid.rfind(')').expect(")") + 1..]
        .split_whitespace()
        .nth(1)
        .expect("ppid")
        .parse()
        .expect("int");
    assert_ne!(ppid, std::process::id() as i32);

    weft_runtime::start(&env.root, "echo").expect("start");
    let st = env.wait_stopped("echo", Duration::from_secs(10));
    assert_eq!(st.exit_code, Some(0));
    assert!(st.started.is_some() && st.finished.is_some());
    let log = env.logs("echo");
    assert_eq!(
        log,
        "hi\nweft-echo\n1\nsh\0-c\0echo hi; hostname; echo $$; cat /proc/1/cmdline\0"
    );

    weft_runtime::delete(&env.root, "echo", false).expect("delete");
    assert!(!env.root.join("echo").exists());
    assert!(matches!(
        weft_runtime::state(&env.root, "echo"),
        Err(weft_runtime::Error::NotFound { .. })
    ));
    env.assert_no_mounts();
}

#[test]
fn long_running_container_exec_stop_delete() {
    let Some(env) = Env::new("long_running") else {
        return;
    };
    let b = env.bundle("sleeper", sleep_spec("weft-sleeper"));
    env.create("sleeper", &b).expect("create");
    weft_runtime::start(&env.root, "sleeper").expect("start");
    let st = weft_runtime::state(&env.root, "sleeper").expect("state");
    assert_eq!(st.status, Status::Running);
    assert!(st.pid_alive());
    let listed = weft_runtime::list(&env.root).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, "sleeper");

    // the process holds only stdin, stdout, stderr, and ignores or blocks no signal (the
    // exec closes the init's close-on-exec fds one by one, and `start` may return once the
    // first of them, its report pipe, is closed: look until the exec is through)
    let fds_of = |pid: i32| -> Vec<String> {
        fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("fds")
            .map(|e| e.expect("fd").file_name().to_string_lossy().into_owned())
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut fds = fds_of(st.pid);
    while fds.len() != 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        fds = fds_of(st.pid);
    }
    assert_eq!(fds.len(), 3, "{fds:?}");
    let status = fs::read_to_string(format!("/proc/{}/status", st.pid)).expect("status");
    for field in ["SigIgn", "SigBlk"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .expect("field");
        assert!(line.ends_with("0000000000000000"), "{line}");
    }

    let (code, out) = exec_capture(&env, "sleeper", &["hostname"]);
    assert_eq!((code, out.as_str()), (0, "weft-sleeper\n"));
    let (code, out) = exec_capture(&env, "sleeper", &["cat", "/proc/1/cmdline"]);
    assert_eq!((code, out.as_str()), (0, "sleep\x001000\0"));
    let (code, _) = exec_capture(
        &env,
        "sleeper",
        &["sh", "-c", "echo data > /newfile; exit 3"],
    );
    assert_eq!(code, 3);
    // writes land in the bundle's upper dir, never in the image layers
    assert_eq!(
        fs::read_to_string(b.dir.join("upper/newfile")).expect("upper"),
        "data\n"
    );
    for l in &env.layers {
        assert!(!l.join("newfile").exists());
    }
    // /proc/sys is read-only, /proc/interrupts masked, /dev built by the runtime
    let (code, _) = exec_capture(
        &env,
        "sleeper",
        &["sh", "-c", "echo 1 > /proc/sys/kernel/domainname"],
    );
    assert_ne!(code, 0);
    let (code, out) = exec_capture(&env, "sleeper", &["cat", "/proc/interrupts"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out) = exec_capture(
        &env,
        "sleeper",
        &["sh", "-c", "echo x > /dev/null && cat /dev/null && echo ok"],
    );
    assert_eq!((code, out.as_str()), (0, "ok\n"));
    let err = weft_runtime::exec(&env.root, "sleeper", &["weft-nope".into()], &[], false)
        .expect_err("missing command");
    assert!(
        err.to_string()
            .contains("exec \"weft-nope\": No such file or directory"),
        "{err}"
    );

    let err = weft_runtime::delete(&env.root, "sleeper", false).expect_err("running");
    assert!(err.to_string().contains("running"), "{err}");

    weft_runtime::stop(&env.root, "sleeper", Duration::from_millis(500)).expect("stop");
    let st = weft_runtime::state(&env.root, "sleeper").expect("state");
    assert_eq!(st.status, Status::Stopped);
    assert!(matches!(st.exit_code, Some(137) | Some(143)), "{st:?}");
    assert!(weft_runtime::exec(&env.root, "sleeper", &["hostname".into()], &[], false).is_err());

    weft_runtime::delete(&env.root, "sleeper", false).expect("delete");
    assert!(!env.root.join("sleeper").exists());
    env.assert_no_mounts();
}

#[test]
fn missing_command_gives_a_clear_error() {
    let Some(env) = Env::new("missing_command") else {
        return;
    };
    let spec = RunSpec {
        args: vec!["weft-no-such-command".into()],
        ..RunSpec::default()
    };
    let b = env.bundle("nocmd", spec);
    env.create("nocmd", &b).expect("create");
    let err = weft_runtime::start(&env.root, "nocmd").expect_err("start must fail");
    let msg = err.to_string();
    assert!(
        msg.contains("exec \"weft-no-such-command\": No such file or directory"),
        "{msg}"
    );
    let st = env.wait_stopped("nocmd", Duration::from_secs(5));
    assert_eq!(st.exit_code, Some(127));
    assert!(st
        .error
        .as_deref()
        .unwrap_or("")
        .contains("weft-no-such-command"));
    assert!(weft_runtime::start(&env.root, "nocmd").is_err());
    weft_runtime::delete(&env.root, "nocmd", false).expect("delete");
    env.assert_no_mounts();
}

#[test]
fn kill_delivers_signals_and_shim_forwards_sigterm() {
    let Some(env) = Env::new("kill") else {
        return;
    };
    let script = "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done";
    for (id, via_shim) in [("trap-kill", false), ("trap-shim", true)] {
        let b = env.bundle(id, sh(script, id));
        let st = env.create(id, &b).expect("create");
        weft_runtime::start(&env.root, id).expect("start");
        env.wait_log(id, "ready");
        if via_shim {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(st.shim_pid),
                nix::sys::signal::Signal::SIGTERM,
            )
            .expect("signal shim");
        } else {
            weft_runtime::kill(&env.root, id, libc::SIGTERM).expect("kill");
        }
        let st = env.wait_stopped(id, Duration::from_secs(10));
        assert_eq!(st.exit_code, Some(7), "{id}");
        assert!(weft_runtime::kill(&env.root, id, libc::SIGTERM).is_err());
        weft_runtime::delete(&env.root, id, false).expect("delete");
    }
    env.assert_no_mounts();
}

#[test]
fn logs_follow_until_stop() {
    let Some(env) = Env::new("logs_follow") else {
        return;
    };
    let b = env.bundle("follow", sh("echo a; sleep 0.5; echo b >&2", "f"));
    env.create("follow", &b).expect("create");
    weft_runtime::start(&env.root, "follow").expect("start");
    let mut out = Vec::new();
    weft_runtime::logs(&env.root, "follow", true, &mut out).expect("logs -f");
    assert_eq!(String::from_utf8_lossy(&out), "a\nb\n");
    weft_runtime::delete(&env.root, "follow", false).expect("delete");
}

#[test]
fn joined_network_namespace_is_shared() {
    let Some(env) = Env::new("join_netns") else {
        return;
    };
    let a = env.bundle("net-a", sleep_spec("a"));
    let sa = env.create("net-a", &a).expect("create a");
    let spec = RunSpec {
        netns: NsMode::Join(format!("/proc/{}/ns/net", sa.pid).into()),
        ..sleep_spec("b")
    };
    let b = env.bundle("net-b", spec);
    let sb = env.create("net-b", &b).expect("create b");
    assert_eq!(ns_inode(sa.pid, "net"), ns_inode(sb.pid, "net"));
    assert_ne!(ns_inode(sa.pid, "uts"), ns_inode(sb.pid, "uts"));
    // a created (never started) container is deleted without force
    weft_runtime::delete(&env.root, "net-b", false).expect("delete created b");
    weft_runtime::delete(&env.root, "net-a", true).expect("delete a");
    env.assert_no_mounts();
}

#[test]
fn create_failures_leave_nothing_behind() {
    let Some(env) = Env::new("create_failures") else {
        return;
    };
    let b = env.bundle("badlayer", sleep_spec("x"));
    let missing = env.tmp.path().join("layers/gone");
    let mut spec = b.spec().expect("spec");
    let mut ann = spec.annotations().clone().unwrap_or_default();
    ann.insert(
        weft_runtime::ANNOTATION_OVERLAY_LOWER.into(),
        missing.display().to_string(),
    );
    spec.set_annotations(Some(ann));
    spec.save(b.config_path()).expect("save");
    let err = env.create("badlayer", &b).expect_err("missing layer");
    assert!(err.to_string().contains("mount overlay rootfs"), "{err}");
    assert!(!env.root.join("badlayer").exists());

    let b = env.bundle("dup", sleep_spec("x"));
    env.create("dup", &b).expect("create");
    let err = env.create("dup", &b).expect_err("duplicate");
    assert!(
        matches!(err, weft_runtime::Error::AlreadyExists { .. }),
        "{err}"
    );
    weft_runtime::delete(&env.root, "dup", true).expect("delete");
    env.assert_no_mounts();
}
