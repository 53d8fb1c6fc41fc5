use super::*;

fn spec() -> RunSpec {
    RunSpec {
        args: vec!["sh".into(), "-c".into(), "echo hi".into()],
        env: vec!["A=1".into()],
        cwd: "/tmp".into(),
        hostname: "c1".into(),
        rootfs_lower: vec!["/layers/top".into(), "/layers/base".into()],
        labels: [("app".to_string(), "web".to_string())].into(),
        ..RunSpec::default()
    }
}

fn json(s: &RunSpec) -> serde_json::Value {
    serde_json::to_value(build_spec(s).expect("build")).expect("json")
}

fn sorted(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("str").to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn config_process_root_hostname() {
    let v = json(&spec());
    assert_eq!(
        v["process"]["args"],
        serde_json::json!(["sh", "-c", "echo hi"])
    );
    assert_eq!(v["process"]["env"][0], DEFAULT_PATH);
    assert_eq!(v["process"]["env"][1], "A=1");
    assert_eq!(v["process"]["cwd"], "/tmp");
    assert_eq!(v["process"]["user"]["uid"], 0);
    assert_eq!(v["process"]["noNewPrivileges"], true);
    assert_eq!(v["process"]["terminal"], false);
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["root"]["readonly"], false);
    assert_eq!(v["hostname"], "c1");
}

#[test]
fn config_namespaces() {
    let v = json(&spec());
    let types: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|n| n["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types, ["pid", "ipc", "uts", "mount", "network"]);
    assert!(v["linux"]["namespaces"][4].get("path").is_none());
    assert!(v["linux"].get("uidMappings").is_none());

    let mut s = spec();
    s.netns = NsMode::Join("/proc/42/ns/net".into());
    let v = json(&s);
    assert_eq!(v["linux"]["namespaces"][4]["type"], "network");
    assert_eq!(v["linux"]["namespaces"][4]["path"], "/proc/42/ns/net");
}

#[test]
fn config_mounts() {
    let v = json(&spec());
    let mounts = v["mounts"].as_array().expect("mounts");
    let dests: Vec<&str> = mounts
        .iter()
        .map(|m| m["destination"].as_str().expect("dest"))
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys"
        ]
    );
    assert_eq!(mounts[1]["type"], "tmpfs");
    assert_eq!(mounts[2]["type"], "devpts");
    assert!(mounts[2]["options"]
        .as_array()
        .expect("opts")
        .contains(&"newinstance".into()));
    assert_eq!(mounts[5]["type"], "sysfs");
    assert!(mounts[5]["options"]
        .as_array()
        .expect("opts")
        .contains(&"ro".into()));
}

#[test]
fn config_annotations() {
    let v = json(&spec());
    assert_eq!(
        v["annotations"][ANNOTATION_OVERLAY_LOWER],
        "/layers/top:/layers/base"
    );
    assert_eq!(v["annotations"]["app"], "web");
    assert!(v["annotations"].get(ANNOTATION_RESTART).is_none());
    assert!(v["annotations"].get(ANNOTATION_CGROUP_PARENT).is_none());

    let mut s = spec();
    s.rootfs_lower.clear();
    s.restart = RestartPolicy::OnFailure(3);
    s.cgroup_parent = Some("weft/lab/node1".into());
    let v = json(&s);
    assert!(v["annotations"].get(ANNOTATION_OVERLAY_LOWER).is_none());
    assert_eq!(v["annotations"][ANNOTATION_RESTART], "on-failure:3");
    assert_eq!(v["annotations"][ANNOTATION_CGROUP_PARENT], "weft/lab/node1");
}

