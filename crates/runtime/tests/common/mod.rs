//! Test harness for the root tests: a tiny two-layer image built from the host's binaries,
//! a private runtime root, and cleanup of every container on drop (also on panic).

#![allow(dead_code)]

use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use weft_runtime::{Bundle, CreateOptions, RunSpec, State, Status};

/// The binaries copied into the test image.
const BINARIES: &[&str] = &["/bin/sh", "/bin/sleep", "/bin/cat", "/bin/hostname"];

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
        let root = tmp.path().join("state");
        let bin = tmp.path().join("layers/bin");
        let base = tmp.path().join("layers/base");
        build_layers(&bin, &base);
        Some(Env {
            root,
            layers: vec![bin, base],
            ids: RefCell::new(Vec::new()),
            tmp,
        })
    }

    /// Writes a bundle for `id` running `args` on the test image.
    pub fn bundle(&self, id: &str, spec: RunSpec) -> Bundle {
        let spec = RunSpec {
            rootfs_lower: self.layers.clone(),
            ..spec
        };
        Bundle::write(&self.tmp.path().join("bundles").join(id), &spec).expect("write bundle")
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
                return st;
            }
            assert!(Instant::now() < deadline, "{id} did not stop: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
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
        for id in self.ids.borrow().iter() {
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
    for d in ["tmp", "etc", "proc", "sys", "dev", "usr"] {
        fs::create_dir_all(base.join(d)).expect("mkdir base");
    }
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
