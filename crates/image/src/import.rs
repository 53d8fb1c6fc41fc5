//! `weft image import`: OCI image layouts and docker-archives (`docker save`) into the store.
//!
//! Layers are stored once, by the digest of their uncompressed content (the image config's
//! diff_id), extracted under `<root>/layers/sha256/<hex>/`, ready to be stacked with
//! overlayfs (whiteouts translated, see [`extract`]). Everything is checked (digests, paths)
//! and extracted into a scratch directory first; only a fully good import is moved into
//! place, so bad input leaves nothing behind. Imports and layer garbage collection take one
//! lock, `<root>/layers/.lock`.

mod extract;
mod manifest;
mod source;

pub use manifest::ArchiveFormat;

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic::{self, FileLock};
use crate::build::{now, tree_size};
use crate::{validate_name, Image, ImageStore, META_FILE, TOOLBOX};
use manifest::ImagePlan;
use source::{HashReader, Source};

/// A directory deleted on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        atomic::remove_tree(&self.0);
    }
}

fn layers_dir(store: &ImageStore) -> PathBuf {
    store.root().join("layers").join("sha256")
}

fn lock(store: &ImageStore) -> Result<FileLock> {
    let dir = store.root().join("layers");
    fs::create_dir_all(dir.join("sha256"))
        .with_context(|| format!("creating the layer store {}", dir.display()))?;
    FileLock::exclusive(&dir.join(".lock"))
}

impl ImageStore {
    /// Imports the images of an OCI image layout or a docker-archive (a tar file, optionally
    /// gzip-compressed, or an OCI layout directory). `name` names the image (the archive must
    /// then hold exactly one); without it the archive's tags are used (`busybox:latest` →
    /// `busybox`). An image of the same name is replaced. Fails, leaving nothing behind, on a
    /// truncated or corrupt archive (digests are checked), a member path escaping its root
    /// (`../`), or a hard link leaving its layer. Extracting whiteouts and owners needs root.
    pub fn import(&self, path: &Path, name: Option<&str>) -> Result<Vec<Image>> {
        import(self, path, name).with_context(|| format!("importing {}", path.display()))
    }
}

fn import(store: &ImageStore, path: &Path, name: Option<&str>) -> Result<Vec<Image>> {
    if let Some(n) = name {
        validate_name(n)?;
    }
    let _lock = lock(store)?;
    let layers = layers_dir(store);
    let scratch = TempDir(atomic::scratch_path(
        &store.root().join("layers"),
        atomic::TMP_PREFIX,
        "import",
    ));
    fs::create_dir_all(&scratch.0)
        .with_context(|| format!("creating scratch directory {}", scratch.0.display()))?;
    let src = Source::open(path, &scratch.0.join("archive"))?;
    let format = manifest::detect(&src)?;
    let plans = manifest::read(&src, format)?;
    let names = image_names(&plans, name)?;

    // Extract every layer not yet stored, into the scratch directory.
    let staged = scratch.0.join("layers");
    fs::create_dir_all(&staged).with_context(|| format!("creating {}", staged.display()))?;
    let mut new_layers: HashMap<String, PathBuf> = HashMap::new();
    for plan in &plans {
        for l in &plan.layers {
            if layers.join(&l.diff_id).is_dir() || new_layers.contains_key(&l.diff_id) {
                continue;
            }
            let dir = staged.join(&l.diff_id);
            fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
            extract_layer(l, &dir)?;
            new_layers.insert(l.diff_id.clone(), dir);
        }
    }

    // All good: move the layers in, then the images.
    for (hex, dir) in &new_layers {
        let dst = layers.join(hex);
        if let Err(e) = fs::rename(dir, &dst) {
            if !dst.is_dir() {
                return Err(e).with_context(|| format!("storing layer sha256:{hex}"));
            }
        }
    }
    let result = install_images(store, path, format, &plans, &names);
    if result.is_err() {
        let _ = gc_locked(store);
    }
    result
}

