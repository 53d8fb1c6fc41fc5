//! Extracting a tar stream into a directory without ever writing outside it.
//!
//! Every entry path is made relative and may not contain `..`; every directory on the way to
//! an entry must be a real directory inside the target (never a symlink, which could lead
//! outside); hard links must point at a file already extracted into the same target.
//! Symlinks themselves are created as they are (their targets are only ever resolved inside
//! a container's root). With `whiteouts`, the layer conventions of OCI images become
//! overlayfs ones: `.wh.X` becomes a character device 0/0 named `X`, and `.wh..wh..opq`
//! sets `trusted.overlay.opaque=y` on its directory.

use anyhow::{bail, Context, Result};
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Prefix of whiteout files in image layers.
const WH_PREFIX: &str = ".wh.";
/// The opaque-directory marker of image layers.
const WH_OPAQUE: &str = ".wh..wh..opq";

/// How to treat the entries.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Translate `.wh.` files into overlayfs whiteouts (image layers).
    pub whiteouts: bool,
    /// Apply owners, device nodes and extended attributes (needs root; image layers).
    pub privileged: bool,
}

/// Counts of what an extraction did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Entries written (files, dirs, links, devices).
    pub entries: usize,
    /// Whiteouts (`.wh.X`) turned into overlay whiteouts.
    pub whiteouts: usize,
    /// Directories marked opaque.
    pub opaque: usize,
}

/// Makes a tar entry path relative and checks it stays inside: `None` for the root itself.
pub fn clean_path(raw: &Path) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => bail!(
                "entry {:?} escapes the archive root (it contains '..'); the archive is unsafe \
                 and was refused",
                raw.display().to_string()
            ),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Extracts the tar stream `r` into `dest` (an existing, private directory).
pub fn extract(r: impl Read, dest: &Path, opts: Options) -> Result<Stats> {
    let mut ar = tar::Archive::new(r);
    let mut stats = Stats::default();
    let mut dir_modes: Vec<(PathBuf, u32)> = Vec::new();
    let entries = ar.entries().context("reading the tar stream")?;
    for entry in entries {
        let mut entry = entry.context("reading a tar entry (is the archive truncated?)")?;
        let raw = entry
            .path()
            .context("reading a tar entry name")?
            .into_owned();
        let Some(rel) = clean_path(&raw)? else {
            continue; // "./" itself
        };
        let ctx = || format!("extracting {:?}", rel.display().to_string());
        extract_entry(&mut entry, dest, &rel, opts, &mut stats, &mut dir_modes)
            .with_context(ctx)?;
    }
    // Directory modes last, so a read-only directory does not stop its own entries.
    for (p, mode) in dir_modes.iter().rev() {
        fs::set_permissions(p, fs::Permissions::from_mode(*mode))
            .with_context(|| format!("setting the mode of {}", p.display()))?;
    }
    // Drain the end-of-archive blocks, so that callers hashing the stream see all of it.
    io::copy(&mut ar.into_inner(), &mut io::sink()).context("reading the end of the tar stream")?;
    Ok(stats)
}

fn extract_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    dest: &Path,
    rel: &Path,
    opts: Options,
    stats: &mut Stats,
    dir_modes: &mut Vec<(PathBuf, u32)>,
) -> Result<()> {
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    let parent = ensure_dirs(dest, parent_rel)?;
    let name = rel.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    if opts.whiteouts && name.starts_with(WH_PREFIX) {
        if name == WH_OPAQUE {
            set_xattr(&parent, "trusted.overlay.opaque", b"y").with_context(|| {
                format!(
                    "marking {} opaque (trusted.overlay.opaque needs root)",
                    parent.display()
                )
            })?;
            stats.opaque += 1;
        } else if !name.starts_with(".wh..wh.") {
            let target = parent.join(&name[WH_PREFIX.len()..]);
            remove_existing(&target)?;
            mknod(&target, libc::S_IFCHR, 0, 0).with_context(|| {
                format!(
                    "creating the overlay whiteout {} (a character device 0/0; needs root)",
                    target.display()
                )
            })?;
            stats.whiteouts += 1;
        }
        return Ok(());
    }

    let path = parent.join(&name);
    let header = entry.header();
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let kind = header.entry_type();
    let (uid, gid) = (header.uid().unwrap_or(0), header.gid().unwrap_or(0));
    match kind {
        tar::EntryType::Directory => {
            match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_existing(&path)?;
                    fs::create_dir(&path)?;
                }
                Err(_) => fs::create_dir(&path)?,
            }
            dir_modes.push((path.clone(), mode));
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            remove_existing(&path)?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            let want = entry.size();
            let got =
                io::copy(entry, &mut f).context("copying the file's data (truncated archive?)")?;
            if got != want {
                bail!("the archive is truncated: the entry has {got} of its {want} bytes");
            }
        }
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()?
                .context("symlink without a target")?
                .into_owned();
            remove_existing(&path)?;
            std::os::unix::fs::symlink(&target, &path)?;
        }
        tar::EntryType::Link => {
            let target = entry
                .link_name()?
                .context("hard link without a target")?
                .into_owned();
            let Some(trel) = clean_path(&target)? else {
                bail!("hard link to the archive root");
            };
            let tparent = inside_dirs(dest, trel.parent().unwrap_or(Path::new("")))?;
            let src = tparent.join(trel.file_name().unwrap_or_default());
            if fs::symlink_metadata(&src).is_err() {
                bail!(
                    "hard link to {:?}, which is not in this archive before it; refused",
                    target.display().to_string()
                );
            }
            remove_existing(&path)?;
            fs::hard_link(&src, &path)?;
            stats.entries += 1;
            return Ok(()); // a hard link shares the target's owner and mode
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            if !opts.privileged && kind != tar::EntryType::Fifo {
                return Ok(()); // device nodes only where we can make them
            }
            let (fmt, maj, min) = match kind {
                tar::EntryType::Char => (
                    libc::S_IFCHR,
                    dev(header.device_major()),
                    dev(header.device_minor()),
                ),
                tar::EntryType::Block => (
                    libc::S_IFBLK,
                    dev(header.device_major()),
                    dev(header.device_minor()),
                ),
                _ => (libc::S_IFIFO, 0, 0),
            };
            remove_existing(&path)?;
            mknod(&path, fmt | mode, maj, min)?;
        }
        // PAX and GNU long-name headers are consumed by the tar crate; anything else
        // (sparse files, volume labels) is not part of an image.
        _ => return Ok(()),
    }
    if opts.privileged {
        lchown(&path, uid, gid)?;
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts.flatten() {
                let (Ok(k), v) = (ext.key(), ext.value_bytes()) else {
                    continue;
                };
                if let Some(attr) = k.strip_prefix("SCHILY.xattr.") {
                    // Best effort: some file systems refuse some namespaces.
                    let _ = set_xattr(&path, attr, v);
                }
            }
        }
    }
    if kind != tar::EntryType::Symlink && kind != tar::EntryType::Directory {
        // After chown, which clears set-id bits.
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
    }
    stats.entries += 1;
    Ok(())
}

