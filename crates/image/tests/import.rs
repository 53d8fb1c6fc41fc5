//! `ImageStore::import` of OCI-layout and docker-archive tarballs built here with the tar
//! crate: layers stored once by digest, whiteouts and opaque dirs as overlayfs wants them,
//! image config applied; truncated and escaping archives refused without a trace.

use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use weft_image::{ImageConfig, ImageStore};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A tar builder with helpers for the entries a layer needs.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }
    fn dir(&mut self, path: &str) -> &mut Tar {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
        self
    }
    fn file(&mut self, path: &str, data: &[u8]) -> &mut Tar {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }
    /// An entry whose name is written raw (the tar crate refuses to write `..` itself).
    fn raw_file(&mut self, name: &[u8], data: &[u8]) -> &mut Tar {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The two layers of the test image: a gzip base, and a plain top layer that deletes
/// `etc/gone` and makes `opq/` opaque.
fn layers() -> (Vec<u8>, Vec<u8>) {
    let mut base = Tar::new();
    base.dir("etc/")
        .file("etc/keep", b"keep\n")
        .file("etc/gone", b"gone\n")
        .dir("opq/")
        .file("opq/old", b"old\n")
        .dir("bin/")
        .file("bin/tool", b"#!/bin/sh\n");
    let mut top = Tar::new();
    top.dir("etc/")
        .file("etc/.wh.gone", b"")
        .file("etc/added", b"added\n")
        .dir("opq/")
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"new\n");
    (base.bytes(), top.bytes())
}

fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin", "A=1"],
            "Entrypoint": ["/bin/tool"],
            "Cmd": ["--flag"],
            "WorkingDir": "/etc",
            "User": "1000:1000"
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids.iter().map(|d| format!("sha256:{d}")).collect::<Vec<_>>()}
    }))
    .unwrap()
}

/// An OCI image layout tarball (gzip base layer) tagged `example.com/team/app:1.0`.
fn oci_archive() -> Vec<u8> {
    let (base, top) = layers();
    let base_gz = gzip(&base);
    let diff_ids = vec![sha(&base), sha(&top)];
    let config = config_json(&diff_ids);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", sha(&config)), "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": format!("sha256:{}", sha(&base_gz)), "size": base_gz.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar",
             "digest": format!("sha256:{}", sha(&top)), "size": top.len()}
        ]
    }))
    .unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{}", sha(&manifest)), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "example.com/team/app:1.0"}}]
    }))
    .unwrap();
    let mut t = Tar::new();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", &index)
        .dir("blobs/")
        .dir("blobs/sha256/");
    for blob in [&base_gz, &top, &config, &manifest] {
        t.file(&format!("blobs/sha256/{}", sha(blob)), blob);
    }
    t.bytes()
}

/// A docker-archive (`docker save`) tarball of the same image, tagged `busybox:latest`.
fn docker_archive() -> Vec<u8> {
    let (base, top) = layers();
    let diff_ids = vec![sha(&base), sha(&top)];
    let config = config_json(&diff_ids);
    let cfg_name = format!("{}.json", sha(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg_name,
        "RepoTags": ["busybox:latest"],
        "Layers": [format!("{}/layer.tar", diff_ids[0]), format!("{}/layer.tar", diff_ids[1])]
    }]))
    .unwrap();
    let mut t = Tar::new();
    t.file("manifest.json", &manifest).file(&cfg_name, &config);
    for (d, l) in diff_ids.iter().zip([&base, &top]) {
        t.dir(&format!("{d}/")).file(&format!("{d}/layer.tar"), l);
    }
    t.bytes()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, data).unwrap();
    p
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let c = CString::new(p.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid paths and a buffer of the given length.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

/// Names of the entries of `dir` (hidden ones included), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn expected_config() -> ImageConfig {
    ImageConfig {
        env: vec!["PATH=/bin".into(), "A=1".into()],
        cmd: vec!["--flag".into()],
        entrypoint: vec!["/bin/tool".into()],
        working_dir: Some("/etc".into()),
        user: Some("1000:1000".into()),
    }
}

