//! Looking into a running container: resource usage and its terminal.

use std::path::Path;
use std::time::Duration;

use crate::cgroups::{Cgroup, Stats};
use crate::error::{io_ctx, Error, Result};
use crate::ops::state;
use crate::sock;
use crate::state::{StateDir, Status};

/// Resource usage of container `id` (like `docker stats --no-stream`): CPU time, memory
/// in use and its limit, number of tasks. Zero for a container without a cgroup.
pub fn stats(root: &Path, id: &str) -> Result<Stats> {
    let st = state(root, id)?;
    let Some(path) = st.cgroup else {
        return Ok(Stats::default());
    };
    let cg = Cgroup::open(&path).map_err(|msg| Error::Container {
        id: id.to_string(),
        msg,
    })?;
    Ok(cg.stats())
}

/// Attaches to the terminal of a running container created with `tty`: returns a stream
/// that carries the terminal's output from now on, and whose writes reach its input.
/// Several clients may attach; the output still goes to the log.
pub fn attach(root: &Path, id: &str) -> Result<std::os::unix::net::UnixStream> {
    let st = state(root, id)?;
    if st.status == Status::Stopped {
        return Err(Error::WrongStatus {
            id: id.to_string(),
            op: "attach to",
            status: st.status,
            hint: "",
        });
    }
    let sd = StateDir::new(root, id);
    let mut s = sock::connect(&sd.sock()).map_err(io_ctx(format!(
        "reach the shim of container {id} at {}",
        sd.sock().display()
    )))?;
    let reply = sock::exchange(&mut s, "attach", Duration::from_secs(10))
        .map_err(io_ctx(format!("attach to container {id}")))?;
    match reply.strip_prefix("error ") {
        None if reply == "ok" => {
            let _ = s.set_read_timeout(None);
            let _ = s.set_write_timeout(None);
            Ok(s)
        }
        None => Err(Error::Container {
            id: id.to_string(),
            msg: format!("unexpected reply from the shim: {reply:?}"),
        }),
        Some(msg) => Err(Error::Container {
            id: id.to_string(),
            msg: msg.to_string(),
        }),
    }
}
