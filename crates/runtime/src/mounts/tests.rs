use super::sys::fake::Recorder;
use super::*;
use crate::bundle::{build_spec, RunSpec};

fn cfg() -> InitConfig {
    let rs = RunSpec {
        args: vec!["sh".into()],
        hostname: "box".into(),
        rootfs_lower: vec!["/l/top".into(), "/l/base".into()],
        ..RunSpec::default()
    };
    let spec = build_spec(&rs).expect("spec");
    InitConfig::from_spec(&spec, Path::new("/b"), "c1").expect("cfg")
}

#[test]
fn plan_order() {
    let ops = plan(&cfg()).expect("plan");
    let names: Vec<String> = ops
        .iter()
        .map(|o| match o {
            Op::MakeRprivate => "rprivate".to_string(),
            Op::Overlay { .. } => "overlay".into(),
            Op::BindRootfs { .. } => "bindroot".into(),
            Op::Mount(m) => format!("mount {}", m.destination.display()),
            Op::Device(d) => format!("dev {}", d.path.display()),
            Op::Symlink { link, .. } => format!("ln {}", link.display()),
            Op::PivotRoot => "pivot".into(),
            Op::Mask(p) => format!("mask {}", p.display()),
            Op::ReadOnly(p) => format!("ro {}", p.display()),
            Op::RootReadOnly => "rootro".into(),
            Op::Hostname(h) => format!("hostname {h}"),
        })
        .collect();
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} missing from {names:?}"))
    };
    assert_eq!(names[0], "rprivate");
    assert_eq!(names[1], "overlay");
    assert!(pos("mount /proc") < pos("mount /dev"));
    assert!(pos("mount /dev") < pos("mount /dev/pts"));
    assert!(pos("mount /dev/pts") < pos("mount /dev/shm"));
    assert!(pos("mount /dev/mqueue") < pos("mount /sys"));
    assert!(pos("mount /sys") < pos("dev /dev/null"));
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        assert!(pos(&format!("dev /dev/{d}")) < pos("pivot"));
    }
    for l in ["fd", "stdin", "stdout", "stderr", "ptmx"] {
        assert!(pos(&format!("ln /dev/{l}")) < pos("pivot"));
    }
    assert!(pos("pivot") < pos("mask /proc/kcore"));
    assert!(pos("pivot") < pos("ro /proc/sys"));
    assert_eq!(names.last().map(String::as_str), Some("hostname box"));
    assert!(!names.contains(&"rootro".to_string()));
    match &ops[1] {
        Op::Overlay { target, data, cwd } => {
            assert_eq!(target, Path::new("/b/rootfs"));
            assert_eq!(
                data,
                "lowerdir=/l/top:/l/base,upperdir=/b/upper,workdir=/b/work"
            );
            assert_eq!(cwd, &None);
        }
        other => panic!("expected overlay, got {other:?}"),
    }
}

#[test]
fn plan_without_layers_binds_rootfs() {
    let mut c = cfg();
    c.overlay = None;
    let ops = plan(&c).expect("plan");
    assert_eq!(
        ops[1],
        Op::BindRootfs {
            target: "/b/rootfs".into()
        }
    );
}

#[test]
fn long_layer_list_uses_relative_paths() {
    let lower: Vec<PathBuf> = (0..48)
        .map(|i| PathBuf::from(format!("/var/lib/weft/image/layers/{:064x}", i)))
        .collect();
    let (data, cwd) = overlay_data(
        &lower,
        Path::new("/var/lib/weft/c/upper"),
        Path::new("/var/lib/weft/c/work"),
    )
    .expect("fits");
    assert_eq!(cwd, Some(PathBuf::from("/var/lib/weft")));
    assert!(data.starts_with("lowerdir=image/layers/"), "{data}");
    assert!(data.ends_with(",upperdir=c/upper,workdir=c/work"), "{data}");
    assert!(data.len() <= MAX_MOUNT_DATA);

    let lower: Vec<PathBuf> = (0..200)
        .map(|i| PathBuf::from(format!("/x/{:064x}", i)))
        .collect();
    assert!(overlay_data(&lower, Path::new("/y/u"), Path::new("/y/w")).is_err());
}