#[test]
fn default_security_is_dockers() {
    let v = json(&spec());
    let caps = &v["process"]["capabilities"];
    let want: Vec<String> = {
        let mut w: Vec<String> = crate::security::caps::DOCKER_DEFAULT
            .iter()
            .map(|c| format!("CAP_{c}"))
            .collect();
        w.sort();
        w
    };
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(sorted(&caps[set]), want, "{set}");
    }
    assert_eq!(caps["inheritable"], serde_json::json!([]));
    assert!(!want.contains(&"CAP_NET_ADMIN".to_string()));
    let sc = &v["linux"]["seccomp"];
    assert_eq!(sc["defaultAction"], "SCMP_ACT_ALLOW");
    assert!(sc["syscalls"][0]["names"]
        .as_array()
        .expect("names")
        .contains(&"unshare".into()));
    assert!(v["linux"]["maskedPaths"]
        .as_array()
        .expect("masked")
        .contains(&"/proc/kcore".into()));
}

#[test]
fn cap_add_drop_and_privileged() {
    let mut s = spec();
    s.cap_add = vec!["net_admin".into(), "CAP_SYS_TIME".into()];
    s.cap_drop = vec!["NET_RAW".into()];
    let v = json(&s);
    let eff = sorted(&v["process"]["capabilities"]["effective"]);
    assert!(eff.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(eff.contains(&"CAP_SYS_TIME".to_string()));
    assert!(!eff.contains(&"CAP_NET_RAW".to_string()));

    let mut s = spec();
    s.cap_drop = vec!["ALL".into()];
    s.cap_add = vec!["KILL".into()];
    let v = json(&s);
    assert_eq!(
        sorted(&v["process"]["capabilities"]["bounding"]),
        ["CAP_KILL"]
    );

    let mut s = spec();
    s.privileged = true;
    let v = json(&s);
    assert_eq!(
        v["process"]["capabilities"]["bounding"]
            .as_array()
            .expect("caps")
            .len(),
        crate::security::caps::NAMES.len()
    );
    assert_eq!(v["process"]["noNewPrivileges"], false);
    assert!(v["linux"].get("seccomp").is_none());
    assert_eq!(v["linux"]["maskedPaths"], serde_json::json!([]));
    assert!(!v["mounts"][5]["options"]
        .as_array()
        .expect("opts")
        .contains(&"ro".into()));

    let mut s = spec();
    s.cap_add = vec!["FLY".into()];
    let e = build_spec(&s).expect_err("unknown cap").to_string();
    assert!(e.contains("unknown capability \"FLY\""), "{e}");
}

#[test]
fn resources_user_readonly_userns_tty() {
    let mut s = spec();
    s.memory = Some(64 << 20);
    s.cpus = Some(0.5);
    s.cpu_shares = Some(512);
    s.pids_limit = Some(50);
    s.read_only = true;
    s.user = Some("1000:1000".into());
    s.userns = true;
    s.tty = true;
    let v = json(&s);
    let r = &v["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["memory"]["swap"], 64 << 20);
    assert_eq!(r["cpu"]["quota"], 50_000);
    assert_eq!(r["cpu"]["period"], 100_000);
    assert_eq!(r["cpu"]["shares"], 512);
    assert_eq!(r["pids"]["limit"], 50);
    assert_eq!(v["root"]["readonly"], true);
    assert_eq!(v["process"]["user"]["uid"], 1000);
    assert_eq!(v["process"]["user"]["gid"], 1000);
    assert_eq!(v["process"]["terminal"], true);
    assert!(v["process"]["env"]
        .as_array()
        .expect("env")
        .contains(&"TERM=xterm".into()));
    assert_eq!(v["linux"]["namespaces"][5]["type"], "user");
    assert_eq!(
        v["linux"]["uidMappings"],
        serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}])
    );
}

