//! Container state: the per-container state directory and its `state.json`.
//!
//! Layout of `<root>/<id>/`:
//! - `state.json`: [`State`], written only by the shim (atomically: temp file + rename),
//!   or, for a container without a shim, once by `create` (see [`StateDir::current`]);
//! - `log`: the container's stdout and stderr (appended);
//! - `shim.log`: the shim's own diagnostics;
//! - `shim.sock`: the shim's control socket (`start`);
//! - `shim.lock`: held (flock) by the shim for its whole life, so `delete` can wait for it;
//! - `exec.fifo`: without a shim, the fifo on which `start` releases the init; `start`
//!   removes it, which is what says that the container was started;
//! - `cgroup`: the container's cgroup path, written before the cgroup is created, so that
//!   `delete` finds it even when the shim died before writing `state.json`.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_ctx, Error, Result};
use crate::procfs;

/// Lifecycle status of a container, as in runc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The init process exists in its namespaces, blocked before exec.
    Created,
    /// The user process was exec'd and has not exited.
    Running,
    /// The process exited (or never ran).
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        })
    }
}

/// The state of one container (the contents of `<root>/<id>/state.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Container id.
    pub id: String,
    /// Lifecycle status.
    pub status: Status,
    /// Host pid of the container's init (pid 1 inside); 0 if it never existed.
    pub pid: i32,
    /// Pid of the shim that reaps the container; 0 for a container without a shim (its
    /// init is reaped by the caller of `create` or its subreaper).
    pub shim_pid: i32,
    /// Absolute path of the OCI bundle.
    pub bundle: PathBuf,
    /// Exit code once stopped: the code, or 128+signal if killed by a signal;
    /// `None` when unknown (e.g. the shim itself was killed).
    pub exit_code: Option<i32>,
    /// When the container was created (RFC 3339, UTC).
    pub created: String,
    /// When the user process was exec'd (RFC 3339, UTC).
    pub started: Option<String>,
    /// When the process exited (RFC 3339, UTC).
    pub finished: Option<String>,
    /// Why the container stopped without running, e.g. `exec "foo": No such file or directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Start time of `pid` (clock ticks since boot, `/proc/<pid>/stat` field 22), used to
    /// recognise a recycled pid.
    #[serde(default)]
    pub pid_start: u64,
    /// Start time of `shim_pid`, same unit.
    #[serde(default)]
    pub shim_start: u64,
    /// Whether the kernel's OOM killer killed a process of the container during its last
    /// run (it went over its memory limit; the exit code is then 137).
    #[serde(default)]
    pub oom_killed: bool,
    /// The container's cgroup path inside each hierarchy (e.g. `/weft/c1`); `None` when
    /// no cgroup file system was available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// How many times the shim restarted the process (restart policy).
    #[serde(default)]
    pub restart_count: u32,
}

impl State {
    /// Whether the container's init process is still this container's (not exited, not a
    /// recycled pid).
    pub fn pid_alive(&self) -> bool {
        self.pid > 0 && procfs::is_alive(self.pid, self.pid_start)
    }

    /// The process whose exit ends this container's current run: its shim (which records
    /// the exit, then exits), or its init where there is no shim (`weft-runc`); 0 when
    /// neither is alive.
    pub fn waited_pid(&self) -> i32 {
        if self.shim_pid > 0 {
            if self.shim_alive() {
                self.shim_pid
            } else {
                0
            }
        } else if self.pid_alive() {
            self.pid
        } else {
            0
        }
    }

    /// Whether the shim of this container is still alive.
    pub fn shim_alive(&self) -> bool {
        self.shim_pid > 0 && procfs::is_alive(self.shim_pid, self.shim_start)
    }

    /// The status corrected by what the kernel says: a container whose shim is gone is
    /// stopped, whatever the file says (the shim was killed before it could record the
    /// exit; the init dies with it), and `error` says so.
    pub(crate) fn reconciled(mut self) -> State {
        if self.shim_pid == 0 {
            // No shim: the init's life is the container's; its exit code is its reaper's.
            if self.status != Status::Stopped && !self.pid_alive() {
                self.status = Status::Stopped;
            }
            return self;
        }
        if self.status != Status::Stopped && !self.shim_alive() {
            if self.pid_alive() {
                return self; // the init is about to die with its shim
            }
            self.status = Status::Stopped;
            if self.error.is_none() {
                self.error = Some(format!(
                    "its shim (pid {}) died (was it killed?) before recording the exit; the container was killed with it and its exit code is unknown",
                    self.shim_pid
                ));
            }
        }
        self
    }
}

