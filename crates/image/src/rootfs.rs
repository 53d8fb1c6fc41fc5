//! Writing a root filesystem that mirrors host paths: a host file lands at the same path in
//! the image, and the symbolic links met on the way (`/bin -> usr/bin`, `/bin/sh -> dash`,
//! `/lib64/ld-linux-x86-64.so.2 -> ...`) are recreated as links, so the image has the host's
//! layout and each file once.

use anyhow::{bail, Context, Result};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Symbolic links followed in one resolution before giving up (the kernel's limit).
const MAX_LINKS: u32 = 40;

/// A root filesystem being written.
pub struct Rootfs {
    root: PathBuf,
}

impl Rootfs {
    /// Writes into the existing directory `root`.
    pub fn new(root: &Path) -> Rootfs {
        Rootfs {
            root: root.to_path_buf(),
        }
    }

    /// Where an image path (absolute inside the image) lives on the host.
    pub fn real(&self, p: &Path) -> PathBuf {
        let rel: PathBuf = p
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        self.root.join(rel)
    }

    /// Makes the directory `p` exist in the image and returns its path there with every
    /// symbolic link resolved. A component missing from the image is created as on the host:
    /// a symbolic link if the host has one there (then followed), else a directory.
    pub fn mkdir_p(&self, p: &Path) -> Result<PathBuf> {
        let mut todo: VecDeque<OsString> = comps(p);
        let mut cur = PathBuf::from("/");
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&c);
            let img = self.real(&next);
            let target = match fs::symlink_metadata(&img) {
                Ok(m) if m.file_type().is_symlink() => Some(fs::read_link(&img)?),
                Ok(m) if m.is_dir() => None,
                Ok(_) => bail!(
                    "{} exists in the image as a file, but a directory is needed there",
                    next.display()
                ),
                Err(e) if e.kind() == ErrorKind::NotFound => match fs::symlink_metadata(&next) {
                    Ok(m) if m.file_type().is_symlink() => {
                        let t = fs::read_link(&next)
                            .with_context(|| format!("reading host link {}", next.display()))?;
                        make_link(&t, &img)?;
                        Some(t)
                    }
                    _ => {
                        make_dir(&img, 0o755)?;
                        None
                    }
                },
                Err(e) => return Err(e).with_context(|| format!("inspecting {}", img.display())),
            };
            match target {
                None => cur = next,
                Some(t) => {
                    links += 1;
                    if links > MAX_LINKS {
                        bail!(
                            "too many levels of symbolic links resolving {}",
                            p.display()
                        );
                    }
                    if t.is_absolute() {
                        cur = PathBuf::from("/");
                    }
                    for c in comps(&t).into_iter().rev() {
                        todo.push_front(c);
                    }
                }
            }
        }
        Ok(cur)
    }

    /// Copies the host file `host` to the same path in the image, recreating the symbolic
    /// links of its path and of the file itself; returns the image path of the copied file.
    pub fn install(&self, host: &Path) -> Result<PathBuf> {
        self.install_depth(host, 0)
    }

    fn install_depth(&self, host: &Path, depth: u32) -> Result<PathBuf> {
        if depth > MAX_LINKS {
            bail!("too many levels of symbolic links at {}", host.display());
        }
        let (Some(parent), Some(name)) = (host.parent(), host.file_name()) else {
            bail!("{} is not a file path", host.display());
        };
        let meta = fs::symlink_metadata(host)
            .with_context(|| format!("host file {} is missing", host.display()))?;
        let dir = self.mkdir_p(parent)?;
        let in_image = dir.join(name);
        let img = self.real(&in_image);
        if meta.file_type().is_symlink() {
            let t = fs::read_link(host)?;
            make_link(&t, &img)?;
            // A relative target is relative to the directory the link really is in.
            let next = if t.is_absolute() { t } else { dir.join(t) };
            self.install_depth(&normalize(&next), depth + 1)
        } else if meta.is_file() {
            if fs::symlink_metadata(&img).is_err() {
                copy_file(host, &img)?;
            }
            Ok(in_image)
        } else if meta.is_dir() {
            self.mkdir_p(host)
        } else {
            bail!(
                "{} is neither a file, a directory nor a symbolic link",
                host.display()
            )
        }
    }

    /// Copies the host file `src` to the image path `dst` (its directory is created).
    pub fn copy_as(&self, src: &Path, dst: &Path) -> Result<PathBuf> {
        let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
            bail!("{} is not a file path", dst.display());
        };
        let in_image = self.mkdir_p(parent)?.join(name);
        copy_file(src, &self.real(&in_image))?;
        Ok(in_image)
    }

    /// Writes a file with `content` and `mode` at the image path `dst`.
    pub fn write(&self, dst: &Path, content: &str, mode: u32) -> Result<()> {
        let (Some(parent), Some(name)) = (dst.parent(), dst.file_name()) else {
            bail!("{} is not a file path", dst.display());
        };
        let real = self.real(&self.mkdir_p(parent)?.join(name));
        fs::write(&real, content).with_context(|| format!("writing {}", real.display()))?;
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    /// Makes the image path `link` a symbolic link to `target` unless something is there.
    pub fn link(&self, target: &Path, link: &Path) -> Result<()> {
        let (Some(parent), Some(name)) = (link.parent(), link.file_name()) else {
            bail!("{} is not a file path", link.display());
        };
        let real = self.real(&self.mkdir_p(parent)?.join(name));
        make_link(target, &real)
    }

    /// Whether the image path `p` exists (without following a final symbolic link).
    pub fn exists(&self, p: &Path) -> bool {
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return true;
        };
        // Resolve the directory without creating anything.
        let Ok(dir) = self.resolve_existing(parent) else {
            return false;
        };
        fs::symlink_metadata(self.real(&dir.join(name))).is_ok()
    }

    /// Resolves an existing image directory path through the image's own links.
    fn resolve_existing(&self, p: &Path) -> Result<PathBuf> {
        let mut todo = comps(p);
        let mut cur = PathBuf::from("/");
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                cur.pop();
                continue;
            }
            let next = cur.join(&c);
            let m = fs::symlink_metadata(self.real(&next))?;
            if m.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    bail!("link loop");
                }
                let t = fs::read_link(self.real(&next))?;
                if t.is_absolute() {
                    cur = PathBuf::from("/");
                }
                for c in comps(&t).into_iter().rev() {
                    todo.push_front(c);
                }
            } else {
                cur = next;
            }
        }
        Ok(cur)
    }

    /// Makes the directory `p` with exactly `mode` (e.g. 0o1777 for /tmp).
    pub fn dir(&self, p: &Path, mode: u32) -> Result<()> {
        let real = self.real(&self.mkdir_p(p)?);
        fs::set_permissions(&real, fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", real.display()))
    }
}

