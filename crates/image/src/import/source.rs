//! The archive being imported, unpacked into a private directory (or a directory given as
//! it is), and safe reads of the files it names (blobs, manifests).

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use super::extract::{self, clean_path, Options};

/// An unpacked image archive.
pub struct Source {
    /// Canonical path of the directory holding the archive's files.
    root: PathBuf,
}

/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// How a blob is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip.
    Gzip,
}

/// Sniffs the compression of `path`.
pub fn compression(path: &Path) -> Result<Compression> {
    let mut head = [0u8; 4];
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    if n >= 2 && head[..2] == GZIP_MAGIC {
        return Ok(Compression::Gzip);
    }
    if n == 4 && head == ZSTD_MAGIC {
        bail!(
            "{} is zstd-compressed, which weft does not read; export the image with gzip or \
             uncompressed layers",
            path.display()
        );
    }
    Ok(Compression::None)
}

/// Opens `path` as a (possibly gzip-compressed) stream.
pub fn open_stream(path: &Path) -> Result<Box<dyn Read>> {
    let c = compression(path)?;
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let r = BufReader::new(f);
    Ok(match c {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(r)),
    })
}

/// The lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A reader that hashes (sha256) what passes through it.
pub struct HashReader<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> HashReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashReader {
            inner,
            hash: Sha256::new(),
        }
    }
    /// The hex digest of everything read so far.
    pub fn digest(self) -> String {
        hex(&self.hash.finalize())
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

impl Source {
    /// Opens `path`: a directory is used as it is; a tar file (optionally gzip-compressed)
    /// is unpacked into `scratch` (a fresh directory path that the caller deletes).
    pub fn open(path: &Path, scratch: &Path) -> Result<Source> {
        let meta = fs::metadata(path).with_context(|| {
            format!(
                "cannot read the image archive {}; check the path",
                path.display()
            )
        })?;
        let dir = if meta.is_dir() {
            path.to_path_buf()
        } else {
            fs::create_dir_all(scratch)
                .with_context(|| format!("creating {}", scratch.display()))?;
            let opts = Options {
                whiteouts: false,
                privileged: false,
            };
            extract::extract(open_stream(path)?, scratch, opts).with_context(|| {
                format!(
                    "unpacking the image archive {} (is it a complete tar file?)",
                    path.display()
                )
            })?;
            scratch.to_path_buf()
        };
        let root = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        Ok(Source { root })
    }

    /// The path of the archive member `rel`, which must resolve (symlinks included) to a
    /// regular file inside the archive.
    pub fn file(&self, rel: &str) -> Result<PathBuf> {
        let Some(clean) = clean_path(Path::new(rel))? else {
            bail!("the archive names its root directory {rel:?} as a file");
        };
        let p = self.root.join(clean);
        let real = p.canonicalize().with_context(|| {
            format!("the archive names {rel:?}, which it does not contain (truncated or incomplete archive?)")
        })?;
        if !real.starts_with(&self.root) {
            bail!("the archive member {rel:?} points outside the archive; refused");
        }
        if !real.is_file() {
            bail!("the archive member {rel:?} is not a regular file");
        }
        Ok(real)
    }

    /// Whether the archive has a member `rel` (without checking it further).
    pub fn has(&self, rel: &str) -> bool {
        self.root.join(rel).exists()
    }

    /// Reads a JSON member.
    pub fn json<T: serde::de::DeserializeOwned>(&self, rel: &str) -> Result<T> {
        let p = self.file(rel)?;
        let text = fs::read(&p).with_context(|| format!("reading {rel}"))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {rel} of the archive"))
    }

    /// The blob `blobs/<alg>/<hex>` of an OCI digest `sha256:<hex>`, after checking that its
    /// content has that digest.
    pub fn verified_blob(&self, digest: &str) -> Result<PathBuf> {
        let hex = parse_digest(digest)?;
        let p = self.file(&format!("blobs/sha256/{hex}"))?;
        verify(&p, &hex, digest)?;
        Ok(p)
    }
}

/// Checks that the file at `p` has the sha256 `hex`.
pub fn verify(p: &Path, hex: &str, what: &str) -> Result<()> {
    let got = sha256_file(p)?;
    if got != hex {
        bail!(
            "blob {what} is corrupt: its content has digest sha256:{got} (truncated or damaged \
             archive?)"
        );
    }
    Ok(())
}

/// The hex part of `sha256:<64 hex>`; any other algorithm or shape is refused.
pub fn parse_digest(d: &str) -> Result<String> {
    let Some(hex) = d.strip_prefix("sha256:") else {
        bail!("unsupported digest {d:?}: only sha256 is supported");
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("malformed digest {d:?}");
    }
    Ok(hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let h = "a".repeat(64);
        assert_eq!(parse_digest(&format!("sha256:{h}")).unwrap(), h);
        assert!(parse_digest("sha512:abc").is_err());
        assert!(parse_digest("sha256:../../etc").is_err());
        let mut r = HashReader::new(&b"abc"[..]);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(
            r.digest(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