/// Paths of one container's state directory.
#[derive(Clone, Debug)]
pub(crate) struct StateDir {
    pub dir: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path, id: &str) -> StateDir {
        StateDir { dir: root.join(id) }
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("log")
    }
    pub fn shim_log(&self) -> PathBuf {
        self.dir.join("shim.log")
    }
    pub fn sock(&self) -> PathBuf {
        self.dir.join("shim.sock")
    }
    pub fn lock(&self) -> PathBuf {
        self.dir.join("shim.lock")
    }
    pub fn cgroup(&self) -> PathBuf {
        self.dir.join("cgroup")
    }
    pub fn fifo(&self) -> PathBuf {
        self.dir.join("exec.fifo")
    }

    /// Reads `state.json` and corrects it by what the kernel and this directory say: a
    /// shimless container that `start` released (its fifo is gone) runs, since the time
    /// the fifo went (`start` records nothing else: rewriting `state.json` there cost
    /// more than the rest of `start`); and [`State::reconciled`].
    pub fn current(&self) -> Result<State> {
        let mut st = self.read()?;
        if st.shim_pid == 0 && st.status == Status::Created && !self.fifo().exists() {
            st.status = Status::Running;
            st.started = fs::metadata(&self.dir)
                .and_then(|m| m.modified())
                .ok()
                .map(procfs::rfc3339);
        }
        Ok(st.reconciled())
    }

    /// Reads `state.json` as written.
    pub fn read(&self) -> Result<State> {
        let path = self.state();
        let text = fs::read(&path).map_err(io_ctx(format!("read {}", path.display())))?;
        serde_json::from_slice(&text).map_err(|e| Error::Io {
            context: format!(
                "parse {} (corrupt state; delete the container with force)",
                path.display()
            ),
            source: e.into(),
        })
    }

    /// Writes `state.json` atomically (temp file in the same dir, rename). No fsync: the
    /// state describes processes, which a crash of the machine ends anyway, and an fsync
    /// costs more than the rest of a `create` or `start` (10-30 ms on ext4 under load).
    pub fn write(&self, state: &State) -> Result<()> {
        let path = self.state();
        let tmp = self
            .dir
            .join(format!(".state.json.{}.tmp", std::process::id()));
        let data = serde_json::to_vec_pretty(state).map_err(|e| Error::Io {
            context: format!("serialize state of {}", state.id),
            source: e.into(),
        })?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&data)?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            Error::Io {
                context: format!("write {}", path.display()),
                source: e,
            }
        })
    }
}

/// Checks that `id` can name a container (and a directory): 1 to 128 characters of
/// `[A-Za-z0-9_.-]`, starting with a letter or digit.
pub(crate) fn validate_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() || id.len() > 128 {
        return bad("must be 1 to 128 characters long");
    }
    if !id.as_bytes()[0].is_ascii_alphanumeric() {
        return bad("must start with a letter or digit");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
    {
        return bad("may only contain letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            id: "c1".into(),
            status: Status::Running,
            pid: 1234,
            shim_pid: 1200,
            bundle: "/b/c1".into(),
            exit_code: None,
            created: "2024-01-02T03:04:05.000000006Z".into(),
            started: Some("2024-01-02T03:04:06.000000000Z".into()),
            finished: None,
            error: None,
            pid_start: 42,
            shim_start: 41,
            oom_killed: false,
            cgroup: Some("/weft/c1".into()),
            restart_count: 0,
        }
    }

    #[test]
    fn state_file_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::new(tmp.path(), "c1");
        fs::create_dir(&sd.dir).expect("mkdir");
        let mut st = sample();
        sd.write(&st).expect("write");
        assert_eq!(sd.read().expect("read"), st);
        st.status = Status::Stopped;
        st.exit_code = Some(137);
        st.error = Some("exec \"x\": No such file or directory".into());
        sd.write(&st).expect("rewrite");
        assert_eq!(sd.read().expect("reread"), st);
        // no temp file left behind
        let names: Vec<_> = fs::read_dir(&sd.dir)
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn state_json_shape() {
        let v = serde_json::to_value(sample()).expect("json");
        assert_eq!(v["status"], "running");
        assert_eq!(v["pid"], 1234);
        assert_eq!(v["exit_code"], serde_json::Value::Null);
        assert!(v.get("error").is_none());
    }

    #[test]
    fn reconcile_dead_shim_and_pid() {
        let mut st = sample();
        st.pid = i32::MAX; // no such process
        st.shim_pid = i32::MAX;
        let st = st.reconciled();
        assert_eq!(st.status, Status::Stopped);
        assert!(st.error.as_deref().unwrap_or("").contains("shim"), "{st:?}");
        assert_eq!(st.exit_code, None);
    }

    #[test]
    fn reconcile_without_shim() {
        let mut st = sample();
        st.shim_pid = 0;
        st.pid = std::process::id() as i32;
        st.pid_start = 0;
        assert_eq!(st.clone().reconciled().status, Status::Running);
        st.pid = i32::MAX;
        let st = st.reconciled();
        assert_eq!(st.status, Status::Stopped);
        assert_eq!((st.exit_code, st.error), (None, None));
    }

    #[test]
    fn old_state_files_still_parse() {
        let text = r#"{"id":"c","status":"running","pid":1,"shim_pid":2,"bundle":"/b",
            "exit_code":null,"created":"x","started":null,"finished":null}"#;
        let st: State = serde_json::from_str(text).expect("parse");
        assert!(!st.oom_killed && st.cgroup.is_none() && st.restart_count == 0);
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x").is_ok());
        assert!(validate_id("").is_err());
        assert!(validate_id("../x").is_err());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id(".hidden").is_err());
        assert!(validate_id(&"a".repeat(129)).is_err());
    }
}
