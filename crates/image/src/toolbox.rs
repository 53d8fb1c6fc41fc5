//! The `toolbox` image: the host's /bin/sh, cat, hostname, sleep and ip (plus ls, echo, env
//! and ps when present) with their libraries, and weft itself as /bin/weft with its applets
//! (/bin/ping, /bin/wget, ...) linked to it. Keyed by the weft executable, rebuilt when it
//! changes.

use crate::atomic::{self, FileLock};
use crate::build::{self, Scratch};
use crate::{Image, ImageConfig, ImageStore, DEFAULT_PATH, TOOLBOX};
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bump when the recipe below changes, so existing toolboxes are rebuilt.
const RECIPE_VERSION: u32 = 1;
/// The file in the image directory (next to image.json) holding the key.
const KEY_FILE: &str = "toolbox.key";
/// Host programs the toolbox cannot do without.
const REQUIRED: &[&str] = &["cat", "hostname", "sleep"];
/// Host programs taken when present.
const OPTIONAL: &[&str] = &["ls", "echo", "env", "ps"];
/// Where `ip` may be.
const IP_PATHS: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/bin/ip", "/usr/bin/ip"];

/// The key of a toolbox built from the weft executable `exe`: a hash of the recipe version
/// and the file's identity (size, mtime, device, inode), so the same file reached through
/// different paths gives the same key and a rebuilt weft a new one.
pub fn key(exe: &Path) -> Result<String> {
    let m = std::fs::metadata(exe)
        .with_context(|| format!("weft executable {} is not readable", exe.display()))?;
    let mut h = Sha256::new();
    h.update(format!(
        "v{RECIPE_VERSION}\0{}\0{}.{}\0{}:{}",
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.dev(),
        m.ino()
    ));
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn current_key(dir: &Path) -> Option<String> {
    std::fs::read_to_string(dir.join(KEY_FILE))
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn ensure(store: &ImageStore, weft_exe: &Path) -> Result<Image> {
    let exe = std::fs::canonicalize(weft_exe).with_context(|| {
        format!(
            "the weft executable {} was not found (needed for the toolbox image)",
            weft_exe.display()
        )
    })?;
    let key = key(&exe)?;
    let dir = store.image_dir(TOOLBOX);
    if current_key(&dir).as_deref() == Some(key.as_str()) {
        if let Some(img) = store.get(TOOLBOX)? {
            return Ok(img);
        }
    }
    // One builder at a time; the others wait here and then find the image built.
    let _lock = FileLock::exclusive(&store.lock_path(TOOLBOX))?;
    if current_key(&dir).as_deref() == Some(key.as_str()) {
        if let Some(img) = store.get(TOOLBOX)? {
            return Ok(img);
        }
    }
    let images = store.images_dir();
    atomic::clean_stale(&images);
    let scratch = Scratch::new(&images, TOOLBOX)?;
    let source = populate(&scratch, &exe).context("building the toolbox image")?;
    std::fs::write(scratch.path.join(KEY_FILE), &key).context("writing the toolbox key")?;
    let config = ImageConfig {
        env: vec![DEFAULT_PATH.to_string()],
        cmd: vec!["/bin/sh".to_string()],
        entrypoint: Vec::new(),
        working_dir: Some("/".to_string()),
        user: None,
    };
    build::write_meta(&scratch.path, &dir, TOOLBOX, config, source)?;
    // Should another builder (one not sharing our lock) have won, keep its image if it is
    // the same build.
    atomic::install(&scratch.path, &dir, |d| {
        current_key(d).as_deref() == Some(key.as_str())
    })?;
    store
        .get(TOOLBOX)?
        .context("the toolbox image disappeared right after it was built")
}

/// Fills the scratch image; returns the `source` description.
fn populate(scratch: &Scratch, exe: &Path) -> Result<String> {
    let fs = scratch.rootfs();
    build::populate_base(&fs)?;
    let mut progs: Vec<PathBuf> = vec![PathBuf::from("/bin/sh")];
    for name in REQUIRED {
        progs.push(build::find_program(name).with_context(|| {
            format!(
                "host program {name} is missing (looked in {}); install it (coreutils / \
                 hostname) to build the toolbox",
                build::BIN_DIRS.join(", ")
            )
        })?);
    }
    if let Some(ip) = IP_PATHS.iter().map(PathBuf::from).find(|p| p.is_file()) {
        progs.push(ip);
    }
    progs.extend(OPTIONAL.iter().filter_map(|n| build::find_program(n)));
    for p in &progs {
        build::add_program(&fs, p)?;
    }
    let bin_weft = Path::new("/bin/weft");
    fs.copy_as(exe, bin_weft)
        .with_context(|| format!("copying the weft executable {}", exe.display()))?;
    build::add_needs(&fs, exe, 0)?;
    for applet in weft_applets::applet_names() {
        fs.link(Path::new("weft"), &Path::new("/bin").join(applet))?;
    }
    Ok(format!(
        "toolbox: weft {} + host {}",
        exe.display(),
        progs
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// A small stand-in for the weft executable (a copy of /bin/true).
    fn fake_weft(dir: &Path) -> PathBuf {
        let p = dir.join("weft");
        std::fs::copy(build::find_program("true").unwrap(), &p).unwrap();
        p
    }

    #[test]
    fn toolbox_contents() {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(&t.path().join("store")).unwrap();
        let weft = std::env::current_exe().unwrap();
        let img = s.ensure_toolbox(&weft).unwrap();
        let r = &img.rootfs;
        assert_eq!(img.name, "toolbox");
        for f in [
            "bin/sh",
            "bin/cat",
            "bin/hostname",
            "bin/sleep",
            "bin/weft",
            "etc/passwd",
        ] {
            assert!(r.join(f).exists(), "{f} missing");
        }
        for a in weft_applets::applet_names() {
            let l = r.join("bin").join(a);
            assert_eq!(
                std::fs::read_link(&l).unwrap(),
                PathBuf::from("weft"),
                "{a}"
            );
        }
        assert!(std::fs::read_link(r.join("bin/ping")).is_ok());
        assert!(r.join("bin/ip").exists() || !IP_PATHS.iter().any(|p| Path::new(p).exists()));
        for d in ["proc", "sys", "dev", "root", "run", "var"] {
            assert!(r.join(d).is_dir(), "{d}");
        }
        let tmp_mode = std::fs::metadata(r.join("tmp")).unwrap().mode() & 0o7777;
        assert_eq!(tmp_mode, 0o1777);
        assert_eq!(std::fs::read_to_string(r.join("etc/hosts")).unwrap(), "");
        assert!(img.config.env.contains(&DEFAULT_PATH.to_string()));
        // Second call: same image, not rebuilt.
        let again = s.ensure_toolbox(&weft).unwrap();
        assert_eq!(again, img);
        if crate::is_root() {
            let out = std::process::Command::new("chroot")
                .arg(r)
                .args([
                    "/bin/sh",
                    "-c",
                    "echo ok && hostname >/dev/null && cat /etc/passwd >/dev/null \
                     && { [ ! -e /bin/ip ] || ip addr >/dev/null; } \
                     && { [ ! -e /bin/ls ] || ls / >/dev/null; }",
                ])
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).lines().next(),
                Some("ok")
            );
        } else {
            eprintln!("skipping the chroot check: not root");
        }
    }

    #[test]
    fn rebuilt_when_weft_changes() {
        let t = tempfile::tempdir().unwrap();
        let s = ImageStore::open(&t.path().join("store")).unwrap();
        let weft = fake_weft(t.path());
        let a = s.ensure_toolbox(&weft).unwrap();
        let size_a = std::fs::metadata(a.rootfs.join("bin/weft")).unwrap().len();
        // The same file through another path is the same toolbox.
        let alias = t.path().join("weft-alias");
        std::os::unix::fs::symlink(&weft, &alias).unwrap();
        assert_eq!(s.ensure_toolbox(&alias).unwrap(), a);
        // A new build of weft: different content and size.
        let mut bytes = std::fs::read(&weft).unwrap();
        bytes.extend_from_slice(b"rebuilt");
        std::fs::write(&weft, bytes).unwrap();
        let b = s.ensure_toolbox(&weft).unwrap();
        let size_b = std::fs::metadata(b.rootfs.join("bin/weft")).unwrap().len();
        assert_eq!(size_b, size_a + 7);
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn concurrent_callers_get_one_complete_image() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("store");
        let weft = fake_weft(t.path());
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (root, weft, barrier) = (root.clone(), weft.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let s = ImageStore::open(&root).unwrap();
                    barrier.wait();
                    s.ensure_toolbox(&weft).unwrap()
                })
            })
            .collect();
        let imgs: Vec<Image> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        for img in &imgs {
            assert_eq!(img, &imgs[0]);
            assert!(img.rootfs.join("bin/sh").exists());
            assert!(img.rootfs.join("bin/weft").exists());
            assert_eq!(
                std::fs::read_link(img.rootfs.join("bin/ping")).unwrap(),
                PathBuf::from("weft")
            );
        }
        let entries: Vec<String> = std::fs::read_dir(root.join("images"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            entries
                .iter()
                .all(|n| n == "toolbox" || n == ".toolbox.lock"),
            "{entries:?}"
        );
    }
}
