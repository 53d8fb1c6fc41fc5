//! Resolving a container path inside a rootfs on the host, following symlinks as if the
//! rootfs were `/`, so that a symlink in an image can never lead a mount outside it.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Most symlinks followed while resolving one path (as the kernel's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// Resolves `path` (absolute or relative, taken as inside the container) to a host path
/// under `root`. Symlinks are followed with `root` as `/`; `..` never climbs above `root`;
/// components that do not exist are kept as they are (they will be created).
pub(crate) fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    // Components still to walk, in reverse order (so pop() gives the next one).
    let mut todo: Vec<OsString> = components(path);
    todo.reverse();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut candidate = root.to_path_buf();
        candidate.extend(&done);
        candidate.push(&c);
        match std::fs::symlink_metadata(&candidate) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links resolving {} in {}",
                        path.display(),
                        root.display()
                    )));
                }
                let target = std::fs::read_link(&candidate)?;
                if target.is_absolute() {
                    done.clear();
                }
                let mut more = components(&target);
                more.reverse();
                todo.extend(more);
            }
            _ => done.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&done);
    Ok(out)
}

/// Resolves the parent of `path` in `root` and appends the last component unresolved
/// (for creating a symlink or a node at `path` itself).
pub(crate) fn resolve_parent_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let parent = path.parent().unwrap_or(Path::new("/"));
    Ok(resolve_in_root(root, parent)?.join(name))
}

/// Normal and `..` components of `p` (roots and `.` dropped).
fn components(p: &Path) -> Vec<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn resolves_inside_root() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/lib")).expect("mkdir");
        symlink("/usr/lib", root.join("lib")).expect("abs link");
        symlink("../../etc", root.join("usr/lib/up")).expect("rel link");
        symlink("/", root.join("escape")).expect("root link");
        symlink("loop2", root.join("loop1")).expect("loop");
        symlink("loop1", root.join("loop2")).expect("loop");

        let r = |p: &str| resolve_in_root(root, Path::new(p)).expect(p);
        assert_eq!(r("/lib/x"), root.join("usr/lib/x"));
        assert_eq!(r("/lib/up/passwd"), root.join("etc/passwd"));
        assert_eq!(r("/../../../proc"), root.join("proc"));
        assert_eq!(r("/escape/etc"), root.join("etc"));
        assert_eq!(r("/a/./b/../c"), root.join("a/c"));
        assert_eq!(r("/"), root.to_path_buf());
        assert!(resolve_in_root(root, Path::new("/loop1/x")).is_err());
        assert_eq!(
            resolve_parent_in_root(root, Path::new("/lib")).expect("parent"),
            root.join("lib")
        );
        assert_eq!(
            resolve_parent_in_root(root, Path::new("/lib/z")).expect("parent"),
            root.join("usr/lib/z")
        );
    }
}
