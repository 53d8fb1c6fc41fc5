use super::*;
use crate::bundle::{build_spec, NsMode, RunSpec};

fn run_spec() -> RunSpec {
    RunSpec {
        args: vec!["sleep".into(), "1".into()],
        hostname: "h".into(),
        rootfs_lower: vec!["/l/top".into(), "/l/base".into()],
        ..RunSpec::default()
    }
}

#[test]
fn from_weft_bundle() {
    let spec = build_spec(&run_spec()).expect("spec");
    let cfg = InitConfig::from_spec(&spec, Path::new("/b"), "c1").expect("cfg");
    assert_eq!(cfg.rootfs, PathBuf::from("/b/rootfs"));
    assert_eq!(cfg.cgroup_path, "/weft/c1");
    assert!(cfg.resources.is_empty());
    assert_eq!(cfg.restart, RestartPolicy::No);
    assert!(cfg.userns.is_none() && !cfg.tty);
    let sec = &cfg.process.security;
    assert_eq!(sec.caps.map(|c| c.effective), Some(0xa804_25fb));
    assert!(sec.no_new_privs);
    assert_eq!(sec.seccomp.len(), 2, "EPERM and ENOSYS groups");
    assert_eq!(
        cfg.overlay,
        Some(Overlay {
            lower: vec!["/l/top".into(), "/l/base".into()],
            upper: "/b/upper".into(),
            work: "/b/work".into(),
        })
    );
    assert_eq!(
        cfg.clone_flags,
        CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWIPC
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWNET
    );
    assert!(cfg.join.is_empty());
    assert_eq!(cfg.hostname.as_deref(), Some("h"));
    assert_eq!(cfg.mounts.len(), 6);
    let sys = &cfg.mounts[5];
    assert!(sys.flags.contains(MsFlags::MS_RDONLY | MsFlags::MS_NOSUID));
    assert_eq!(
        cfg.mounts[2].data.as_deref(),
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
    );
    assert_eq!(cfg.devices.len(), 6);
    assert!(cfg.masked_paths.contains(&PathBuf::from("/proc/kcore")));
}

#[test]
fn join_netns() {
    let mut rs = run_spec();
    rs.netns = NsMode::Join("/run/netns/x".into());
    let spec = build_spec(&rs).expect("spec");
    let cfg = InitConfig::from_spec(&spec, Path::new("/b"), "c1").expect("cfg");
    assert!(!cfg.clone_flags.contains(CloneFlags::CLONE_NEWNET));
    assert_eq!(
        cfg.join,
        vec![(CloneFlags::CLONE_NEWNET, PathBuf::from("/run/netns/x"))]
    );
}

#[test]
fn limits_user_namespace_restart_and_cgroup_path() {
    let mut rs = run_spec();
    rs.tty = true;
    rs.memory = Some(32 << 20);
    rs.pids_limit = Some(9);
    rs.userns = true;
    rs.user = Some("7:8".into());
    rs.restart = RestartPolicy::OnFailure(2);
    rs.cgroup_parent = Some("/weft/lab/n1/".into());
    let mut spec = build_spec(&rs).expect("spec");
    let cfg = InitConfig::from_spec(&spec, Path::new("/b"), "c9").expect("cfg");
    assert!(cfg.tty);
    assert_eq!(cfg.resources.memory, Some(32 << 20));
    assert_eq!(cfg.resources.pids, Some(9));
    assert!(cfg.clone_flags.contains(CloneFlags::CLONE_NEWUSER));
    assert_eq!(
        cfg.userns.as_ref().map(|m| m.uid_map.as_str()),
        Some("0 100000 65536\n")
    );
    assert_eq!((cfg.process.security.uid, cfg.process.security.gid), (7, 8));
    assert_eq!(cfg.restart, RestartPolicy::OnFailure(2));
    assert_eq!(cfg.cgroup_path, "/weft/lab/n1/c9");
    if let Some(l) = spec.linux_mut() {
        l.set_cgroups_path(Some("/custom/path".into()));
    }
    let cfg = InitConfig::from_spec(&spec, Path::new("/b"), "c9").expect("cfg");
    assert_eq!(cfg.cgroup_path, "/custom/path");
}

#[test]
fn rejects_bad_config() {
    let mut spec = build_spec(&run_spec()).expect("spec");
    if let Some(l) = spec.linux_mut() {
        l.set_cgroups_path(Some("/a/../b".into()));
    }
    let e = InitConfig::from_spec(&spec, Path::new("/b"), "c").expect_err("path");
    assert!(e.contains("cgroupsPath"), "{e}");

    let mut spec = build_spec(&run_spec()).expect("spec");
    let mut ann = spec.annotations().clone().unwrap_or_default();
    ann.insert(ANNOTATION_RESTART.into(), "sometimes".into());
    spec.set_annotations(Some(ann));
    let e = InitConfig::from_spec(&spec, Path::new("/b"), "c").expect_err("restart");
    assert!(e.contains("restart policy"), "{e}");

    let mut spec = build_spec(&run_spec()).expect("spec");
    if let Some(p) = spec.process_mut() {
        p.set_args(Some(vec![]));
    }
    let e = InitConfig::from_spec(&spec, Path::new("/b"), "c").expect_err("args");
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn options() {
    let o = |v: &[&str]| parse_options(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let (f, p, d) = o(&["rbind", "ro", "nosuid", "rprivate", "size=1k", "mode=755"]);
    assert_eq!(
        f,
        MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
    );
    assert_eq!(p, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
    assert_eq!(d.as_deref(), Some("size=1k,mode=755"));
    let (f, _, d) = o(&["ro", "rw"]);
    assert_eq!(f, MsFlags::empty());
    assert_eq!(d, None);
}