#[test]
fn oci_layout_with_whiteouts() {
    if !is_root() {
        eprintln!("skipped: whiteouts (device nodes, trusted xattrs) need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&t.path().join("store")).unwrap();
    let file = write(t.path(), "app.tar", &oci_archive());
    let imgs = store.import(&file, None).unwrap();
    assert_eq!(imgs.len(), 1);
    let img = &imgs[0];
    assert_eq!(img.name, "app-1.0");
    assert_eq!(img.config, expected_config());
    let (base, top) = layers();
    let root = t.path().join("store/layers/sha256");
    assert_eq!(
        img.layers,
        vec![root.join(sha(&top)), root.join(sha(&base))]
    );
    assert_eq!(img.rootfs, img.layers[0]);

    let (b, tp) = (&img.layers[1], &img.layers[0]);
    assert_eq!(fs::read(b.join("etc/keep")).unwrap(), b"keep\n");
    assert_eq!(fs::read(b.join("etc/gone")).unwrap(), b"gone\n");
    let wh = fs::symlink_metadata(tp.join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device(), "whiteout is a char device");
    assert_eq!(std::os::unix::fs::MetadataExt::rdev(&wh), 0);
    assert!(!tp.join("etc/.wh.gone").exists());
    assert_eq!(
        xattr(&tp.join("opq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!tp.join("opq/.wh..wh..opq").exists());
    assert_eq!(fs::read(tp.join("opq/new")).unwrap(), b"new\n");

    // The list and get views agree with what import returned.
    let got = store.get("app-1.0").unwrap().unwrap();
    assert_eq!(got.layers, img.layers);
    assert_eq!(got.config, img.config);

    check_overlay_view(&img.layers);
}

/// Mounts the layers with overlayfs in a private mount namespace (unshare -m) and checks
/// the merged view: the whiteout hides etc/gone, the opaque dir hides opq/old.
fn check_overlay_view(layers: &[PathBuf]) {
    if std::process::Command::new("unshare")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("overlay view not checked: no unshare(1)");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let lower: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
    let script = format!(
        "mount -t overlay overlay -o lowerdir={} {m} && ls {m}/etc && ls {m}/opq",
        lower.join(":"),
        m = mnt.path().display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    let files: Vec<&str> = listing.split_whitespace().collect();
    assert_eq!(files, ["added", "keep", "new"], "{listing}");
}

#[test]
fn docker_archive_layers_stored_once() {
    if !is_root() {
        eprintln!("skipped: whiteouts (device nodes, trusted xattrs) need root");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&t.path().join("store")).unwrap();
    let file = write(t.path(), "bb.tar", &docker_archive());
    let imgs = store.import(&file, None).unwrap();
    assert_eq!(imgs[0].name, "busybox");
    assert_eq!(imgs[0].config, expected_config());
    assert!(imgs[0].source.contains("docker-archive"));
    let layer_root = t.path().join("store/layers/sha256");
    let before = names(&layer_root);
    assert_eq!(before.len(), 2);

    // The same layers under another name (and from the other format) are not stored again.
    let other = write(t.path(), "app.tar", &oci_archive());
    let again = store.import(&other, Some("copy")).unwrap();
    assert_eq!(again[0].layers, imgs[0].layers);
    assert_eq!(names(&layer_root), before);
    let listed: Vec<String> = store.list().unwrap().into_iter().map(|i| i.name).collect();
    assert_eq!(listed, ["busybox", "copy"]);

    // Layers go with the last image that uses them.
    store.remove("busybox").unwrap();
    assert_eq!(names(&layer_root), before);
    store.remove("copy").unwrap();
    assert!(names(&layer_root).is_empty());
}

/// Nothing but the empty store skeleton is left.
fn assert_nothing_left(store_root: &Path) {
    assert!(names(&store_root.join("images")).is_empty(), "images left");
    assert!(
        names(&store_root.join("layers/sha256")).is_empty(),
        "layers left"
    );
    let extra: Vec<String> = names(&store_root.join("layers"))
        .into_iter()
        .filter(|n| n != "sha256" && n != ".lock")
        .collect();
    assert!(extra.is_empty(), "scratch left: {extra:?}");
}

#[test]
fn truncated_archive_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    for (name, full) in [("oci", oci_archive()), ("docker", docker_archive())] {
        for cut in [full.len() / 3, full.len() / 2, full.len() - 1500] {
            let file = write(t.path(), &format!("{name}-{cut}.tar"), &full[..cut]);
            let e = store.import(&file, Some("x")).unwrap_err();
            let msg = format!("{e:#}");
            assert!(
                msg.contains("truncated")
                    || msg.contains("corrupt")
                    || msg.contains("does not contain"),
                "{name} cut at {cut}: {msg}"
            );
            assert_nothing_left(&root);
        }
    }
}

#[test]
fn escaping_paths_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let store = ImageStore::open(&root).unwrap();

    // In the archive itself.
    let mut outer = Tar::new();
    outer
        .file("manifest.json", b"[]")
        .raw_file(b"../evil", b"pwned\n");
    let file = write(t.path(), "outer.tar", &outer.bytes());
    let e = format!("{:#}", store.import(&file, Some("x")).unwrap_err());
    assert!(e.contains("escapes"), "{e}");
    assert!(!t.path().join("evil").exists());
    assert!(!root.join("layers/evil").exists());
    assert_nothing_left(&root);

    // In a layer.
    let mut layer = Tar::new();
    layer.dir("etc/").raw_file(b"etc/../../evil", b"pwned\n");
    let layer = layer.bytes();
    let config = config_json(&[sha(&layer)]);
    let cfg_name = format!("{}.json", sha(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg_name, "RepoTags": ["evil:latest"], "Layers": ["l/layer.tar"]
    }]))
    .unwrap();
    let mut t2 = Tar::new();
    t2.file("manifest.json", &manifest)
        .file(&cfg_name, &config)
        .dir("l/")
        .file("l/layer.tar", &layer);
    let file = write(t.path(), "evil.tar", &t2.bytes());
    let e = format!("{:#}", store.import(&file, None).unwrap_err());
    assert!(e.contains("escapes"), "{e}");
    assert!(!root.join("layers/evil").exists());
    assert_nothing_left(&root);
}

#[test]
fn not_an_image_archive() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let mut x = Tar::new();
    x.file("hello.txt", b"hi");
    let file = write(t.path(), "x.tar", &x.bytes());
    let e = format!("{:#}", store.import(&file, Some("x")).unwrap_err());
    assert!(e.contains("not an image archive"), "{e}");
    let e = format!(
        "{:#}",
        store
            .import(&t.path().join("missing.tar"), None)
            .unwrap_err()
    );
    assert!(e.contains("cannot read the image archive"), "{e}");
    assert_nothing_left(&root);
}
