//! Reading what an archive holds: OCI image layouts (`oci-layout` + `index.json`) and
//! docker-archives (`docker save`: `manifest.json`), into one plan per image.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

use super::source::{parse_digest, verify, Source};
use crate::ImageConfig;

/// The format of an image archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/`).
    OciLayout,
    /// `docker save` output (`manifest.json` and its files).
    DockerArchive,
}

impl std::fmt::Display for ArchiveFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArchiveFormat::OciLayout => "oci-layout",
            ArchiveFormat::DockerArchive => "docker-archive",
        })
    }
}

/// One layer to import.
#[derive(Debug, Clone)]
pub struct LayerPlan {
    /// The blob (a tar stream, maybe gzip-compressed), inside the unpacked archive.
    pub blob: PathBuf,
    /// Expected sha256 (hex) of the blob as stored, when the archive says it.
    pub blob_digest: Option<String>,
    /// Expected sha256 (hex) of the uncompressed tar stream (the image config's diff_id).
    pub diff_id: String,
}

/// One image to import.
#[derive(Debug, Clone)]
pub struct ImagePlan {
    /// A name derived from the archive's tags, if any.
    pub name: Option<String>,
    /// Container defaults from the image config.
    pub config: ImageConfig,
    /// Layers, LOWEST first (the order of the manifest).
    pub layers: Vec<LayerPlan>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

#[derive(Deserialize, Default)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RunConfig>,
    rootfs: Option<RootFs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// Which format the unpacked archive is in.
pub fn detect(src: &Source) -> Result<ArchiveFormat> {
    if src.has("oci-layout") && src.has("index.json") {
        Ok(ArchiveFormat::OciLayout)
    } else if src.has("manifest.json") {
        Ok(ArchiveFormat::DockerArchive)
    } else {
        bail!(
            "not an image archive: it has neither oci-layout + index.json (OCI image layout) \
             nor manifest.json (docker save); check the file"
        )
    }
}

/// The images of the archive.
pub fn read(src: &Source, format: ArchiveFormat) -> Result<Vec<ImagePlan>> {
    let plans = match format {
        ArchiveFormat::OciLayout => read_oci(src)?,
        ArchiveFormat::DockerArchive => read_docker(src)?,
    };
    if plans.is_empty() {
        bail!("the archive lists no image");
    }
    Ok(plans)
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fn read_oci(src: &Source) -> Result<Vec<ImagePlan>> {
    let index: Index = src.json("index.json")?;
    let mut out = Vec::new();
    for d in index.manifests {
        let name = d
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| d.annotations.get("org.opencontainers.image.ref.name"))
            .and_then(|r| name_from_ref(r));
        let manifest_desc = if INDEX_TYPES.contains(&d.media_type.as_str()) {
            let p = src.verified_blob(&d.digest)?;
            let nested: Index = serde_json::from_slice(&std::fs::read(&p)?)
                .with_context(|| format!("parsing the image index {}", d.digest))?;
            pick_platform(nested.manifests)
                .with_context(|| format!("the image index {} lists no manifest", d.digest))?
        } else {
            d
        };
        let mp = src.verified_blob(&manifest_desc.digest)?;
        let m: Manifest = serde_json::from_slice(&std::fs::read(&mp)?)
            .with_context(|| format!("parsing the manifest {}", manifest_desc.digest))?;
        let cfg_path = src.verified_blob(&m.config.digest)?;
        let (config, diff_ids) = read_config(&cfg_path, &m.config.digest)?;
        if diff_ids.len() != m.layers.len() {
            bail!(
                "manifest {} has {} layers but its config lists {} diff_ids; the archive is \
                 inconsistent",
                manifest_desc.digest,
                m.layers.len(),
                diff_ids.len()
            );
        }
        let mut layers = Vec::new();
        for (l, diff_id) in m.layers.iter().zip(diff_ids) {
            let hex = parse_digest(&l.digest)?;
            layers.push(LayerPlan {
                blob: src.file(&format!("blobs/sha256/{hex}"))?,
                blob_digest: Some(hex),
                diff_id,
            });
        }
        out.push(ImagePlan {
            name,
            config,
            layers,
        });
    }
    Ok(out)
}

/// The manifest for this machine's platform, else the first.
fn pick_platform(mut ms: Vec<Descriptor>) -> Option<Descriptor> {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let pos = ms.iter().position(|m| {
        m.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == arch)
    });
    match pos {
        Some(i) => Some(ms.swap_remove(i)),
        None if ms.is_empty() => None,
        None => Some(ms.swap_remove(0)),
    }
}

