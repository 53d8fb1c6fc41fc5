//! Root tests of the safe defaults: capabilities, no_new_privs, seccomp, read-only root,
//! users, user namespaces, privileged containers, and bad input.
//! Each test skips (passes with a message) when not run as root.

mod common;

use std::time::Duration;

use common::Env;
use weft_runtime::{RunSpec, Status};

fn sh(script: &str) -> RunSpec {
    RunSpec {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..RunSpec::default()
    }
}

/// The value of a `Key:\tvalue` line of /proc/<pid>/status text.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

#[test]
fn default_capabilities_no_new_privs_and_seccomp() {
    let Some(env) = Env::new("caps") else {
        return;
    };
    let (st, status) = env.run("caps", sh("cat /proc/self/status"));
    assert_eq!(st.exit_code, Some(0), "{status}");
    // Docker's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    assert_eq!(field(&status, "CapEff"), "00000000a80425fb");
    assert_eq!(field(&status, "CapBnd"), "00000000a80425fb");
    assert_eq!(field(&status, "CapInh"), "0000000000000000");
    assert_eq!(field(&status, "NoNewPrivs"), "1");
    assert_eq!(field(&status, "Seccomp"), "2");

    let spec = RunSpec {
        cap_drop: vec!["NET_RAW".into()],
        cap_add: vec!["NET_ADMIN".into()],
        ..sh("cat /proc/self/status")
    };
    let (_, status) = env.run("capdrop", spec);
    // minus NET_RAW (bit 13), plus NET_ADMIN (bit 12)
    assert_eq!(field(&status, "CapEff"), "00000000a80415fb");

    let spec = RunSpec {
        privileged: true,
        ..sh("cat /proc/self/status")
    };
    let (_, status) = env.run("priv", spec);
    // every capability the runtime itself has (a confined test machine may lack some)
    let ours = std::fs::read_to_string("/proc/self/status").expect("status");
    assert_eq!(field(&status, "CapEff"), field(&ours, "CapBnd"));
    assert_eq!(field(&status, "NoNewPrivs"), "0");
    assert_eq!(field(&status, "Seccomp"), "0");
    for id in ["caps", "capdrop", "priv"] {
        env.delete(id, false).expect("delete");
    }
    env.assert_no_mounts();
}

/// Device access follows Docker's allowlist (the cgroup v1 devices controller, or on v2 the
/// runtime's eBPF device filter): a node outside
/// it, made with mknod (which the default CAP_MKNOD allows), cannot be opened, while
/// /dev/null can; a privileged container may open it.
#[test]
fn devices_outside_the_default_allowlist_cannot_be_opened() {
    let Some(env) = Env::new("devices") else {
        return;
    };
    let v1 = std::path::Path::new("/sys/fs/cgroup/devices/devices.list").exists();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if !v1 && !v2 {
        eprintln!("skipping: neither a cgroup v1 devices controller nor a cgroup v2 hierarchy");
        return;
    }
    // c 10:229 is /dev/fuse, which anyone may open (no capability needed); only opened here.
    let script = "mknod /dev/fz c 10 229 && (: </dev/fz) && echo fuse-opened; echo x > /dev/null && echo null-ok";
    let (_, log) = env.run("dev", sh(script));
    assert!(!log.contains("fuse-opened"), "{log}");
    assert!(log.contains("Operation not permitted"), "{log}");
    assert!(log.contains("null-ok"), "{log}");
    let spec = RunSpec {
        privileged: true,
        ..sh(script)
    };
    let (_, log) = env.run("devpriv", spec);
    assert!(log.contains("fuse-opened"), "{log}");
    assert!(log.contains("null-ok"), "{log}");
}

#[test]
fn seccomp_denies_unshare_that_works_without_it() {
    let Some(env) = Env::new("seccomp") else {
        return;
    };
    // unshare(CLONE_NEWUSER) needs no capability: only the filter stops it.
    let (st, log) = env.run("filtered", sh("unshare -U sh -c 'exit 0'; echo rc=$?"));
    assert_eq!(st.exit_code, Some(0));
    assert!(log.contains("Operation not permitted"), "{log}");
    assert!(log.contains("rc=1"), "{log}");

    let b = env.bundle("unfiltered", sh("unshare -U sh -c 'exit 0'; echo rc=$?"));
    let mut spec = b.spec().expect("spec");
    if let Some(l) = spec.linux_mut() {
        l.set_seccomp(None);
    }
    spec.save(b.config_path()).expect("save");
    env.create("unfiltered", &b).expect("create");
    weft_runtime::start(&env.root, "unfiltered").expect("start");
    env.wait_stopped("unfiltered", Duration::from_secs(10));
    assert!(
        env.logs("unfiltered").contains("rc=0"),
        "{}",
        env.logs("unfiltered")
    );
    for id in ["filtered", "unfiltered"] {
        env.delete(id, false).expect("delete");
    }
}

