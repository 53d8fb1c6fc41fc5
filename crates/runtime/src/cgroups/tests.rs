use super::*;
use mountinfo::CgroupMount;

fn v1_layout(tmp: &Path, controllers: &[&str]) -> Layout {
    Layout::V1(
        controllers
            .iter()
            .map(|c| (c.to_string(), tmp.join(c)))
            .collect(),
    )
}

fn limits() -> Resources {
    Resources {
        memory: Some(64 << 20),
        cpu_quota: Some(50_000),
        cpu_shares: Some(512),
        pids: Some(20),
        ..Resources::default()
    }
}

#[test]
fn layout_prefers_v1_controllers_on_hybrid_machines() {
    let m = |mp: &str, v2: bool, c: &[&str]| CgroupMount {
        mountpoint: mp.into(),
        v2,
        controllers: c.iter().map(|s| s.to_string()).collect(),
    };
    let hybrid = [
        m("/sys/fs/cgroup/memory", false, &["memory"]),
        m("/sys/fs/cgroup/cpu,cpuacct", false, &["cpu", "cpuacct"]),
        m("/sys/fs/cgroup/unified", true, &[]),
    ];
    match Layout::from_mounts(&hybrid) {
        Some(Layout::V1(c)) => {
            assert_eq!(c.len(), 3);
            assert_eq!(c[1], ("cpu".into(), "/sys/fs/cgroup/cpu,cpuacct".into()));
        }
        other => panic!("{other:?}"),
    }
    let unified = [m("/other", true, &[]), m("/sys/fs/cgroup", true, &[])];
    assert_eq!(
        Layout::from_mounts(&unified),
        Some(Layout::V2("/sys/fs/cgroup".into()))
    );
    assert_eq!(Layout::from_mounts(&[]), None);
}

#[test]
fn paths_are_checked() {
    assert!(validate_path("/weft/c1").is_ok());
    assert!(validate_path("weft/lab-1/node.a/c_1").is_ok());
    assert!(validate_path("/weft/lab/").is_ok());
    for bad in ["", "/", "/weft/../x", "/weft//x", "/a b", "/./x"] {
        assert!(validate_path(bad).is_err(), "{bad}");
    }
}

#[test]
fn v1_create_writes_limits_and_remove_cleans_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cg = Cgroup {
        layout: v1_layout(tmp.path(), V1_CONTROLLERS),
        path: "/weft/lab/c1".into(),
    };
    cg.create(&limits()).expect("create");
    let r = |p: &str| std::fs::read_to_string(tmp.path().join(p)).expect(p);
    assert_eq!(r("memory/weft/lab/c1/memory.limit_in_bytes"), "67108864");
    assert_eq!(r("cpu/weft/lab/c1/cpu.cfs_quota_us"), "50000");
    assert_eq!(r("cpu/weft/lab/c1/cpu.cfs_period_us"), "100000");
    assert_eq!(r("cpu/weft/lab/c1/cpu.shares"), "512");
    assert_eq!(r("pids/weft/lab/c1/pids.max"), "20");
    // devices: deny all first, then allow the defaults, one rule per write (this fake, a
    // regular file, keeps them all in a row)
    assert_eq!(r("devices/weft/lab/c1/devices.deny"), "a");
    let allowed = r("devices/weft/lab/c1/devices.allow");
    assert!(
        allowed.starts_with("c *:* mb *:* mc 1:3 rwm") && allowed.ends_with("c 10:200 rwm"),
        "{allowed}"
    );
    assert_eq!(cg.dirs().len(), 5);
    assert_eq!(
        cg.procs_files()[0],
        tmp.path().join("memory/weft/lab/c1/cgroup.procs")
    );
    // fake kernel files, so that the directories can be removed as in a real cgroupfs
    std::fs::write(
        tmp.path().join("memory/weft/lab/c1/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    )
    .expect("write");
    assert_eq!(cg.oom_kills(), 2);
    for d in cg.dirs() {
        for e in std::fs::read_dir(&d).expect("dir") {
            std::fs::remove_file(e.expect("entry").path()).expect("rm");
        }
    }
    cg.remove().expect("remove");
    for c in V1_CONTROLLERS {
        assert!(tmp.path().join(c).exists());
        assert!(!tmp.path().join(c).join("weft").exists(), "{c}");
    }
    cg.remove().expect("removing twice is fine");
}

#[test]
fn v1_missing_controller_fails_before_creating_anything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cg = Cgroup {
        layout: v1_layout(tmp.path(), &["memory", "cpu"]),
        path: "/weft/c2".into(),
    };
    let e = cg.create(&limits()).expect_err("no pids controller");
    assert!(e.contains("pids"), "{e}");
    assert!(!tmp.path().join("memory/weft").exists());
}

