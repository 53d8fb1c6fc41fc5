//! Building images from host files: the base skeleton every image gets, adding programs with
//! their libraries, and writing the metadata.

use crate::atomic::{self, FileLock};
use crate::elf;
use crate::rootfs::Rootfs;
use crate::{Image, ImageConfig, ImageStore, DEFAULT_PATH, META_FILE, ROOTFS_DIR};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Where bare program names are looked up.
pub const BIN_DIRS: &[&str] = &["/bin", "/usr/bin", "/sbin", "/usr/sbin"];

/// `/bin/<name>` style lookup of a host program; None if no directory has it.
pub fn find_program(name: &str) -> Option<PathBuf> {
    BIN_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Turns a user-given program into an absolute host path.
pub fn host_program(p: &Path) -> Result<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else if p.components().count() == 1 {
        let name = p.to_string_lossy();
        find_program(&name).with_context(|| {
            format!(
                "program {name} was not found in {}; give its full path",
                BIN_DIRS.join(", ")
            )
        })?
    } else {
        std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))?
    };
    let meta = fs::metadata(&abs)
        .with_context(|| format!("host file {} does not exist", abs.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", abs.display());
    }
    Ok(abs)
}

/// The directories and files every image has: /proc /sys /dev /tmp (1777) /root /run /var,
/// /etc/passwd and /etc/group (root), empty /etc/hosts and /etc/resolv.conf for the engine to
/// bind over, /etc/nsswitch.conf, and the host's /etc/ld.so.cache (it maps library names to the
/// same paths the libraries have in the image).
pub fn populate_base(fs: &Rootfs) -> Result<()> {
    for d in [
        "/bin", "/etc", "/proc", "/sys", "/dev", "/run", "/var", "/home",
    ] {
        fs.dir(Path::new(d), 0o755)?;
    }
    fs.dir(Path::new("/tmp"), 0o1777)?;
    fs.dir(Path::new("/root"), 0o700)?;
    let files: &[(&str, &str)] = &[
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("/etc/group", "root:x:0:\nnogroup:x:65534:\n"),
        ("/etc/hosts", ""),
        ("/etc/resolv.conf", ""),
        (
            "/etc/nsswitch.conf",
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
        ),
    ];
    for (p, content) in files {
        fs.write(Path::new(p), content, 0o644)?;
    }
    let cache = Path::new("/etc/ld.so.cache");
    if cache.is_file() {
        fs.copy_as(cache, cache)?;
    }
    Ok(())
}

/// Copies the host program `path` and everything it needs to run into the image, and makes it
/// reachable as /bin/<basename>. A script brings its `#!` interpreter.
pub fn add_program(fs: &Rootfs, path: &Path) -> Result<()> {
    fs.install(path)
        .with_context(|| format!("copying {} into the image", path.display()))?;
    add_needs(fs, path, 0)?;
    if let Some(base) = path.file_name() {
        let at = Path::new("/bin").join(base);
        if !fs.exists(&at) {
            fs.link(path, &at)?;
        }
    }
    Ok(())
}

/// Installs what the file `path` needs to run: its libraries, or a script's interpreter.
pub fn add_needs(fs: &Rootfs, path: &Path, depth: u32) -> Result<()> {
    if elf::is_elf(path) {
        for dep in elf::elf_dependencies(path)? {
            fs.install(&dep).with_context(|| {
                format!("copying {} (needed by {})", dep.display(), path.display())
            })?;
        }
    } else if let Some(interp) = shebang(path) {
        if depth > 4 {
            bail!("{}: too many nested #! interpreters", path.display());
        }
        fs.install(&interp).with_context(|| {
            format!(
                "copying {} (interpreter of {})",
                interp.display(),
                path.display()
            )
        })?;
        add_needs(fs, &interp, depth + 1)?;
    }
    Ok(())
}

/// The interpreter named on a `#!` line.
fn shebang(path: &Path) -> Option<PathBuf> {
    use std::io::Read;
    let mut buf = [0u8; 256];
    let n = fs::File::open(path).ok()?.read(&mut buf).ok()?;
    let text = std::str::from_utf8(buf[..n].strip_prefix(b"#!")?).ok()?;
    let line = text.lines().next()?;
    let prog = line.split_whitespace().next()?;
    Some(PathBuf::from(prog)).filter(|p| p.is_absolute() && p.exists())
}

