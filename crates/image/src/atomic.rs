//! Building an image directory out of sight and putting it in place atomically, and the file
//! locks that keep concurrent builders of one image from duplicating work.

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Prefix of directories being built.
pub const TMP_PREFIX: &str = ".tmp-";
/// Prefix of directories being deleted.
pub const TRASH_PREFIX: &str = ".trash-";

/// A fresh hidden directory name under `images` for work on `name`: `.tmp-<pid>-<n>-<name>`.
pub fn scratch_path(images: &Path, prefix: &str, name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    images.join(format!("{prefix}{}-{n}-{name}", std::process::id()))
}

/// An exclusive `flock` on a file, released on drop.
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for the exclusive lock on `path` (created if missing).
    pub fn exclusive(path: &Path) -> Result<FileLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(FileLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .with_context(|| format!("path {} contains a NUL byte", p.display()))
}

/// renameat2(2) with `flags`.
fn rename2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let (Ok(f), Ok(t)) = (cpath(from), cpath(to)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: two valid NUL-terminated paths relative to the current directory.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// What [`install`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The new directory is now the image.
    New,
    /// The new directory replaced an older one.
    Replaced,
    /// An equivalent image was already in place; the new directory was discarded.
    KeptExisting,
}

/// Moves the complete directory `tmp` to `dst` atomically. When `dst` exists, `keep_existing`
/// decides: true discards `tmp` (someone else built the same thing first), false swaps the two
/// atomically (RENAME_EXCHANGE) and deletes the old one. Readers see either the old or the new
/// complete directory, never a partial one.
pub fn install(tmp: &Path, dst: &Path, keep_existing: impl Fn(&Path) -> bool) -> Result<Installed> {
    loop {
        match fs::rename(tmp, dst) {
            Ok(()) => return Ok(Installed::New),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("moving {} to {}", tmp.display(), dst.display()))
            }
        }
        if keep_existing(dst) {
            remove_tree(tmp);
            return Ok(Installed::KeptExisting);
        }
        match rename2(tmp, dst, libc::RENAME_EXCHANGE) {
            Ok(()) => {
                // `tmp` now holds the old image.
                remove_tree(tmp);
                return Ok(Installed::Replaced);
            }
            // Removed meanwhile: try the plain rename again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                remove_tree(tmp);
                return Err(e).with_context(|| {
                    format!(
                        "replacing {} atomically (renameat2 RENAME_EXCHANGE; the filesystem \
                         must support it)",
                        dst.display()
                    )
                });
            }
        }
    }
}

/// Renames `dir` out of the way, then deletes it. Errors if it does not exist.
pub fn remove_dir_atomically(images: &Path, dir: &Path, name: &str) -> Result<()> {
    let trash = scratch_path(images, TRASH_PREFIX, name);
    match fs::rename(dir, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            bail!("image {name} does not exist (see `weft image ls`)")
        }
        Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
    }
    fs::remove_dir_all(&trash).with_context(|| format!("deleting {}", trash.display()))
}

/// Best-effort recursive delete.
pub fn remove_tree(p: &Path) {
    let _ = fs::remove_dir_all(p);
}

/// Deletes scratch directories left by builders that died: the pid in the name is gone and the
/// directory is older than ten minutes.
pub fn clean_stale(images: &Path) {
    let Ok(rd) = fs::read_dir(images) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name
            .strip_prefix(TMP_PREFIX)
            .or_else(|| name.strip_prefix(TRASH_PREFIX))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > Duration::from_secs(600));
        if !alive && old {
            remove_tree(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_new_keep_and_replace() {
        let t = tempfile::tempdir().unwrap();
        let dst = t.path().join("img");
        let mk = |content: &str| {
            let d = scratch_path(t.path(), TMP_PREFIX, "img");
            fs::create_dir(&d).unwrap();
            fs::write(d.join("f"), content).unwrap();
            d
        };
        assert_eq!(install(&mk("1"), &dst, |_| true).unwrap(), Installed::New);
        let tmp = mk("2");
        assert_eq!(
            install(&tmp, &dst, |_| true).unwrap(),
            Installed::KeptExisting
        );
        assert!(!tmp.exists());
        assert_eq!(fs::read_to_string(dst.join("f")).unwrap(), "1");
        let tmp = mk("3");
        assert_eq!(install(&tmp, &dst, |_| false).unwrap(), Installed::Replaced);
        assert!(!tmp.exists());
        assert_eq!(fs::read_to_string(dst.join("f")).unwrap(), "3");
        remove_dir_atomically(t.path(), &dst, "img").unwrap();
        assert!(!dst.exists());
        assert!(remove_dir_atomically(t.path(), &dst, "img").is_err());
        assert_eq!(fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