#[test]
fn v2_create_enables_controllers_and_writes_limits() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .expect("controllers");
    let cg = Cgroup {
        layout: Layout::V2(tmp.path().to_path_buf()),
        path: "/weft/c3".into(),
    };
    cg.create(&limits()).expect("create");
    let r = |p: &str| std::fs::read_to_string(tmp.path().join(p)).expect(p);
    // the fake file keeps only the last write; the real one accumulates
    assert_eq!(r("cgroup.subtree_control"), "+pids");
    assert_eq!(r("weft/cgroup.subtree_control"), "+pids");
    assert_eq!(r("weft/c3/memory.max"), "67108864");
    assert_eq!(r("weft/c3/cpu.max"), "50000 100000");
    assert_eq!(
        r("weft/c3/cpu.weight"),
        v2::shares_to_weight(512).to_string()
    );
    assert_eq!(r("weft/c3/pids.max"), "20");
    assert_eq!(v2::shares_to_weight(1024), 39);
    assert_eq!(v2::shares_to_weight(2), 1);
    assert_eq!(v2::shares_to_weight(262_144), 10_000);

    let e = Cgroup {
        layout: Layout::V2(tmp.path().join("weft")),
        path: "/x".into(),
    }
    .create(&limits())
    .expect_err("no controllers offered");
    assert!(e.contains("v2 controller"), "{e}");
}

#[test]
fn keyed_and_numbers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = tmp.path().join("f");
    std::fs::write(&f, "usage_usec 1500\nuser_usec 1000\n").expect("write");
    assert_eq!(keyed(&f, "usage_usec"), Some(1500));
    assert_eq!(keyed(&f, "nope"), None);
    std::fs::write(&f, "max\n").expect("write");
    assert_eq!(read_u64(&f), Some(u64::MAX));
}

#[test]
fn v2_hierarchy_of_this_machine_create_join_remove() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let mounts = mountinfo::find();
    let Some(m) = mounts.iter().find(|m| m.v2) else {
        eprintln!("skipping: no cgroup2 mount here");
        return;
    };
    let cg = Cgroup {
        layout: Layout::V2(m.mountpoint.clone()),
        path: format!("/weft-unit-{}/c", std::process::id()),
    };
    cg.create(&Resources::default()).expect("create");
    let _removed = RemoveOnDrop(&cg);
    // Joined as the runtime's processes join: the child writes 0 into the join file.
    let (pid, listed) = with_joined_child(&cg, Cgroup::pids);
    assert_eq!(listed, vec![pid]);
    // Its devices are those of a container: /dev/null opens, a mknod'd /dev/fuse does not.
    let tmp = tempfile::tempdir().unwrap();
    let fuse = mknod_fuse(tmp.path());
    let opens_outside = std::fs::File::open(&fuse).is_ok();
    assert!(opens_in(&cg, std::path::Path::new("/dev/null")));
    if opens_outside {
        assert!(
            !opens_in(&cg, &fuse),
            "the device filter lets the cgroup open /dev/fuse"
        );
    }
    cg.remove().expect("remove");
    assert!(!m
        .mountpoint
        .join(format!("weft-unit-{}", std::process::id()))
        .exists());
}

