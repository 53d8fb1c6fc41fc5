//! Errors of the runtime operations.

use std::path::PathBuf;

use crate::state::Status;

/// What a runtime operation can fail with. Every message names the object and, where it
/// helps, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No state directory for this id under the runtime root.
    #[error("container {id:?} does not exist under {}; list containers to check the id", root.display())]
    NotFound {
        /// Container id.
        id: String,
        /// Runtime state root.
        root: PathBuf,
    },
    /// A container with this id already exists.
    #[error("container {id:?} already exists under {}; delete it first or choose another id", root.display())]
    AlreadyExists {
        /// Container id.
        id: String,
        /// Runtime state root.
        root: PathBuf,
    },
    /// The id cannot name a container.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The rejected id.
        id: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The operation does not apply to a container in this status.
    #[error("cannot {op} container {id:?}: it is {status}{hint}")]
    WrongStatus {
        /// Container id.
        id: String,
        /// The operation that was asked for.
        op: &'static str,
        /// The container's current status.
        status: Status,
        /// Extra advice (starts with "; " when not empty).
        hint: &'static str,
    },
    /// The bundle (config.json) cannot be used.
    #[error("bundle {}: {msg}", path.display())]
    Bundle {
        /// Bundle directory.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// The container could not be set up, started or reached; the message comes from the
    /// shim or the container's init (e.g. `exec "foo": No such file or directory`).
    #[error("container {id:?}: {msg}")]
    Container {
        /// Container id.
        id: String,
        /// What failed.
        msg: String,
    },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, on which object.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result of the runtime operations.
pub type Result<T> = std::result::Result<T, Error>;

/// Builds a closure turning an `io::Error` (or an errno) into [`Error::Io`] with context.
pub(crate) fn io_ctx<E: Into<std::io::Error>>(
    context: impl Into<String>,
) -> impl FnOnce(E) -> Error {
    let context = context.into();
    move |e| Error::Io {
        context,
        source: e.into(),
    }
}
