//! Root tests of failures and long lives: many create/delete cycles, a killed shim,
//! restart policies, terminals (container, attach, exec -t).
//! Each test skips (passes with a message) when not run as root.

mod common;

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::Env;
use weft_runtime::{ExecIo, ExecOptions, RestartPolicy, RunSpec, Status};

fn sh(script: &str) -> RunSpec {
    RunSpec {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..RunSpec::default()
    }
}

fn sleeper() -> RunSpec {
    RunSpec {
        args: vec!["sleep".into(), "1000".into()],
        memory: Some(64 << 20),
        pids_limit: Some(50),
        ..RunSpec::default()
    }
}

#[test]
fn two_hundred_create_delete_cycles_leave_nothing() {
    let Some(env) = Env::new("cycles") else {
        return;
    };
    let t0 = Instant::now();
    for i in 0..200 {
        let id = format!("cyc{i}");
        let b = env.bundle(&id, sleeper());
        env.create(&id, &b).expect("create");
        if i % 20 == 0 {
            weft_runtime::start(&env.root, &id).expect("start");
        }
        env.delete(&id, true).expect("delete");
        b.remove().expect("remove bundle");
    }
    eprintln!("200 cycles in {:?}", t0.elapsed());
    assert!(
        env.cgroup_dirs_left().is_empty(),
        "{:?}",
        env.cgroup_dirs_left()
    );
    assert!(weft_runtime::list(&env.root).expect("list").is_empty());
    let left: Vec<_> = std::fs::read_dir(&env.root)
        .expect("root")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    env.assert_no_mounts();
}