fn read_docker(src: &Source) -> Result<Vec<ImagePlan>> {
    let entries: Vec<DockerEntry> = src.json("manifest.json")?;
    let mut out = Vec::new();
    for e in entries {
        let cfg_path = src.file(&e.config)?;
        if let Some(hex) = hex_in_name(&e.config) {
            verify(&cfg_path, &hex, &e.config)?;
        }
        let (config, diff_ids) = read_config(&cfg_path, &e.config)?;
        if diff_ids.len() != e.layers.len() {
            bail!(
                "manifest.json lists {} layers but the config {} lists {} diff_ids; the archive \
                 is inconsistent",
                e.layers.len(),
                e.config,
                diff_ids.len()
            );
        }
        let mut layers = Vec::new();
        for (l, diff_id) in e.layers.iter().zip(diff_ids) {
            layers.push(LayerPlan {
                blob: src.file(l)?,
                blob_digest: l
                    .strip_prefix("blobs/sha256/")
                    .and_then(|h| parse_digest(&format!("sha256:{h}")).ok()),
                diff_id,
            });
        }
        let name = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .find_map(|t| name_from_ref(t));
        out.push(ImagePlan {
            name,
            config,
            layers,
        });
    }
    Ok(out)
}

/// `<hex>.json` or `blobs/sha256/<hex>`: the hex, when the name carries one.
fn hex_in_name(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let base = base.strip_suffix(".json").unwrap_or(base);
    parse_digest(&format!("sha256:{base}")).ok()
}

/// Parses an image config: the container defaults and the diff_ids (hex).
fn read_config(path: &std::path::Path, what: &str) -> Result<(ImageConfig, Vec<String>)> {
    let text = std::fs::read(path).with_context(|| format!("reading the image config {what}"))?;
    let c: ConfigFile = serde_json::from_slice(&text)
        .with_context(|| format!("parsing the image config {what}"))?;
    let rc = c.config.unwrap_or_default();
    let config = ImageConfig {
        env: rc.env.unwrap_or_default(),
        cmd: rc.cmd.unwrap_or_default(),
        entrypoint: rc.entrypoint.unwrap_or_default(),
        working_dir: rc.working_dir.filter(|w| !w.is_empty()),
        user: rc.user.filter(|u| !u.is_empty()),
    };
    let Some(rootfs) = c.rootfs else {
        bail!("the image config {what} has no rootfs.diff_ids");
    };
    let diff_ids = rootfs
        .diff_ids
        .iter()
        .map(|d| parse_digest(d))
        .collect::<Result<Vec<_>>>()?;
    Ok((config, diff_ids))
}

/// A store name from an image reference: `docker.io/library/busybox:latest` → `busybox`,
/// `localhost/app:1.2` → `app-1.2`; None when nothing usable is left (a bare tag).
pub fn name_from_ref(r: &str) -> Option<String> {
    let r = r.split('@').next().unwrap_or(r);
    let last = r.rsplit('/').next().unwrap_or(r);
    if !r.contains('/') && !r.contains(':') {
        // A bare word: an OCI ref.name may be only a tag such as "latest"; take it as a
        // name only when it looks like one that is not just a version.
        if last.is_empty() || last == "latest" || last.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
    }
    let (repo, tag) = match last.split_once(':') {
        Some((repo, tag)) => (repo, Some(tag)),
        None => (last, None),
    };
    let mut name = repo.to_ascii_lowercase();
    if let Some(t) = tag.filter(|t| *t != "latest" && !t.is_empty()) {
        name.push('-');
        name.push_str(&t.to_ascii_lowercase());
    }
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    crate::validate_name(&name).ok().map(|_| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_refs() {
        let n = |s| name_from_ref(s);
        assert_eq!(
            n("docker.io/library/busybox:latest").as_deref(),
            Some("busybox")
        );
        assert_eq!(n("busybox:1.36").as_deref(), Some("busybox-1.36"));
        assert_eq!(n("localhost/App:v2").as_deref(), Some("app-v2"));
        assert_eq!(n("latest"), None);
        assert_eq!(n("1.0"), None);
        assert_eq!(n("alpine").as_deref(), Some("alpine"));
    }

    #[test]
    fn hex_names() {
        let h = "b".repeat(64);
        assert_eq!(hex_in_name(&format!("{h}.json")), Some(h.clone()));
        assert_eq!(hex_in_name(&format!("blobs/sha256/{h}")), Some(h));
        assert_eq!(hex_in_name("config.json"), None);
    }
}
