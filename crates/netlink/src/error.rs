//! The error type of this crate: what failed, on which object, and why (errno).

use std::fmt;
use std::io;

/// Result alias used by every fallible function of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed netlink, namespace or sysctl operation.
///
/// It carries the operation (`"create veth"`), the object it was applied to
/// (`"cali1234 (peer eth0)"`), the OS error (with its errno when there is one)
/// and, when the kernel sent an extended ACK, the kernel's own explanation.
///
/// Display reads like
/// `create veth cali1234 (peer eth0): File exists (os error 17)`.
#[derive(Debug)]
pub struct Error {
    op: String,
    object: String,
    source: io::Error,
    detail: Option<String>,
}

impl Error {
    /// Builds an error from an operation, an object and the underlying I/O error.
    pub fn new(op: impl Into<String>, object: impl Into<String>, source: io::Error) -> Error {
        Error {
            op: op.into(),
            object: object.into(),
            source,
            detail: None,
        }
    }

    /// Builds an error from an errno value (positive, e.g. `libc::EEXIST`).
    pub fn from_errno(op: impl Into<String>, object: impl Into<String>, errno: i32) -> Error {
        Error::new(op, object, io::Error::from_raw_os_error(errno))
    }

    /// Builds an error that has no errno (bad input, undecodable kernel reply).
    pub fn other(
        op: impl Into<String>,
        object: impl Into<String>,
        msg: impl Into<String>,
    ) -> Error {
        Error::new(op, object, io::Error::other(msg.into()))
    }

    /// Adds the kernel's extended-ACK message (or any other hint) to the error.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        let d = detail.into();
        self.detail = if d.is_empty() { None } else { Some(d) };
        self
    }

    /// The operation that failed, e.g. `"create veth"`.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The object the operation was applied to, e.g. `"cali1234 (peer eth0)"`.
    pub fn object(&self) -> &str {
        &self.object
    }

    /// The kernel's extended-ACK message, when it sent one.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The OS error number, when the failure came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        self.source.raw_os_error()
    }

    /// The underlying I/O error.
    pub fn io(&self) -> &io::Error {
        &self.source
    }

    /// True when the object already exists (`EEXIST`).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// True when the object (link, route, address, namespace, file) does not exist
    /// (`ENOENT`, `ESRCH`, `ENODEV` or `EADDRNOTAVAIL`).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::ENODEV) | Some(libc::EADDRNOTAVAIL)
        )
    }

    /// True when the caller lacks the privilege (`EPERM`, `EACCES`).
    pub fn is_permission(&self) -> bool {
        matches!(self.errno(), Some(libc::EPERM) | Some(libc::EACCES))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object.is_empty() {
            write!(f, "{}: {}", self.op, self.source)?;
        } else {
            write!(f, "{} {}: {}", self.op, self.object, self.source)?;
        }
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        if self.is_permission() {
            write!(
                f,
                "; run as root (CAP_NET_ADMIN and CAP_SYS_ADMIN are needed)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Extension to attach an operation and object to `io::Result`/`nix::Result` values.
pub(crate) trait Context<T> {
    /// Wraps the error with `op` and `object`.
    fn ctx(self, op: &str, object: &dyn fmt::Display) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn ctx(self, op: &str, object: &dyn fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(op, object.to_string(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, op: &str, object: &dyn fmt::Display) -> Result<T> {
        self.map_err(|e| Error::from_errno(op, object.to_string(), e as i32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_like_the_design() {
        let e = Error::from_errno("create veth", "cali1234 (peer eth0)", libc::EEXIST);
        assert_eq!(
            e.to_string(),
            "create veth cali1234 (peer eth0): File exists (os error 17)"
        );
        assert!(e.is_exists());
        assert!(!e.is_not_found());
        assert_eq!(e.errno(), Some(17));
    }

    #[test]
    fn detail_and_permission_hint() {
        let e = Error::from_errno("add route", "10.0.0.0/24", libc::EINVAL)
            .with_detail("Nexthop has invalid gateway");
        assert_eq!(
            e.to_string(),
            "add route 10.0.0.0/24: Invalid argument (os error 22) (Nexthop has invalid gateway)"
        );
        let p = Error::from_errno("create netns", "x", libc::EPERM);
        assert!(p.to_string().contains("run as root"));
        assert!(p.is_permission());
    }

    #[test]
    fn other_has_no_errno() {
        let e = Error::other("parse", "reply", "truncated");
        assert_eq!(e.errno(), None);
        assert_eq!(e.to_string(), "parse reply: truncated");
    }
}