#[test]
fn read_only_root_refuses_writes_but_not_to_dev_shm() {
    let Some(env) = Env::new("readonly") else {
        return;
    };
    let spec = RunSpec {
        read_only: true,
        ..sh("echo x > /newfile; echo rc=$?; echo y > /dev/shm/f && echo shm-ok")
    };
    let (_, log) = env.run("ro", spec);
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(log.contains("rc=2"), "{log}");
    assert!(log.contains("shm-ok"), "{log}");
    assert!(!env.bundle_dir("ro").join("upper/newfile").exists());
    env.delete("ro", false).expect("delete");
}

#[test]
fn users_by_number_and_by_name() {
    let Some(env) = Env::new("users") else {
        return;
    };
    let spec = RunSpec {
        user: Some("alice".into()),
        ..sh("id; cat /proc/self/status")
    };
    let (st, log) = env.run("alice", spec);
    assert_eq!(st.exit_code, Some(0), "{log}");
    assert!(
        log.contains("uid=1000(alice) gid=1000(alice) groups=1000(alice),10(wheel)"),
        "{log}"
    );
    assert_eq!(field(&log, "CapEff"), "0000000000000000");
    let spec = RunSpec {
        user: Some("4242:4343".into()),
        ..sh("id -u; id -g")
    };
    let (_, log) = env.run("num", spec);
    assert_eq!(log, "4242\n4343\n");

    // exec runs as the container's user by default, or as asked
    let b = env.bundle(
        "svc",
        RunSpec {
            user: Some("alice".into()),
            args: vec!["sleep".into(), "100".into()],
            ..RunSpec::default()
        },
    );
    env.create("svc", &b).expect("create");
    weft_runtime::start(&env.root, "svc").expect("start");
    let out = env.tmp.path().join("exec-out");
    let run = |user: Option<&str>, cwd: Option<&str>| {
        let f = std::fs::File::create(&out).expect("out");
        let opts = weft_runtime::ExecOptions {
            args: vec!["sh".into(), "-c".into(), "id -u; pwd".into()],
            user: user.map(str::to_string),
            cwd: cwd.map(str::to_string),
            io: weft_runtime::ExecIo {
                stdout: Some(std::os::fd::AsFd::as_fd(&f)),
                ..Default::default()
            },
            ..Default::default()
        };
        let code = weft_runtime::exec_with_options(&env.root, "svc", &opts).expect("exec");
        (code, std::fs::read_to_string(&out).expect("read"))
    };
    assert_eq!(run(None, None), (0, "1000\n/\n".into()));
    // the exec'd process is in the container's cgroup
    let f = std::fs::File::create(&out).expect("out");
    let code = weft_runtime::exec_with(
        &env.root,
        "svc",
        &["cat".into(), "/proc/self/cgroup".into()],
        &[],
        weft_runtime::ExecIo {
            stdout: Some(std::os::fd::AsFd::as_fd(&f)),
            ..Default::default()
        },
    )
    .expect("exec");
    let cgroups = std::fs::read_to_string(&out).expect("read");
    assert_eq!(code, 0);
    let want = format!(":memory:/{}/svc", env.cgroup_parent);
    assert!(cgroups.lines().any(|l| l.ends_with(&want)), "{cgroups}");
    assert_eq!(run(Some("root"), Some("/tmp")), (0, "0\n/tmp\n".into()));
    let e = weft_runtime::exec_with_options(
        &env.root,
        "svc",
        &weft_runtime::ExecOptions {
            args: vec!["true".into()],
            user: Some("mallory".into()),
            ..Default::default()
        },
    )
    .expect_err("unknown user");
    assert!(e.to_string().contains("unable to find user mallory"), "{e}");
    for id in ["alice", "num"] {
        env.delete(id, false).expect("delete");
    }
    env.delete("svc", true).expect("delete");
}

