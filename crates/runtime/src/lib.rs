//! weft-runtime: the container runtime. An OCI bundle in, a running container out.
//!
//! Shaped on runc's split: [`create`] spawns a per-container shim (`weft shim ...`, see
//! [`shim_main`]) that creates the container's cgroup (v1 or v2, with its memory, CPU and
//! pids limits), clones the container's init into new namespaces (mount, uts, ipc, pid,
//! network unless joining one, user with `userns`), which joins the cgroup itself, mounts the
//! overlayfs rootfs and /proc, /sys, /dev inside the container's own mount namespace,
//! pivots into it and waits; [`start`] lets it drop to the container's user,
//! capabilities, no_new_privs and seccomp filter and exec the process. The shim reaps the
//! container, restarts it as its restart policy says, and records its exit (and OOM
//! kill) in `<root>/<id>/state.json`; [`delete`] removes the cgroup. The runtime knows
//! nothing of networks: an engine wires the container's network namespace between
//! `create` and `start`.
//!
//! Without a shim ([`ContainerIo::Inherit`], what `weft-runc` uses, as runc does), `create`
//! clones the init itself: it keeps the caller's stdio (or gets a pty whose master goes to
//! a console socket), waits for `start` on a fifo, and is reaped by the caller's subreaper.
//!
//! ```no_run
//! use std::path::Path;
//! use weft_runtime::{Bundle, RunSpec};
//! # fn main() -> anyhow::Result<()> {
//! let spec = RunSpec { args: vec!["sleep".into(), "60".into()],
//!     rootfs_lower: vec!["/var/lib/weft/layers/base".into()], ..RunSpec::default() };
//! let bundle = Bundle::write(Path::new("/var/lib/weft/bundles/c1"), &spec)?;
//! let root = Path::new("/run/weft/runtime");
//! let st = weft_runtime::create(root, "c1", &bundle.dir)?;   // status: created, pid known
//! // ... wire /proc/<st.pid>/ns/net here ...
//! weft_runtime::start(root, "c1")?;
//! weft_runtime::stop(root, "c1", std::time::Duration::from_secs(10))?;
//! weft_runtime::delete(root, "c1", false)?;
//! # Ok(()) }
//! ```

mod bundle;
mod cgroups;
mod channel;
mod config;
mod direct;
mod error;
mod exec;
mod mounts;
mod observe;
mod ops;
mod process;
mod procfs;
mod program;
pub mod runc;
mod security;
mod shim;
mod sock;
mod state;
mod tty;
mod wake;

pub use bundle::{
    build_spec, Bundle, NsMode, RestartPolicy, RunSpec, ANNOTATION_CGROUP_PARENT,
    ANNOTATION_OVERLAY_LOWER, ANNOTATION_RESTART, DEFAULT_CGROUP_PARENT, DEFAULT_PATH,
    USERNS_HOST_ID, USERNS_SIZE,
};
pub use cgroups::Stats;
pub use error::{Error, Result};
pub use exec::{exec, exec_spawn, exec_with, exec_with_options, ExecIo, ExecOptions};
pub use observe::{attach, stats};
pub use ops::{
    create, create_with, delete, kill, list, logs, start, state, stop, ContainerIo, CreateOptions,
};
pub use program::reexec_read_only;
pub use shim::shim_main;
pub use state::{State, Status};

/// Docker's default capability set (names without `CAP_`), which containers get unless
/// privileged or changed with `cap_add`/`cap_drop`.
pub fn default_capabilities() -> &'static [&'static str] {
    security::caps::DOCKER_DEFAULT
}

/// Formats a time as the runtime's states do: RFC 3339 in UTC with nanoseconds.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    procfs::rfc3339(t)
}