#[test]
fn apply_records_syscalls_in_order() {
    let c = cfg();
    let ops = plan(&c).expect("plan");
    let rec = Recorder {
        files: [PathBuf::from("/proc/kcore")].into(),
        missing: [PathBuf::from("/proc/acpi")].into(),
        ..Recorder::default()
    };
    apply(&rec, &c.rootfs, &ops).expect("apply");
    let calls = rec.calls.borrow();
    let idx = |prefix: &str| {
        calls
            .iter()
            .position(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no call starting with {prefix:?} in {calls:#?}"))
    };
    assert_eq!(calls[0], "mount - / - MS_REC|MS_PRIVATE -");
    assert_eq!(
        calls[1],
        "mount overlay /b/rootfs overlay 0 lowerdir=/l/top:/l/base,upperdir=/b/upper,workdir=/b/work"
    );
    assert!(idx("mkdir /b/rootfs/proc") < idx("mount proc /b/rootfs/proc proc"));
    assert!(idx("mount tmpfs /b/rootfs/dev tmpfs") < idx("mount devpts /b/rootfs/dev/pts devpts"));
    assert!(calls[idx("mount sysfs /b/rootfs/sys sysfs")].contains("MS_RDONLY"));
    assert!(idx("mknod /b/rootfs/dev/null c 666 1:3") < idx("pivot_root"));
    assert!(idx("symlink /b/rootfs/dev/ptmx -> pts/ptmx") < idx("pivot_root"));
    assert_eq!(calls[idx("pivot_root") - 1], "chdir /b/rootfs");
    assert_eq!(calls[idx("pivot_root")], "pivot_root . .");
    assert_eq!(calls[idx("pivot_root") + 1], "umount .");
    assert_eq!(calls[idx("pivot_root") + 2], "chdir /");
    // masks: directory -> read-only tmpfs, file -> /dev/null, missing -> skipped
    assert!(calls.contains(&"mount tmpfs /proc/asound tmpfs MS_RDONLY -".to_string()));
    assert!(calls.contains(&"mount /dev/null /proc/kcore - MS_BIND -".to_string()));
    assert!(!calls.iter().any(|c| c.contains("/proc/acpi")));
    assert!(idx("mount /proc/sys /proc/sys - MS_BIND|MS_REC") < idx("sethostname box"));
    assert!(calls
        .iter()
        .any(|c| c.starts_with("mount /proc/sys /proc/sys")
            && c.contains("MS_REMOUNT")
            && c.contains("MS_RDONLY")));
    assert_eq!(calls.last().map(String::as_str), Some("sethostname box"));
}

#[test]
fn devices_fall_back_to_bind_without_mknod() {
    let rec = Recorder {
        deny_mknod: true,
        ..Recorder::default()
    };
    let d = Device {
        path: "/dev/null".into(),
        kind: 'c',
        major: 1,
        minor: 3,
        mode: 0o666,
    };
    apply(&rec, Path::new("/r"), &[Op::Device(d)]).expect("apply");
    let calls = rec.calls.borrow();
    assert_eq!(
        *calls,
        vec![
            "mkdir /r/dev".to_string(),
            "touch /r/dev/null".into(),
            "mount /dev/null /r/dev/null - MS_BIND -".into()
        ]
    );
}

#[test]
fn bind_mount_with_readonly_remounts() {
    let m = MountEntry {
        destination: "/etc/hosts".into(),
        fstype: None,
        source: Some("/b/hosts".into()),
        flags: MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        propagation: MsFlags::MS_PRIVATE,
        data: None,
    };
    let rec = Recorder {
        files: [PathBuf::from("/b/hosts")].into(),
        ..Recorder::default()
    };
    apply(&rec, Path::new("/r"), &[Op::Mount(m)]).expect("apply");
    let calls = rec.calls.borrow();
    assert_eq!(calls[0], "touch /r/etc/hosts");
    assert_eq!(calls[1], "mount /b/hosts /r/etc/hosts - MS_BIND -");
    assert!(calls[2].contains("MS_REMOUNT") && calls[2].contains("MS_RDONLY"));
    assert_eq!(calls[3], "mount - /r/etc/hosts - MS_PRIVATE -");
}

#[test]
fn failure_names_the_step() {
    struct Failing;
    impl Syscall for Failing {
        fn mount(
            &self,
            _: Option<&Path>,
            _: &Path,
            _: Option<&str>,
            _: MsFlags,
            _: Option<&str>,
        ) -> io::Result<()> {
            Err(Errno::ENOENT.into())
        }
        fn umount_detach(&self, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn pivot_root(&self, _: &Path, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn chdir(&self, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn mkdir_all(&self, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn create_file(&self, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn mknod(&self, _: &Path, _: char, _: u32, _: u64, _: u64) -> io::Result<()> {
            Ok(())
        }
        fn symlink(&self, _: &Path, _: &Path) -> io::Result<()> {
            Ok(())
        }
        fn sethostname(&self, _: &str) -> io::Result<()> {
            Ok(())
        }
        fn kind(&self, _: &Path) -> Option<FileKind> {
            None
        }
        fn resolve(&self, r: &Path, p: &Path) -> io::Result<PathBuf> {
            Ok(r.join(p))
        }
        fn resolve_parent(&self, r: &Path, p: &Path) -> io::Result<PathBuf> {
            Ok(r.join(p))
        }
    }
    let ops = plan(&cfg()).expect("plan");
    let err = apply(&Failing, Path::new("/b/rootfs"), &ops[1..]).expect_err("fails");
    assert!(
        err.starts_with("mount overlay rootfs on /b/rootfs (lowerdir=/l/top:/l/base"),
        "{err}"
    );
    assert!(err.ends_with(": No such file or directory"), "{err}");
}