#[test]
fn user_namespace_maps_root_to_a_high_uid() {
    let Some(env) = Env::new("userns") else {
        return;
    };
    let spec = RunSpec {
        userns: true,
        args: vec!["sleep".into(), "100".into()],
        ..RunSpec::default()
    };
    let b = env.bundle("uns", spec);
    let st = env.create("uns", &b).expect("create");
    weft_runtime::start(&env.root, "uns").expect("start");
    let map = std::fs::read_to_string(format!("/proc/{}/uid_map", st.pid)).expect("uid_map");
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", st.pid)).expect("status");
    assert!(field(&status, "Uid").starts_with("100000"), "{status}");
    // inside, it is root, and exec joins the user namespace too
    let out = env.tmp.path().join("exec-out");
    let f = std::fs::File::create(&out).expect("out");
    let code = weft_runtime::exec_with(
        &env.root,
        "uns",
        &[
            "sh".into(),
            "-c".into(),
            "id -u; echo hi > /x && cat /x".into(),
        ],
        &[],
        weft_runtime::ExecIo {
            stdout: Some(std::os::fd::AsFd::as_fd(&f)),
            ..Default::default()
        },
    )
    .expect("exec");
    assert_eq!(
        (code, std::fs::read_to_string(&out).expect("read")),
        (0, "0\nhi\n".into())
    );
    weft_runtime::stop(&env.root, "uns", Duration::from_millis(200)).expect("stop");
    env.delete("uns", false).expect("delete");
    env.assert_no_mounts();
}

#[test]
fn bad_input_gives_clear_errors_and_leaves_nothing() {
    let Some(env) = Env::new("bad_input") else {
        return;
    };
    for (spec, word) in [
        (
            RunSpec {
                user: Some("mallory".into()),
                ..sh("true")
            },
            "unable to find user mallory",
        ),
        (
            RunSpec {
                memory: Some(-1),
                ..sh("true")
            },
            "memory limit -1",
        ),
        (
            RunSpec {
                cap_add: vec!["FLY".into()],
                ..sh("true")
            },
            "unknown capability",
        ),
    ] {
        let dir = env.bundle_dir("bad");
        let e = weft_runtime::Bundle::write(&dir, &env.spec(spec)).expect_err(word);
        assert!(format!("{e:#}").contains(word), "{e:#}");
        assert!(!dir.exists());
    }
    assert!(weft_runtime::list(&env.root).expect("list").is_empty());
    assert!(env.cgroup_dirs_left().is_empty());
    let _ = Status::Stopped;
}

/// CVE-2019-5736: a container cannot make the runtime run its own binary inside it (whose
/// /proc/<pid>/exe would then lead the container to the host's runtime): not as its
/// program, nor through `exec` of a script whose `#!` names /proc/self/exe.
#[test]
fn the_runtime_never_runs_its_own_binary_in_a_container() {
    let Some(env) = Env::new("selfexe") else {
        return;
    };
    let spec = RunSpec {
        args: vec!["/proc/self/exe".into(), "--version".into()],
        ..RunSpec::default()
    };
    let b = env.bundle("selfexe", spec);
    env.create("selfexe", &b).expect("create");
    let err = weft_runtime::start(&env.root, "selfexe").expect_err("start of /proc/self/exe");
    assert!(
        err.to_string().contains("exec \"/proc/self/exe\": refused")
            && err.to_string().contains("CVE-2019-5736"),
        "{err}"
    );
    let st = env.wait_stopped("selfexe", Duration::from_secs(10));
    assert_eq!(st.exit_code, Some(127), "{st:?}");

    // The classic exploit: the container's image holds a script `#!/proc/self/exe`, and
    // someone execs it in the running container.
    let b = env.bundle(
        "victim",
        RunSpec {
            args: vec!["sleep".into(), "1000".into()],
            ..RunSpec::default()
        },
    );
    let evil = b.dir.join("upper/evil");
    std::fs::create_dir_all(evil.parent().expect("upper")).expect("mkdir upper");
    std::fs::write(&evil, "#!/proc/self/exe\n").expect("write script");
    std::fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    env.create("victim", &b).expect("create");
    weft_runtime::start(&env.root, "victim").expect("start");
    let err = weft_runtime::exec(&env.root, "victim", &["/evil".into()], &[], false)
        .expect_err("exec of a script run by the runtime's binary");
    assert!(err.to_string().contains("CVE-2019-5736"), "{err}");
    // Scripts with another interpreter still run.
    std::fs::write(&evil, "#!/bin/sh\necho fine\n").expect("rewrite script");
    let code = weft_runtime::exec(&env.root, "victim", &["/evil".into()], &[], false)
        .expect("exec of a shell script");
    assert_eq!(code, 0);

    weft_runtime::stop(&env.root, "victim", Duration::from_millis(200)).expect("stop");
    for id in ["selfexe", "victim"] {
        env.delete(id, false).expect("delete");
    }
    env.assert_no_mounts();
}
