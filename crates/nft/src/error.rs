//! The error type of this crate: what failed, on which object, and what to do.

use std::io;

/// Result alias used by every fallible function of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure to compile, program or read an nftables table.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model cannot be expressed in nf_tables (wrong value for a field, a
    /// name too long, an empty anonymous set, ...). Nothing was sent.
    #[error("invalid nftables model: {object}: {reason}")]
    Invalid {
        /// The object at fault, e.g. `rule #2 of chain "fwd"`.
        object: String,
        /// What is wrong with it and how to fix it.
        reason: String,
    },

    /// The kernel refused a message of a transaction (or a request). A refused
    /// transaction is rolled back whole: the previous table is left intact.
    #[error("{op} {object}: {source}{}{}", detail_text(.detail), hint_text(.hint))]
    Kernel {
        /// The operation, e.g. `add rule`.
        op: String,
        /// The object the kernel refused, e.g.
        /// `#3 of chain "fwd" in table inet weft (\`jump missing\`)`.
        object: String,
        /// The errno the kernel returned.
        #[source]
        source: io::Error,
        /// The kernel's extended-ACK message and the failing expression, if known.
        detail: Option<String>,
        /// What to check or do about it.
        hint: Option<String>,
    },

    /// A socket or process operation failed (not a refusal of the content).
    #[error("{op} ({object}): {source}")]
    Io {
        /// The operation, e.g. `send nf_tables batch`.
        op: String,
        /// What it was applied to, e.g. `table inet weft`.
        object: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Entering the network namespace failed.
    #[error("nftables in a network namespace: {0}")]
    Netns(#[from] weft_netlink::Error),

    /// The `nft` program (the secondary [`crate::NftCli`] backend) failed.
    #[error("nft program: {op}: {message}")]
    Cli {
        /// What was run, e.g. `nft -f - (table inet weft)`.
        op: String,
        /// Its standard error or the reason it could not run.
        message: String,
    },
}

fn detail_text(d: &Option<String>) -> String {
    d.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
}

fn hint_text(h: &Option<String>) -> String {
    h.as_ref().map(|h| format!("; {h}")).unwrap_or_default()
}

impl Error {
    /// The errno of a kernel or I/O error.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the kernel said the object does not exist (`ENOENT`).
    pub fn is_not_found(&self) -> bool {
        self.errno() == Some(libc::ENOENT)
    }

    pub(crate) fn invalid(object: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            object: object.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: impl Into<String>, object: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            op: op.into(),
            object: object.into(),
            source,
        }
    }
}