#[test]
fn rejects_bad_input() {
    type Edit = fn(&mut RunSpec);
    let bad: Vec<(Edit, &str)> = vec![
        (|s| s.rootfs_lower = vec!["/a:b".into()], "image layer"),
        (|s| s.rootfs_lower = vec!["relative".into()], "image layer"),
        (|s| s.args.clear(), "no command"),
        (
            |s| {
                s.labels.insert("io.weft.overlay.lower".into(), "x".into());
            },
            "reserved",
        ),
        (|s| s.memory = Some(-1), "memory limit -1"),
        (|s| s.memory = Some(0), "not positive"),
        (|s| s.memory = Some(1024), "6 MiB"),
        (|s| s.cpus = Some(0.0), "--cpus"),
        (|s| s.cpus = Some(-1.5), "--cpus"),
        (|s| s.cpus = Some(f64::NAN), "--cpus"),
        (|s| s.cpus = Some(0.001), "0.01"),
        (|s| s.cpu_shares = Some(0), "--cpu-shares"),
        (|s| s.pids_limit = Some(-1), "--pids-limit"),
        (|s| s.pids_limit = Some(0), "--pids-limit"),
        (
            |s| s.user = Some("nobody-here".into()),
            "unable to find user",
        ),
        (|s| s.user = Some(":5".into()), "invalid user"),
        (|s| s.cap_drop = vec!["NOPE".into()], "--cap-drop"),
        (|s| s.cgroup_parent = Some("../x".into()), "cgroup parent"),
        (
            |s| {
                s.privileged = true;
                s.userns = true;
            },
            "user namespace",
        ),
    ];
    for (f, word) in bad {
        let mut s = spec();
        f(&mut s);
        let e = build_spec(&s).expect_err(word).to_string();
        assert!(e.contains(word), "{word}: {e}");
    }
}

#[test]
fn restart_policies() {
    assert_eq!(RestartPolicy::parse("no"), Ok(RestartPolicy::No));
    assert_eq!(RestartPolicy::parse("always"), Ok(RestartPolicy::Always));
    assert_eq!(
        RestartPolicy::parse("on-failure"),
        Ok(RestartPolicy::OnFailure(0))
    );
    assert_eq!(
        RestartPolicy::parse("on-failure:5"),
        Ok(RestartPolicy::OnFailure(5))
    );
    assert!(RestartPolicy::parse("sometimes").is_err());
    assert!(RestartPolicy::parse("on-failure:x").is_err());
    for p in [
        RestartPolicy::No,
        RestartPolicy::Always,
        RestartPolicy::OnFailure(0),
        RestartPolicy::OnFailure(2),
    ] {
        assert_eq!(RestartPolicy::parse(&p.to_string()), Ok(p));
    }
    let f = RestartPolicy::OnFailure(2);
    assert!(f.should_restart(1, 0) && f.should_restart(1, 1));
    assert!(!f.should_restart(1, 2) && !f.should_restart(0, 0));
    assert!(RestartPolicy::Always.should_restart(0, 100));
    assert!(!RestartPolicy::No.should_restart(1, 0));
}

#[test]
fn write_creates_dirs_and_round_trips() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("b");
    let b = Bundle::write(&dir, &spec()).expect("write");
    for sub in ["rootfs", "upper", "work"] {
        assert!(b.dir.join(sub).is_dir(), "{sub}");
    }
    let loaded = Bundle::open(&dir).expect("open").spec().expect("load");
    assert_eq!(loaded, build_spec(&spec()).expect("build"));
    b.remove().expect("remove");
    assert!(!dir.exists());
}

#[test]
fn write_resolves_users_in_the_bundle_rootfs_and_leaves_nothing_on_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("b");
    let s = RunSpec {
        rootfs_lower: Vec::new(),
        user: Some("alice".into()),
        ..spec()
    };
    let e = Bundle::write(&dir, &s).expect_err("no passwd");
    assert!(e.to_string().contains("unable to find user alice"), "{e}");
    assert!(!dir.exists(), "nothing left behind");

    std::fs::create_dir_all(dir.join("rootfs/etc")).expect("mkdir");
    std::fs::write(
        dir.join("rootfs/etc/passwd"),
        "alice:x:1000:1001::/:/bin/sh\n",
    )
    .expect("passwd");
    let b = Bundle::write(&dir, &s).expect("write");
    let v = serde_json::to_value(b.spec().expect("spec")).expect("json");
    assert_eq!(v["process"]["user"]["uid"], 1000);
    assert_eq!(v["process"]["user"]["gid"], 1001);
}