fn dev(v: io::Result<Option<u32>>) -> u32 {
    v.ok().flatten().unwrap_or(0)
}

/// `dest/rel`, with every directory on the way created when missing; fails when one of them
/// exists as anything but a real directory (a symlink could lead outside `dest`).
fn ensure_dirs(dest: &Path, rel: &Path) -> Result<PathBuf> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => bail!(
                "{} is not a directory (a symlink or a file) in the archive; refusing to write \
                 through it",
                c.as_os_str().to_string_lossy()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&cur).with_context(|| format!("creating {}", cur.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("inspecting {}", cur.display())),
        }
    }
    Ok(cur)
}

/// Like [`ensure_dirs`] but creates nothing (for hard-link targets).
fn inside_dirs(dest: &Path, rel: &Path) -> Result<PathBuf> {
    let mut cur = dest.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            _ => bail!(
                "hard link target passes through {}, which is not a directory of the archive; \
                 refused",
                c.as_os_str().to_string_lossy()
            ),
        }
    }
    Ok(cur)
}

/// Removes whatever is at `p` (a directory with its contents); nothing if absent.
fn remove_existing(p: &Path) -> Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(p).with_context(|| format!("replacing {}", p.display()))
        }
        Ok(_) => fs::remove_file(p).with_context(|| format!("replacing {}", p.display())),
        Err(_) => Ok(()),
    }
}

fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).with_context(|| format!("{} has a NUL", p.display()))
}

fn mknod(p: &Path, mode: u32, major: u32, minor: u32) -> Result<()> {
    let c = cpath(p)?;
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    if r < 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

fn lchown(p: &Path, uid: u64, gid: u64) -> Result<()> {
    let c = cpath(p)?;
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::lchown(c.as_ptr(), uid as libc::uid_t, gid as libc::gid_t) };
    if r < 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("chown {uid}:{gid} {}", p.display()));
    }
    Ok(())
}

fn set_xattr(p: &Path, name: &str, value: &[u8]) -> Result<()> {
    let c = cpath(p)?;
    let n = CString::new(name).context("xattr name has a NUL")?;
    // SAFETY: valid NUL-terminated path and name; value pointer and length match.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let c = |s: &str| clean_path(Path::new(s));
        assert_eq!(c("./a/b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(c("/etc/x").unwrap(), Some(PathBuf::from("etc/x")));
        assert_eq!(c("./").unwrap(), None);
        assert!(c("../evil").is_err());
        assert!(c("a/../../b").is_err());
    }

    fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        b.into_inner().unwrap()
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, data).unwrap();
    }

    fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_entry_type(kind);
        b.append_link(&mut h, path, target).unwrap();
    }

    const PLAIN: Options = Options {
        whiteouts: false,
        privileged: false,
    };

    #[test]
    fn symlinked_dirs_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("d");
        fs::create_dir(&dest).unwrap();
        let data = tar_of(|b| {
            link(b, tar::EntryType::Symlink, "esc", "/tmp");
            file(b, "esc/owned", b"x");
        });
        let e = extract(&data[..], &dest, PLAIN).unwrap_err();
        assert!(format!("{e:#}").contains("not a directory"), "{e:#}");
    }

    #[test]
    fn hard_links_stay_inside() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("d");
        fs::create_dir(&dest).unwrap();
        let ok = tar_of(|b| {
            file(b, "a", b"hello");
            link(b, tar::EntryType::Link, "b", "a");
            link(b, tar::EntryType::Symlink, "s", "/etc/passwd");
        });
        extract(&ok[..], &dest, PLAIN).unwrap();
        assert_eq!(fs::read(dest.join("b")).unwrap(), b"hello");
        assert_eq!(
            fs::read_link(dest.join("s")).unwrap(),
            Path::new("/etc/passwd")
        );
        let bad = tar_of(|b| link(b, tar::EntryType::Link, "c", "etc/passwd"));
        let e = extract(&bad[..], &dest, PLAIN).unwrap_err();
        assert!(format!("{e:#}").contains("refused"), "{e:#}");
    }
}