/// The normal components of a path, with `..` kept (resolved against links by the caller).
fn comps(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// Removes `.` and `..` lexically (used for host paths built from link targets).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    out
}

fn make_dir(p: &Path, mode: u32) -> Result<()> {
    match fs::create_dir(p) {
        Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", p.display())),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating directory {}", p.display())),
    }
}

fn make_link(target: &Path, at: &Path) -> Result<()> {
    match symlink(target, at) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e)
            .with_context(|| format!("creating link {} -> {}", at.display(), target.display())),
    }
}

fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    fs::copy(src, dst)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_links_and_files() {
        let t = tempfile::tempdir().unwrap();
        let r = Rootfs::new(t.path());
        let got = r.install(Path::new("/bin/sh")).unwrap();
        // The file that was copied is a real file at a link-free path.
        let m = fs::symlink_metadata(r.real(&got)).unwrap();
        assert!(m.is_file(), "{got:?}");
        assert_eq!(
            fs::canonicalize("/bin/sh").unwrap().file_name(),
            got.file_name()
        );
        assert!(r.exists(Path::new("/bin/sh")));
        assert!(!r.exists(Path::new("/bin/nope")));
        // Host links of the path itself are links in the image too.
        for p in ["/bin", "/lib64", "/lib"] {
            let host = fs::symlink_metadata(p).map(|m| m.file_type().is_symlink());
            if host.unwrap_or(false) && r.exists(Path::new(p)) {
                assert!(fs::symlink_metadata(r.real(Path::new(p)))
                    .unwrap()
                    .file_type()
                    .is_symlink());
            }
        }
        r.dir(Path::new("/tmp"), 0o1777).unwrap();
        let mode = fs::metadata(t.path().join("tmp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1777);
        r.write(Path::new("/etc/hostname"), "x\n", 0o644).unwrap();
        assert_eq!(
            fs::read_to_string(t.path().join("etc/hostname")).unwrap(),
            "x\n"
        );
    }

    #[test]
    fn image_links_are_followed() {
        let t = tempfile::tempdir().unwrap();
        let r = Rootfs::new(t.path());
        fs::create_dir_all(t.path().join("usr/bin")).unwrap();
        symlink("usr/bin", t.path().join("weird")).unwrap();
        let d = r.mkdir_p(Path::new("/weird/sub")).unwrap();
        assert_eq!(d, PathBuf::from("/usr/bin/sub"));
        fs::write(t.path().join("f"), "").unwrap();
        assert!(r.mkdir_p(Path::new("/f/x")).is_err());
        symlink("loop", t.path().join("loop")).unwrap();
        assert!(r.mkdir_p(Path::new("/loop/x")).is_err());
    }
}
