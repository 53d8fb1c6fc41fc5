//! Root tests of cgroup limits: memory (OOM kill), CPU quota, pids, and stats.
//! Each test skips (passes with a message) when not run as root.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use weft_runtime::{RunSpec, Status};

fn sh(script: &str) -> RunSpec {
    RunSpec {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..RunSpec::default()
    }
}

#[test]
fn memory_limit_oom_kills_with_137() {
    let Some(env) = Env::new("oom") else {
        return;
    };
    let spec = RunSpec {
        memory: Some(32 << 20),
        ..sh("a=aaaaaaaaaaaaaaaa; while :; do a=$a$a; done")
    };
    let b = env.bundle("hog", spec);
    let st = env.create("hog", &b).expect("create");
    let cg = st.cgroup.clone().expect("a cgroup");
    assert!(cg.ends_with("/hog"), "{cg}");
    let s = weft_runtime::stats(&env.root, "hog").expect("stats");
    assert_eq!(s.memory_limit, 32 << 20);
    weft_runtime::start(&env.root, "hog").expect("start");
    let st = env.wait_stopped("hog", Duration::from_secs(30));
    assert_eq!(st.exit_code, Some(137), "{st:?}");
    assert!(st.oom_killed, "{st:?}");
    env.delete("hog", false).expect("delete");
    assert!(
        env.cgroup_dirs_left().is_empty(),
        "{:?}",
        env.cgroup_dirs_left()
    );

    // a container within its limit is not marked
    let (st, _) = env.run(
        "fits",
        RunSpec {
            memory: Some(64 << 20),
            ..sh("a=aaaa; a=$a$a; exit 0")
        },
    );
    assert_eq!(st.exit_code, Some(0));
    assert!(!st.oom_killed);
    env.delete("fits", false).expect("delete");
    env.assert_no_mounts();
}

#[test]
fn cpus_half_limits_a_busy_loop_to_about_half_a_cpu() {
    let Some(env) = Env::new("cpus") else {
        return;
    };
    let spec = RunSpec {
        cpus: Some(0.5),
        ..sh("while :; do :; done")
    };
    let b = env.bundle("spin", spec);
    env.create("spin", &b).expect("create");
    weft_runtime::start(&env.root, "spin").expect("start");
    std::thread::sleep(Duration::from_millis(300));
    let (t0, s0) = (
        Instant::now(),
        weft_runtime::stats(&env.root, "spin").expect("stats"),
    );
    std::thread::sleep(Duration::from_secs(2));
    let (t1, s1) = (
        Instant::now(),
        weft_runtime::stats(&env.root, "spin").expect("stats"),
    );
    let used = (s1.cpu_usage_ns - s0.cpu_usage_ns) as f64 / 1e9;
    let share = used / (t1 - t0).as_secs_f64();
    eprintln!("cpu share with --cpus 0.5: {share:.3}");
    assert!((0.3..=0.7).contains(&share), "share {share}");
    assert_eq!(s1.pids, 1);
    assert!(s1.memory_usage > 0);
    weft_runtime::stop(&env.root, "spin", Duration::from_millis(200)).expect("stop");
    env.delete("spin", false).expect("delete");
    assert!(env.cgroup_dirs_left().is_empty());
}

#[test]
fn pids_limit_bounds_a_fork_bomb() {
    let Some(env) = Env::new("pids") else {
        return;
    };
    let spec = RunSpec {
        pids_limit: Some(12),
        args: vec!["sleep".into(), "1000".into()],
        ..RunSpec::default()
    };
    let b = env.bundle("bomb", spec);
    env.create("bomb", &b).expect("create");
    weft_runtime::start(&env.root, "bomb").expect("start");
    // A shell forking forever: the kernel refuses the 13th task and the shell gives up
    // ("Cannot fork"); what it started stays, bounded.
    let code = weft_runtime::exec(
        &env.root,
        "bomb",
        &[
            "sh".into(),
            "-c".into(),
            "while :; do sleep 100 & done".into(),
        ],
        &[],
        false,
    )
    .expect("exec");
    assert_eq!(code, 2, "the shell stopped when fork failed");
    let s = weft_runtime::stats(&env.root, "bomb").expect("stats");
    eprintln!("tasks after the bomb: {}", s.pids);
    assert!((8..=12).contains(&s.pids), "{s:?}");
    // the host can still fork: stop and delete work and leave nothing
    weft_runtime::stop(&env.root, "bomb", Duration::from_millis(200)).expect("stop");
    assert_eq!(
        weft_runtime::state(&env.root, "bomb")
            .expect("state")
            .status,
        Status::Stopped
    );
    env.delete("bomb", false).expect("delete");
    assert!(env.cgroup_dirs_left().is_empty());
}

#[test]
fn bad_limits_in_config_json_fail_create_and_leave_nothing() {
    let Some(env) = Env::new("bad_limits") else {
        return;
    };
    let b = env.bundle("neg", sh("true"));
    let mut spec = b.spec().expect("spec");
    let mut v = serde_json::to_value(&spec).expect("json");
    v["linux"]["resources"]["memory"] = serde_json::json!({ "limit": -5 });
    spec = serde_json::from_value(v).expect("spec");
    spec.save(b.config_path()).expect("save");
    let e = env.create("neg", &b).expect_err("negative memory");
    assert!(e.to_string().contains("memory limit -5"), "{e}");
    assert!(!env.root.join("neg").exists());
    assert!(env.cgroup_dirs_left().is_empty());

    std::fs::write(b.config_path(), "{ not json").expect("write");
    let e = env.create("neg", &b).expect_err("broken config");
    assert!(e.to_string().contains("config.json"), "{e}");
    assert!(!env.root.join("neg").exists());
}