#[test]
fn join_files_are_tasks_on_v1_and_cgroup_procs_on_v2() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = Cgroup {
        layout: v1_layout(tmp.path(), &["memory", "pids"]),
        path: "/weft/c1".into(),
    };
    assert_eq!(
        v1.join_files(),
        vec![
            tmp.path().join("memory/weft/c1/tasks"),
            tmp.path().join("pids/weft/c1/tasks")
        ]
    );
    let v2 = Cgroup {
        layout: Layout::V2(tmp.path().to_path_buf()),
        path: "/weft/c1".into(),
    };
    assert_eq!(
        v2.join_files(),
        vec![tmp.path().join("weft/c1/cgroup.procs")]
    );
}

/// A freshly forked (single-threaded) child that writes 0 into the join files of a real
/// cgroup is then in it, in every controller: what the container init and `exec` do.
#[test]
fn a_child_joins_through_the_join_files_on_this_machine() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root");
        return;
    }
    let cg = match Cgroup::open(&format!("/weft-unit-join-{}/c", std::process::id())) {
        Ok(cg) => cg,
        Err(e) => {
            eprintln!("skipping: no cgroup file system: {e}");
            return;
        }
    };
    cg.create(&Resources::default()).expect("create");
    let _removed = RemoveOnDrop(&cg);
    let (pid, listed) = with_joined_child(&cg, |cg| {
        cg.dirs()
            .iter()
            .map(|d| {
                read(&d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect::<Vec<_>>()
    });
    cg.remove().expect("remove");
    assert!(!listed.is_empty());
    for l in listed {
        assert_eq!(l, vec![pid]);
    }
}

/// Runs `sleep 30` joined to `cg` as the runtime's processes join (the forked child writes 0
/// into the join files), and returns its pid with what `look` saw while it ran; removes the
/// cgroup and fails the test if the child cannot be started.
/// Removes a real cgroup a test made, also when the test panics (removing one that is gone
/// is not an error).
struct RemoveOnDrop<'a>(&'a Cgroup);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.0.remove();
    }
}

/// `/dev/fuse` (c 10:229, which anyone may open) made as `dir/fuse`.
pub(crate) fn mknod_fuse(dir: &std::path::Path) -> std::path::PathBuf {
    let fuse = dir.join("fuse");
    nix::sys::stat::mknod(
        &fuse,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(10, 229),
    )
    .expect("mknod");
    fuse
}

/// `program` with `args`, made to join `cg` as the runtime's processes do (writing 0 into
/// the join files between fork and exec), and the join files it needs kept open.
fn joined_command(
    cg: &Cgroup,
    program: &str,
    args: &[&std::ffi::OsStr],
) -> (std::process::Command, Vec<std::fs::File>) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let files = cg.open_join_files().expect("open the join files");
    let fds: Vec<i32> = files.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    // SAFETY: only write(2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::write(fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    (cmd, files)
}

/// Whether a process that joined `cg` can open `path` for reading.
fn opens_in(cg: &Cgroup, path: &std::path::Path) -> bool {
    let script = std::ffi::OsStr::new(r#"exec 3< "$1""#);
    let (mut cmd, _files) = joined_command(
        cg,
        "sh",
        &["-c".as_ref(), script, "sh".as_ref(), path.as_os_str()],
    );
    cmd.stderr(std::process::Stdio::null());
    cmd.status().expect("run sh in the cgroup").success()
}

fn with_joined_child<T>(cg: &Cgroup, look: impl FnOnce(&Cgroup) -> T) -> (i32, T) {
    let (mut cmd, _files) = joined_command(cg, "sleep", &["30".as_ref()]);
    match cmd.spawn() {
        Ok(mut child) => {
            let seen = look(cg);
            let _ = child.kill();
            let _ = child.wait();
            (child.id() as i32, seen)
        }
        Err(e) => {
            let _ = cg.remove();
            panic!("spawn with the join: {e}");
        }
    }
}
