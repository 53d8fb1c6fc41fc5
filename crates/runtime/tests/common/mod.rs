//! Test harness for the root tests: a tiny two-layer image built from the host's binaries,
//! a private runtime root, and cleanup of every container on drop (also on panic).

#![allow(dead_code)]

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use weft_runtime::{Bundle, CreateOptions, RunSpec, State, Status};

/// The binaries copied into the test image (into its /bin).
const BINARIES: &[&str] = &[
    "/bin/sh",
    "/bin/sleep",
    "/bin/cat",
    "/bin/hostname",
    "/usr/bin/unshare",
    "/usr/bin/id",
    "/usr/bin/head",
    "/usr/bin/tail",
    "/usr/bin/tty",
    "/bin/mknod",
];

/// The image's /etc/passwd and /etc/group.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n";
const GROUP: &str = "root:x:0:\nwheel:x:10:alice\nalice:x:1000:\nnogroup:x:65534:\n";

/// Whether we run as root (the tests need it to create namespaces and mounts).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// One test's world: temp dir, runtime root, image layers, containers to clean up.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    /// Image layers, topmost first: [bin, base].
    pub layers: Vec<PathBuf>,
    /// Parent cgroup of this test's containers (unique per test and process).
    pub cgroup_parent: String,
    ids: RefCell<Vec<String>>,
}

impl Env {
    /// A new world, or `None` (with a message) when not root.
    pub fn new(test: &str) -> Option<Env> {
        if !is_root() {
            eprintln!("skipping {test}: needs root");
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("weft-rt-test-")
            .tempdir()
            .expect("tempdir");
        // Traversable by the host ids of user-namespaced containers.
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod tempdir");
        let root = tmp.path().join("state");
        let bin = tmp.path().join("layers/bin");
        let base = tmp.path().join("layers/base");
        build_layers(&bin, &base);
        Some(Env {
            root,
            layers: vec![bin, base],
            cgroup_parent: format!("weft-test-{}-{}", std::process::id(), test),
            ids: RefCell::new(Vec::new()),
            tmp,
        })
    }

    /// The bundle directory of container `id`.
    pub fn bundle_dir(&self, id: &str) -> PathBuf {
        self.tmp.path().join("bundles").join(id)
    }

    /// `spec` on the test image, in this test's parent cgroup.
    pub fn spec(&self, spec: RunSpec) -> RunSpec {
        RunSpec {
            rootfs_lower: self.layers.clone(),
            cgroup_parent: spec
                .cgroup_parent
                .clone()
                .or_else(|| Some(self.cgroup_parent.clone())),
            ..spec
        }
    }

    /// Writes a bundle for `id` running `args` on the test image.
    pub fn bundle(&self, id: &str, spec: RunSpec) -> Bundle {
        Bundle::write(&self.bundle_dir(id), &self.spec(spec)).expect("write bundle")
    }

    /// The cgroup directories of this test's parent cgroup that exist (should be none
    /// once every container is deleted).
    pub fn cgroup_dirs_left(&self) -> Vec<PathBuf> {
        let mut left = Vec::new();
        if let Ok(entries) = fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let d = e.path().join(&self.cgroup_parent);
                if d.exists() {
                    left.push(d);
                }
            }
        }
        left
    }

    /// Deletes container `id`, forgetting it for cleanup.
    pub fn delete(&self, id: &str, force: bool) -> weft_runtime::Result<()> {
        let r = weft_runtime::delete(&self.root, id, force);
        if r.is_ok() {
            self.ids.borrow_mut().retain(|x| x != id);
        }
        r
    }

    /// Creates a container with the test shim executable, remembering it for cleanup.
    pub fn create(&self, id: &str, bundle: &Bundle) -> weft_runtime::Result<State> {
        self.ids.borrow_mut().push(id.to_string());
        let opts = CreateOptions {
            shim_exe: Some(PathBuf::from(env!("CARGO_BIN_EXE_weft-runtime"))),
            ..CreateOptions::default()
        };
        weft_runtime::create_with(&self.root, id, &bundle.dir, &opts)
    }

    /// Waits until the container is stopped and returns its state.
    pub fn wait_stopped(&self, id: &str, timeout: Duration) -> State {
        let deadline = Instant::now() + timeout;
        loop {
            let st = weft_runtime::state(&self.root, id).expect("state");
            if st.status == Status::Stopped {
                if st.exit_code.is_none() {
                    let log = self.root.join(id).join("shim.log");
                    eprintln!(
                        "{id} stopped without an exit code; shim log: {:?}",
                        fs::read_to_string(log).unwrap_or_default()
                    );
                }
                return st;
            }
            assert!(Instant::now() < deadline, "{id} did not stop: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `spec` as container `id` to completion; returns its state and log.
    pub fn run(&self, id: &str, spec: RunSpec) -> (State, String) {
        let b = self.bundle(id, spec);
        self.create(id, &b).expect("create");
        weft_runtime::start(&self.root, id).expect("start");
        let st = self.wait_stopped(id, Duration::from_secs(30));
        let log = self.logs(id);
        (st, log)
    }

    /// Waits until the container's log contains `needle`.
    pub fn wait_log(&self, id: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.logs(id);
            if log.contains(needle) {
                return;
            }
            assert!(Instant::now() < deadline, "{needle:?} never in log {log:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The container's log so far.
    pub fn logs(&self, id: &str) -> String {
        let mut out = Vec::new();
        weft_runtime::logs(&self.root, id, false, &mut out).expect("logs");
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Asserts that nothing under this test's temp dir is mounted on the host.
    pub fn assert_no_mounts(&self) {
        let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let ours = self.tmp.path().to_string_lossy().to_string();
        let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&ours)).collect();
        assert!(left.is_empty(), "mounts left on the host: {left:#?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids: Vec<String> = self.ids.borrow().clone();
        for id in ids.iter() {
            if let Ok(st) = weft_runtime::state(&self.root, id) {
                if st.pid_alive() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(st.pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
            }
            if let Err(e) = weft_runtime::delete(&self.root, id, true) {
                if !matches!(e, weft_runtime::Error::NotFound { .. }) {
                    eprintln!("cleanup of {id}: {e}");
                }
            }
        }
    }
}

/// Builds two layers: `base` with the shared libraries (and a few dirs and a symlink),
/// `bin` with the binaries.
fn build_layers(bin: &Path, base: &Path) {
    for d in ["tmp", "etc", "proc", "sys", "dev", "usr", "home/alice"] {
        fs::create_dir_all(base.join(d)).expect("mkdir base");
    }
    std::fs::set_permissions(
        base.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("chmod /tmp");
    fs::write(base.join("etc/passwd"), PASSWD).expect("passwd");
    fs::write(base.join("etc/group"), GROUP).expect("group");
    std::os::unix::fs::symlink("../bin", base.join("usr/bin")).expect("symlink");
    fs::create_dir_all(bin.join("bin")).expect("mkdir bin");
    for b in BINARIES {
        let name = Path::new(b).file_name().expect("name");
        fs::copy(b, bin.join("bin").join(name)).expect("copy binary");
        for lib in libraries(b) {
            let dest = base.join(lib.strip_prefix("/").expect("absolute"));
            if dest.exists() {
                continue;
            }
            fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir lib dir");
            fs::copy(&lib, &dest).expect("copy library");
        }
    }
}

/// The shared libraries `ldd` lists for `binary` (absolute paths).
fn libraries(binary: &str) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("run ldd");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}
