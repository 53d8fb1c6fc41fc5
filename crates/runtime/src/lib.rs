//! weft-runtime: the container runtime. An OCI bundle in, a running container out.
//!
//! Shaped on runc's split: [`create`] spawns a per-container shim (`weft shim ...`, see
//! [`shim_main`]) that clones the container's init into new namespaces (mount, uts, ipc,
//! pid, and network unless joining one), mounts the overlayfs rootfs and /proc, /sys, /dev
//! inside the container's own mount namespace, pivots into it and waits; [`start`] lets it
//! exec the process. The shim reaps the container and records its exit in
//! `<root>/<id>/state.json`. The runtime knows nothing of networks: an engine wires the
//! container's network namespace between `create` and `start`.
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
mod channel;
mod config;
mod error;
mod exec;
mod mounts;
mod ops;
mod process;
mod procfs;
mod shim;
mod sock;
mod state;

pub use bundle::{build_spec, Bundle, NsMode, RunSpec, ANNOTATION_OVERLAY_LOWER, DEFAULT_PATH};
pub use error::{Error, Result};
pub use exec::{exec, exec_with, ExecIo};
pub use ops::{create, create_with, delete, kill, list, logs, start, state, stop, CreateOptions};
pub use shim::shim_main;
pub use state::{State, Status};