/// Bytes of regular files under `p` (symbolic links not followed).
pub fn tree_size(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `image.json` into the scratch image directory `dir`, which will become `final_dir`.
pub fn write_meta(
    dir: &Path,
    final_dir: &Path,
    name: &str,
    config: ImageConfig,
    source: String,
) -> Result<Image> {
    let img = Image {
        name: name.to_string(),
        rootfs: final_dir.join(ROOTFS_DIR),
        created: now(),
        size: tree_size(&dir.join(ROOTFS_DIR)),
        config,
        source,
        layers: vec![final_dir.join(ROOTFS_DIR)],
    };
    let json = serde_json::to_string_pretty(&img).context("encoding image metadata")?;
    let p = dir.join(META_FILE);
    fs::write(&p, json).with_context(|| format!("writing {}", p.display()))?;
    Ok(img)
}

/// A scratch directory that is deleted on drop unless it was moved into place.
pub struct Scratch {
    /// Its path.
    pub path: PathBuf,
}

impl Scratch {
    /// Creates `<images>/.tmp-<pid>-<n>-<name>/rootfs`.
    pub fn new(images: &Path, name: &str) -> Result<Scratch> {
        let path = atomic::scratch_path(images, atomic::TMP_PREFIX, name);
        fs::create_dir_all(path.join(ROOTFS_DIR))
            .with_context(|| format!("creating scratch directory {}", path.display()))?;
        Ok(Scratch { path })
    }

    /// A writer for its root filesystem.
    pub fn rootfs(&self) -> Rootfs {
        Rootfs::new(&self.path.join(ROOTFS_DIR))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        atomic::remove_tree(&self.path);
    }
}

pub fn build_from_host(store: &ImageStore, name: &str, paths: &[PathBuf]) -> Result<Image> {
    if paths.is_empty() {
        bail!("image {name}: give at least one host program to copy");
    }
    let progs = paths
        .iter()
        .map(|p| host_program(p))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("building image {name}"))?;
    let images = store.images_dir();
    let _lock = FileLock::exclusive(&store.lock_path(name))?;
    atomic::clean_stale(&images);
    let scratch = Scratch::new(&images, name)?;
    let fs = scratch.rootfs();
    populate_base(&fs).with_context(|| format!("building image {name}"))?;
    for p in &progs {
        add_program(&fs, p).with_context(|| format!("building image {name}"))?;
    }
    let first = progs[0]
        .file_name()
        .map(|b| format!("/bin/{}", b.to_string_lossy()))
        .unwrap_or_default();
    let config = ImageConfig {
        env: vec![DEFAULT_PATH.to_string()],
        cmd: vec![first],
        entrypoint: Vec::new(),
        working_dir: Some("/".to_string()),
        user: None,
    };
    let source = format!(
        "host: {}",
        progs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    write_meta(&scratch.path, &store.image_dir(name), name, config, source)?;
    atomic::install(&scratch.path, &store.image_dir(name), |_| false)?;
    store
        .get(name)?
        .with_context(|| format!("image {name} disappeared right after it was built"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_cat() {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(t.path()).unwrap();
        let img = s
            .build_from_host("cat", &[PathBuf::from("/bin/cat")])
            .unwrap();
        assert_eq!(img.name, "cat");
        assert!(img.rootfs.join("bin/cat").exists());
        let libc = elf::elf_dependencies(Path::new("/bin/cat"))
            .unwrap()
            .into_iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libc.so"))
            })
            .unwrap();
        let in_image = img.rootfs.join(libc.strip_prefix("/").unwrap());
        assert!(in_image.exists(), "{}", in_image.display());
        assert!(img.rootfs.join("etc/passwd").is_file());
        assert!(img.size > 100_000);
        assert_eq!(img.config.cmd, vec!["/bin/cat"]);
        assert_eq!(s.list().unwrap(), vec![img.clone()]);
        assert_eq!(s.get("cat").unwrap(), Some(img.clone()));
        // Rebuilding replaces it atomically; bare names are looked up.
        let again = s
            .build_from_host("cat", &[PathBuf::from("cat"), PathBuf::from("hostname")])
            .unwrap();
        assert!(again.rootfs.join("bin/hostname").exists());
        // No scratch left behind, only the image and its lock file.
        let left: Vec<String> = fs::read_dir(t.path().join("images"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.iter().all(|n| n == "cat" || n == ".cat.lock"),
            "{left:?}"
        );
        s.remove("cat").unwrap();
        assert!(s.get("cat").unwrap().is_none());
        if crate::is_root() {
            // (rebuilt for the chroot check)
            let img = s
                .build_from_host("cat2", &[PathBuf::from("/bin/cat")])
                .unwrap();
            let out = std::process::Command::new("chroot")
                .arg(&img.rootfs)
                .args(["/bin/cat", "/etc/passwd"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            assert!(String::from_utf8_lossy(&out.stdout).starts_with("root:x:0:0:"));
        }
    }

    #[test]
    fn bad_inputs() {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(t.path()).unwrap();
        let e = format!("{:#}", s.build_from_host("x", &[]).unwrap_err());
        assert!(e.contains("at least one"), "{e}");
        let e = format!(
            "{:#}",
            s.build_from_host("x", &[PathBuf::from("/nope/x")])
                .unwrap_err()
        );
        assert!(e.contains("does not exist"), "{e}");
        let e = format!(
            "{:#}",
            s.build_from_host("x", &[PathBuf::from("/etc")])
                .unwrap_err()
        );
        assert!(e.contains("not a regular file"), "{e}");
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn scripts_bring_their_interpreter() {
        let t = tempfile::tempdir().unwrap();
        let script = t.path().join("hello");
        fs::write(&script, "#!/bin/sh\necho hello\n").unwrap();
        let s = ImageStore::open(&t.path().join("store")).unwrap();
        let img = s
            .build_from_host("hello", std::slice::from_ref(&script))
            .unwrap();
        assert!(img.rootfs.join("bin/hello").exists());
        assert!(img.rootfs.join("bin/sh").exists());
    }
}