/// The store name of each image of the archive.
fn image_names(plans: &[ImagePlan], name: Option<&str>) -> Result<Vec<String>> {
    let names: Vec<String> = match name {
        Some(n) if plans.len() == 1 => vec![n.to_string()],
        Some(_) => bail!(
            "the archive holds {} images; import it without a name to use their tags",
            plans.len()
        ),
        None => plans
            .iter()
            .map(|p| {
                p.name.clone().context(
                    "the archive does not tag its image with a usable name; give one \
                     (weft image import FILE --name NAME)",
                )
            })
            .collect::<Result<_>>()?,
    };
    for n in &names {
        if n == TOOLBOX {
            bail!("the image name {TOOLBOX} is reserved for the built-in toolbox; choose another");
        }
    }
    Ok(names)
}

/// Verifies and extracts one layer blob into `dir`.
fn extract_layer(l: &manifest::LayerPlan, dir: &Path) -> Result<()> {
    let ctx = || format!("layer sha256:{}", l.diff_id);
    if let Some(hex) = &l.blob_digest {
        source::verify(&l.blob, hex, &format!("sha256:{hex}")).with_context(ctx)?;
    }
    let mut r = HashReader::new(source::open_stream(&l.blob).with_context(ctx)?);
    let opts = extract::Options {
        whiteouts: true,
        // SAFETY: geteuid has no preconditions.
        privileged: unsafe { libc::geteuid() } == 0,
    };
    extract::extract(&mut r, dir, opts).with_context(ctx)?;
    // Whatever the tar reader left (padding) counts for the digest too.
    io::copy(&mut r, &mut io::sink()).with_context(ctx)?;
    let got = r.digest();
    if got != l.diff_id {
        bail!(
            "layer sha256:{} is corrupt: its content has digest sha256:{got} (truncated or \
             damaged archive?)",
            l.diff_id
        );
    }
    Ok(())
}

fn install_images(
    store: &ImageStore,
    path: &Path,
    format: ArchiveFormat,
    plans: &[ImagePlan],
    names: &[String],
) -> Result<Vec<Image>> {
    let layers = layers_dir(store);
    let images_dir = store.images_dir();
    let mut out = Vec::new();
    for (plan, name) in plans.iter().zip(names) {
        // Topmost first, as overlayfs wants its lower dirs.
        let dirs: Vec<PathBuf> = plan
            .layers
            .iter()
            .rev()
            .map(|l| layers.join(&l.diff_id))
            .collect();
        let Some(top) = dirs.first().cloned() else {
            bail!("image {name} has no layers; there is nothing to run");
        };
        let img = Image {
            name: name.clone(),
            rootfs: top,
            created: now(),
            size: dirs.iter().map(|d| tree_size(d)).sum(),
            config: plan.config.clone(),
            source: format!("import: {} ({format})", path.display()),
            layers: dirs,
        };
        let tmp = TempDir(atomic::scratch_path(&images_dir, atomic::TMP_PREFIX, name));
        fs::create_dir_all(&tmp.0).with_context(|| format!("creating {}", tmp.0.display()))?;
        let json = serde_json::to_string_pretty(&img).context("encoding image metadata")?;
        fs::write(tmp.0.join(META_FILE), json).context("writing image metadata")?;
        atomic::install(&tmp.0, &store.image_dir(name), |_| false)?;
        out.push(img);
    }
    Ok(out)
}

/// Deletes the stored layers that no image uses any more.
pub(crate) fn gc_layers(store: &ImageStore) -> Result<()> {
    let _lock = lock(store)?;
    gc_locked(store)
}

fn gc_locked(store: &ImageStore) -> Result<()> {
    // A store we cannot read completely is left alone rather than half-collected.
    let Ok(images) = store.list() else {
        return Ok(());
    };
    let used: std::collections::HashSet<PathBuf> =
        images.into_iter().flat_map(|i| i.layers).collect();
    let dir = layers_dir(store);
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if !hidden && !used.contains(&p) {
            fs::remove_dir_all(&p)
                .with_context(|| format!("removing unused layer {}", p.display()))?;
        }
    }
    Ok(())
}
