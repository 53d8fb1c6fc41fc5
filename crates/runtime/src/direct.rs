//! Containers without a shim, in runc's model (what `weft-runc` gives an engine such as
//! podman with conmon): `create` clones the init itself, so the init inherits the caller's
//! standard streams (or gets a pty whose master goes to the engine's console socket) and,
//! once `create` has exited, is reparented to the engine's subreaper, which reaps it and
//! learns its exit code. The init waits for `start` on a fifo in the state dir; the state
//! is what `create` and `start` recorded, corrected by /proc (a dead init is stopped, its
//! exit code unknown to the runtime). There is no log, no restart policy, no `attach`.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::config::InitConfig;
use crate::error::{io_ctx, Error, Result};
use crate::mounts::Op;
use crate::shim::spawn::{self, Inherit, KillOnDrop};
use crate::shim::{chown_for_userns, join_namespaces, setup_cgroup, CgroupGuard};
use crate::state::{State, StateDir, Status};
use crate::{procfs, sock};

/// Creates the container in the calling process (which must be single-threaded; it joins
/// the namespaces the container shares): returns once the init waits for `start`.
pub(crate) fn create(
    sd: &StateDir,
    id: &str,
    bundle: &Path,
    cfg: &InitConfig,
    ops: &[Op],
    console_socket: Option<&Path>,
) -> Result<State> {
    let cerr = |msg: String| Error::Container {
        id: id.to_string(),
        msg,
    };
    let console = match (cfg.tty, console_socket) {
        (true, None) => {
            return Err(cerr(
                "process.terminal is true in config.json: a console socket is needed to \
                 hand over the terminal (--console-socket)"
                    .into(),
            ))
        }
        (true, Some(p)) => Some(sock::connect(p).map_err(io_ctx(format!(
            "connect to the console socket {}",
            p.display()
        )))?),
        (false, _) => None,
    };
    let fifo_path = sd.fifo();
    nix::unistd::mkfifo(&fifo_path, Mode::from_bits_truncate(0o600))
        .map_err(io_ctx(format!("create {}", fifo_path.display())))?;
    // Read-write: the open does not wait for a writer, and the init's read waits for one.
    let fifo = nix::fcntl::open(&fifo_path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(io_ctx(format!("open {}", fifo_path.display())))?;

    let mut cgroup = CgroupGuard(setup_cgroup(sd, cfg).map_err(cerr)?);
    chown_for_userns(cfg).map_err(cerr)?;
    join_namespaces(cfg).map_err(cerr)?;
    let with = Inherit {
        log_null: None,
        cgroup: cgroup.0.as_ref(),
        console_socket: console.as_ref().map(|c| c.as_fd()),
        start_fifo: Some(fifo.as_fd()),
    };
    let child = spawn::spawn(cfg, ops, cfg.clone_flags, &with).map_err(cerr)?;
    let mut guard = KillOnDrop(Some(child.pid));
    let pid = child.pid.as_raw();
    let state = State {
        id: id.to_string(),
        status: Status::Created,
        pid,
        shim_pid: 0,
        bundle: bundle.to_path_buf(),
        exit_code: None,
        created: procfs::now_rfc3339(),
        started: None,
        finished: None,
        error: None,
        pid_start: procfs::start_time(pid).unwrap_or(0),
        shim_start: 0,
        oom_killed: false,
        cgroup: cgroup.0.as_ref().map(|c| c.path.clone()),
        restart_count: 0,
    };
    sd.write(&state)?;
    guard.0 = None;
    cgroup.0 = None; // the container keeps it; `delete` removes it
    Ok(state)
}

/// Lets the init of a shimless container exec its process (through the start fifo) and
/// removes the fifo, which records that it runs ([`StateDir::current`]). Errors of the
/// exec itself go to the process's stderr (exit 127); a missing command was already
/// reported by `create`.
pub(crate) fn start(sd: &StateDir, st: &State) -> Result<()> {
    let path = sd.fifo();
    let fifo = match nix::fcntl::open(
        &path,
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(f) => f,
        // No reader: the init is gone.
        Err(Errno::ENXIO) | Err(Errno::ENOENT) => {
            return Err(Error::Container {
                id: st.id.clone(),
                msg: "its init process is gone (killed before start?); delete it".into(),
            })
        }
        Err(e) => return Err(io_ctx(format!("open {}", path.display()))(e)),
    };
    File::from(fifo)
        .write_all(b"G")
        .map_err(io_ctx(format!("write to {}", path.display())))?;
    fs::remove_file(&path).map_err(io_ctx(format!("remove {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_without_init_says_so() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let sd = StateDir::new(tmp.path(), "c1");
        fs::create_dir(&sd.dir).expect("mkdir");
        nix::unistd::mkfifo(&sd.fifo(), Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let st: State = serde_json::from_value(serde_json::json!({
            "id": "c1", "status": "created", "pid": i32::MAX, "shim_pid": 0,
            "bundle": "/b", "exit_code": null, "created": "x", "started": null,
            "finished": null
        }))
        .expect("state");
        let e = start(&sd, &st).expect_err("no reader on the fifo");
        assert!(e.to_string().contains("gone"), "{e}");
        // With a reader (the init's end), start writes G and records the start.
        let reader = nix::fcntl::open(&sd.fifo(), OFlag::O_RDWR, Mode::empty()).expect("open");
        let st: State = serde_json::from_value(serde_json::json!({
            "id": "c1", "status": "created", "pid": 1, "shim_pid": 0,
            "bundle": "/b", "exit_code": null, "created": "2000-01-01T00:00:00.000000000Z", "started": null,
            "finished": null
        }))
        .expect("state");
        sd.write(&st).expect("write state");
        assert_eq!(sd.current().expect("state").status, Status::Created);
        start(&sd, &st).expect("start");
        let mut b = [0u8; 1];
        nix::unistd::read(reader.as_fd(), &mut b).expect("read");
        assert_eq!(&b, b"G");
        // Released: the fifo is gone, and that is what says the container runs, since then.
        assert!(!sd.fifo().exists());
        let now = sd.current().expect("state");
        assert_eq!(now.status, Status::Running);
        assert!(
            now.started.as_ref().is_some_and(|t| *t > now.created),
            "{now:?}"
        );
    }
}