#[test]
fn killed_shim_is_reported_and_force_delete_cleans_up() {
    let Some(env) = Env::new("shim_kill") else {
        return;
    };
    for (id, start) in [("killed-running", true), ("killed-created", false)] {
        let b = env.bundle(id, sleeper());
        let st = env.create(id, &b).expect("create");
        if start {
            weft_runtime::start(&env.root, id).expect("start");
        }
        assert!(!env.cgroup_dirs_left().is_empty());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(st.shim_pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill shim");
        let st = env.wait_stopped(id, Duration::from_secs(10));
        assert_eq!(st.exit_code, None);
        let why = st.error.clone().unwrap_or_default();
        assert!(why.contains("shim") && why.contains("died"), "{st:?}");
        assert!(!st.pid_alive());
        let listed = weft_runtime::list(&env.root).expect("list");
        assert!(listed
            .iter()
            .any(|s| s.id == id && s.status == Status::Stopped));
        env.delete(id, true).expect("delete --force");
        assert!(
            env.cgroup_dirs_left().is_empty(),
            "{:?}",
            env.cgroup_dirs_left()
        );
    }
    env.assert_no_mounts();
}

#[test]
fn failed_start_is_recorded_and_cleaned_up() {
    let Some(env) = Env::new("failed_start") else {
        return;
    };
    let spec = RunSpec {
        args: vec!["weft-no-such-command".into()],
        memory: Some(64 << 20),
        ..RunSpec::default()
    };
    let b = env.bundle("half", spec);
    env.create("half", &b).expect("create");
    let e = weft_runtime::start(&env.root, "half").expect_err("start fails");
    assert!(e.to_string().contains("weft-no-such-command"), "{e}");
    let st = env.wait_stopped("half", Duration::from_secs(5));
    assert_eq!(st.exit_code, Some(127));
    assert!(st.error.is_some());
    env.delete("half", false).expect("delete");
    assert!(env.cgroup_dirs_left().is_empty());

    // a cwd that cannot be entered fails at start, with the reason
    let spec = RunSpec {
        cwd: "/etc/passwd".into(),
        ..sh("true")
    };
    let b = env.bundle("badcwd", spec);
    env.create("badcwd", &b).expect("create");
    let e = weft_runtime::start(&env.root, "badcwd").expect_err("start fails");
    assert!(e.to_string().contains("chdir"), "{e}");
    env.delete("badcwd", false).expect("delete");
    env.assert_no_mounts();
}

fn netns_of(pid: i32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .map(|m| m.ino())
        .unwrap_or(0)
}

#[test]
fn restart_policies_rerun_the_process_in_the_same_network() {
    let Some(env) = Env::new("restart") else {
        return;
    };
    let spec = RunSpec {
        restart: RestartPolicy::OnFailure(2),
        ..sh("echo run; sleep 0.3; exit 3")
    };
    let b = env.bundle("flaky", spec);
    let st = env.create("flaky", &b).expect("create");
    let net = netns_of(st.pid);
    weft_runtime::start(&env.root, "flaky").expect("start");
    let mut nets = vec![net];
    let deadline = Instant::now() + Duration::from_secs(20);
    let st = loop {
        let st = weft_runtime::state(&env.root, "flaky").expect("state");
        if st.status == Status::Stopped {
            break st;
        }
        if st.pid_alive() {
            let n = netns_of(st.pid);
            if n != 0 && !nets.contains(&n) {
                nets.push(n);
            }
        }
        assert!(Instant::now() < deadline, "never stopped: {st:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(st.restart_count, 2, "{st:?}");
    assert_eq!(st.exit_code, Some(3));
    assert_eq!(
        nets,
        vec![net],
        "the network namespace is kept across restarts"
    );
    assert_eq!(env.logs("flaky"), "run\nrun\nrun\n");
    env.delete("flaky", false).expect("delete");

    // always: restarted after a clean exit, but not after stop
    let spec = RunSpec {
        restart: RestartPolicy::Always,
        ..sh("sleep 0.2")
    };
    let b = env.bundle("always", spec);
    env.create("always", &b).expect("create");
    weft_runtime::start(&env.root, "always").expect("start");
    let deadline = Instant::now() + Duration::from_secs(10);
    while weft_runtime::state(&env.root, "always")
        .expect("state")
        .restart_count
        < 2
    {
        assert!(Instant::now() < deadline, "not restarted");
        std::thread::sleep(Duration::from_millis(20));
    }
    weft_runtime::stop(&env.root, "always", Duration::from_secs(1)).expect("stop");
    let st = weft_runtime::state(&env.root, "always").expect("state");
    assert_eq!(st.status, Status::Stopped);
    std::thread::sleep(Duration::from_millis(500));
    let later = weft_runtime::state(&env.root, "always").expect("state");
    assert_eq!(later.status, Status::Stopped);
    assert_eq!(later.restart_count, st.restart_count);
    env.delete("always", false).expect("delete");
    assert!(env.cgroup_dirs_left().is_empty());
}

#[test]
fn terminal_container_logs_and_attach() {
    let Some(env) = Env::new("tty") else {
        return;
    };
    let spec = RunSpec {
        tty: true,
        ..sh("test -t 0 && test -t 1 && echo is-a-tty; cat /proc/self/fdinfo/0 >/dev/null; echo $TERM")
    };
    let (st, log) = env.run("ttyc", spec);
    assert_eq!(st.exit_code, Some(0), "{log}");
    assert_eq!(log, "is-a-tty\r\nxterm\r\n");
    env.delete("ttyc", false).expect("delete");

    let spec = RunSpec {
        tty: true,
        args: vec!["cat".into()],
        ..RunSpec::default()
    };
    let b = env.bundle("cat", spec);
    env.create("cat", &b).expect("create");
    weft_runtime::start(&env.root, "cat").expect("start");
    let mut s = weft_runtime::attach(&env.root, "cat").expect("attach");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(b"ping\n").expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while String::from_utf8_lossy(&got).matches("ping").count() < 2 {
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "attach closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // the terminal echoes the input, then cat writes it back
    assert_eq!(String::from_utf8_lossy(&got), "ping\r\nping\r\n");
    env.wait_log("cat", "ping\r\nping\r\n");
    let e = weft_runtime::attach(&env.root, "missing").expect_err("no such container");
    assert!(matches!(e, weft_runtime::Error::NotFound { .. }), "{e}");
    drop(s);
    env.delete("cat", true).expect("delete");
    env.assert_no_mounts();
}

#[test]
fn exec_with_a_terminal_works_without_one_in_the_caller() {
    let Some(env) = Env::new("exec_tty") else {
        return;
    };
    let b = env.bundle("box", sleeper());
    env.create("box", &b).expect("create");
    weft_runtime::start(&env.root, "box").expect("start");
    let out_path = env.tmp.path().join("out");
    let run = |args: &[&str]| {
        let null = std::fs::File::open("/dev/null").expect("null");
        let out = std::fs::File::create(&out_path).expect("out");
        let opts = ExecOptions {
            args: args.iter().map(|s| s.to_string()).collect(),
            tty: true,
            io: ExecIo {
                stdin: Some(null.as_fd()),
                stdout: Some(out.as_fd()),
                ..ExecIo::default()
            },
            ..ExecOptions::default()
        };
        let t0 = Instant::now();
        let code = weft_runtime::exec_with_options(&env.root, "box", &opts).expect("exec");
        assert!(t0.elapsed() < Duration::from_secs(10), "exec -t hung");
        (code, std::fs::read_to_string(&out_path).expect("read"))
    };
    let (code, out) = run(&["sh", "-c", "test -t 0 && echo tty; exit 4"]);
    assert_eq!((code, out.as_str()), (4, "tty\r\n"));
    // an interactive shell on a terminal whose input ends exits instead of waiting
    let (code, _) = run(&["sh"]);
    assert_eq!(code, 0);
    // the pty is the container's own
    let (_, out) = run(&["tty"]);
    assert!(out.starts_with("/dev/pts/"), "{out}");
    env.delete("box", true).expect("delete");
}
