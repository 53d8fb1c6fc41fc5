//! weft-image: the image store. An image is a directory `<root>/images/<name>/` holding
//! `rootfs/` and `image.json`; it is built out of sight in a hidden scratch directory and moved
//! into place with one rename, so a reader never sees a half-built image. Images are built from
//! host binaries and the shared libraries they need (see [`elf_dependencies`]); the `toolbox`
//! image (a shell, a few host tools and weft's own applets) is built on first use.

mod atomic;
mod build;
pub mod elf;
mod import;
pub mod rootfs;
mod toolbox;

pub use elf::elf_dependencies;
pub use import::ArchiveFormat;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The name of the always-available image.
pub const TOOLBOX: &str = "toolbox";
/// The PATH of images built here.
pub const DEFAULT_PATH: &str = "PATH=/bin:/sbin:/usr/bin:/usr/sbin";
const META_FILE: &str = "image.json";
const ROOTFS_DIR: &str = "rootfs";

/// How a container of the image runs by default (the OCI image config subset weft uses).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// `KEY=VALUE` environment entries.
    pub env: Vec<String>,
    /// Default command (arguments to the entrypoint, or the program if there is none).
    pub cmd: Vec<String>,
    /// Program and arguments that always come first.
    pub entrypoint: Vec<String>,
    /// Working directory (None means `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// User to run as (`uid[:gid]` or a name from the image's /etc/passwd); None means root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The image name.
    pub name: String,
    /// Absolute path of its root filesystem (read-only use: containers put an overlay on it).
    pub rootfs: PathBuf,
    /// Build time, seconds since the Unix epoch.
    pub created: u64,
    /// Bytes of regular files in the root filesystem.
    pub size: u64,
    /// Defaults for containers.
    pub config: ImageConfig,
    /// Where it came from, for people (`host: /bin/cat`, `toolbox: ...`).
    pub source: String,
    /// The read-only layers of its root filesystem, topmost FIRST (overlayfs `lowerdir`
    /// order): `[rootfs]` for images built here, the extracted layers (stored once by digest
    /// under `<root>/layers/sha256/`) for imported ones.
    #[serde(default)]
    pub layers: Vec<PathBuf>,
}

/// Checks an image name: `[a-z0-9][a-z0-9_.-]*`, at most 128 characters.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if !ok_first || !ok_rest || name.len() > 128 {
        bail!(
            "invalid image name {name:?}: use lowercase letters, digits, '_', '.' and '-', \
             starting with a letter or digit, at most 128 characters"
        );
    }
    Ok(())
}

/// The image store under a root directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

impl ImageStore {
    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let s = ImageStore {
            root: root.to_path_buf(),
        };
        std::fs::create_dir_all(s.images_dir()).with_context(|| {
            format!(
                "creating the image store {}; check that the directory is writable",
                s.images_dir().display()
            )
        })?;
        Ok(s)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    fn image_dir(&self, name: &str) -> PathBuf {
        self.images_dir().join(name)
    }

    fn lock_path(&self, name: &str) -> PathBuf {
        self.images_dir().join(format!(".{name}.lock"))
    }

    /// The image `name`, or None if there is none.
    pub fn get(&self, name: &str) -> Result<Option<Image>> {
        validate_name(name)?;
        read_image(&self.image_dir(name), name)
    }

    /// All images, sorted by name.
    pub fn list(&self) -> Result<Vec<Image>> {
        let dir = self.images_dir();
        let rd = std::fs::read_dir(&dir)
            .with_context(|| format!("listing the image store {}", dir.display()))?;
        let mut out = Vec::new();
        for e in rd {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_name(&name).is_err() {
                continue; // scratch, trash and lock files
            }
            if let Some(img) = read_image(&e.path(), &name)? {
                out.push(img);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes the image `name` (containers already running from it keep their files open,
    /// but the engine should refuse to remove an image in use).
    pub fn remove(&self, name: &str) -> Result<()> {
        validate_name(name)?;
        atomic::remove_dir_atomically(&self.images_dir(), &self.image_dir(name), name)?;
        // Layers of imported images that no image uses any more go too.
        import::gc_layers(self)
    }

    /// Builds (or atomically replaces) the image `name` from host programs: each program and
    /// every shared library it needs (ELF DT_NEEDED, transitively, and the program
    /// interpreter), found through DT_RPATH/DT_RUNPATH, /etc/ld.so.conf(.d) and the default
    /// directories, at the same paths inside the image; programs are also reachable from
    /// /bin. A bare name (`cat`) is looked up in /bin, /usr/bin, /sbin and /usr/sbin.
    pub fn build_from_host(&self, name: &str, paths: &[PathBuf]) -> Result<Image> {
        validate_name(name)?;
        if name == TOOLBOX {
            bail!("the image name {TOOLBOX} is reserved for the built-in toolbox; choose another");
        }
        build::build_from_host(self, name, paths)
    }

    /// The `toolbox` image, built on first use and rebuilt when the weft executable changed
    /// (keyed by its device, inode, size and mtime). Safe to call from many processes and
    /// threads at once: one builds, the others wait for it and use its result.
    pub fn ensure_toolbox(&self, weft_exe: &Path) -> Result<Image> {
        toolbox::ensure(self, weft_exe)
    }
}

/// Reads `<dir>/image.json`; None if the directory or file does not exist.
fn read_image(dir: &Path, name: &str) -> Result<Option<Image>> {
    let meta = dir.join(META_FILE);
    let text = match std::fs::read_to_string(&meta) {
        Ok(t) => t,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(None)
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", meta.display())),
    };
    let mut img: Image = serde_json::from_str(&text).with_context(|| {
        format!(
            "image {name}: {} is corrupt; remove the image (weft image rm {name}) and build it \
             again",
            meta.display()
        )
    })?;
    img.name = name.to_string();
    if img.layers.is_empty() || dir.join(ROOTFS_DIR).is_dir() {
        // Built here: one layer, the image's own rootfs (wherever the store now lives).
        img.rootfs = dir.join(ROOTFS_DIR);
        img.layers = vec![img.rootfs.clone()];
    } else {
        // Imported: the topmost layer stands for `rootfs` (complete only for one layer).
        img.rootfs = img.layers[0].clone();
    }
    Ok(Some(img))
}

/// Whether the tests run as root (some checks need chroot).
#[cfg(test)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["toolbox", "a", "web-1.2_x", "0abc"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "Toolbox", ".tmp", "-x", "a/b", "a b", &"a".repeat(129)] {
            let e = validate_name(bad).unwrap_err().to_string();
            assert!(e.contains("invalid image name"), "{e}");
        }
    }

    #[test]
    fn empty_store() {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(t.path()).unwrap();
        assert!(s.list().unwrap().is_empty());
        assert!(s.get("nope").unwrap().is_none());
        assert!(s.get("Bad/Name").is_err());
        let e = s.remove("nope").unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        let e = s
            .build_from_host("toolbox", &[PathBuf::from("/bin/cat")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("reserved"), "{e}");
    }
}
