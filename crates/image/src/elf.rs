//! The shared libraries an ELF program needs, found the way the dynamic loader finds them:
//! DT_RPATH (when there is no DT_RUNPATH), DT_RUNPATH, the directories of /etc/ld.so.conf
//! (standing in for its cache) and the default directories; breadth first, each DT_NEEDED name
//! resolved once (the loader also reuses a library it loaded under the same name).

use anyhow::{bail, Context, Result};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// What the loader needs to know about one ELF object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// PT_INTERP, the program interpreter.
    pub interpreter: Option<String>,
    /// DT_NEEDED names.
    pub needed: Vec<String>,
    /// DT_RPATH entries.
    pub rpath: Vec<String>,
    /// DT_RUNPATH entries.
    pub runpath: Vec<String>,
    /// ELFCLASS64.
    pub is_64: bool,
    /// e_machine.
    pub machine: u16,
}

/// Whether `path` starts with the ELF magic.
pub fn is_elf(path: &Path) -> bool {
    read_prefix(path, 4).is_some_and(|b| b.as_slice() == ELF_MAGIC)
}

fn read_prefix(path: &Path, n: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let mut b = vec![0u8; n];
    f.read_exact(&mut b).ok()?;
    Some(b)
}

/// Reads the dynamic-linking facts of the ELF file at `path`.
pub fn read_elf(path: &Path) -> Result<ElfInfo> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() < 4 || &bytes[..4] != ELF_MAGIC {
        bail!("{} is not an ELF file", path.display());
    }
    let elf = goblin::elf::Elf::parse(&bytes)
        .with_context(|| format!("parsing ELF file {}", path.display()))?;
    let split = |v: &[&str]| -> Vec<String> {
        v.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    };
    Ok(ElfInfo {
        interpreter: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
        is_64: elf.is_64,
        machine: elf.header.e_machine,
    })
}

/// Class and machine of an ELF file from its header, without reading the rest.
fn elf_kind(path: &Path) -> Option<(bool, u16)> {
    let h = read_prefix(path, 20)?;
    if &h[..4] != ELF_MAGIC {
        return None;
    }
    let is_64 = h[4] == 2;
    let machine = if h[5] == 2 {
        u16::from_be_bytes([h[18], h[19]])
    } else {
        u16::from_le_bytes([h[18], h[19]])
    };
    Some((is_64, machine))
}

/// The GNU multiarch triple of a machine, for the default library directories.
fn multiarch(is_64: bool, machine: u16) -> Option<&'static str> {
    use goblin::elf::header::{EM_386, EM_AARCH64, EM_ARM, EM_PPC64, EM_RISCV, EM_S390, EM_X86_64};
    Some(match (machine, is_64) {
        (EM_X86_64, true) => "x86_64-linux-gnu",
        (EM_386, false) => "i386-linux-gnu",
        (EM_AARCH64, true) => "aarch64-linux-gnu",
        (EM_ARM, false) => "arm-linux-gnueabihf",
        (EM_PPC64, true) => "powerpc64le-linux-gnu",
        (EM_S390, true) => "s390x-linux-gnu",
        (EM_RISCV, true) => "riscv64-linux-gnu",
        _ => return None,
    })
}

/// The loader's default directories for objects of this class and machine.
pub fn default_dirs(is_64: bool, machine: u16) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(t) = multiarch(is_64, machine) {
        v.push(PathBuf::from(format!("/lib/{t}")));
        v.push(PathBuf::from(format!("/usr/lib/{t}")));
    }
    if is_64 {
        v.push("/lib64".into());
        v.push("/usr/lib64".into());
    } else {
        v.push("/lib32".into());
        v.push("/usr/lib32".into());
    }
    v.push("/lib".into());
    v.push("/usr/lib".into());
    v
}

/// The directories listed by an ld.so.conf file, following `include` lines (with `*` globs in
/// the file name part).
pub fn ld_so_conf_dirs(conf: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    read_conf(conf, &mut out, &mut seen, 0);
    out
}

fn read_conf(conf: &Path, out: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>, depth: u32) {
    if depth > 8 || !seen.insert(conf.to_path_buf()) {
        return;
    }
    let Ok(text) = std::fs::read_to_string(conf) else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with("hwcap ") {
            continue;
        }
        if let Some(pat) = line.strip_prefix("include") {
            for pat in pat.split_whitespace() {
                let pat = match Path::new(pat).is_absolute() {
                    true => PathBuf::from(pat),
                    false => conf.parent().unwrap_or(Path::new("/")).join(pat),
                };
                for f in glob_file(&pat) {
                    read_conf(&f, out, seen, depth + 1);
                }
            }
            continue;
        }
        for d in line.split([':', ',', ' ', '\t']).filter(|s| !s.is_empty()) {
            let d = PathBuf::from(d.split('=').next().unwrap_or(d));
            if d.is_absolute() && !out.contains(&d) {
                out.push(d);
            }
        }
    }
}

/// Files matching a path whose last component may contain `*`, sorted.
fn glob_file(pat: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pat.parent(), pat.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    if !name.contains('*') {
        return vec![pat.to_path_buf()];
    }
    let parts: Vec<&str> = name.split('*').collect();
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(&parts, n)))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn wildcard(parts: &[&str], s: &str) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    let Some(mut s) = s.strip_prefix(first) else {
        return false;
    };
    for (i, p) in rest.iter().enumerate() {
        if i + 1 == rest.len() {
            return s.ends_with(p);
        }
        match s.find(p) {
            Some(j) => s = &s[j + p.len()..],
            None => return false,
        }
    }
    s.is_empty()
}

/// Expands $ORIGIN, $LIB and $PLATFORM in a DT_RPATH/DT_RUNPATH entry.
fn expand(entry: &str, origin: &Path, is_64: bool, machine: u16) -> Vec<PathBuf> {
    let origin = origin.to_string_lossy();
    let e = entry
        .replace("${ORIGIN}", &origin)
        .replace("$ORIGIN", &origin)
        .replace("${PLATFORM}", "x86_64")
        .replace("$PLATFORM", "x86_64");
    if e.contains("$LIB") || e.contains("${LIB}") {
        let mut libs = vec![if is_64 { "lib64" } else { "lib" }.to_string()];
        if let Some(t) = multiarch(is_64, machine) {
            libs.insert(0, format!("lib/{t}"));
        }
        libs.iter()
            .map(|l| PathBuf::from(e.replace("${LIB}", l).replace("$LIB", l)))
            .collect()
    } else {
        vec![PathBuf::from(e)]
    }
}

struct Object {
    path: PathBuf,
    info: ElfInfo,
}

/// The shared libraries `binary` needs, transitively, as paths on this host (the directory
/// where the loader would find each, not resolved through symlinks), the program interpreter
/// first. A statically linked program needs none.
pub fn elf_dependencies(binary: &Path) -> Result<Vec<PathBuf>> {
    let exe = read_elf(binary)?;
    let conf_dirs = ld_so_conf_dirs(Path::new("/etc/ld.so.conf"));
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some(interp) = &exe.interpreter {
        let p = PathBuf::from(interp);
        if !p.exists() {
            bail!(
                "the program interpreter {interp} of {} does not exist on this host",
                binary.display()
            );
        }
        out.push(p);
    }
    let exe_rpath = if exe.runpath.is_empty() {
        exe.rpath.clone()
    } else {
        Vec::new()
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue = VecDeque::from([Object {
        path: binary.to_path_buf(),
        info: exe.clone(),
    }]);
    while let Some(obj) = queue.pop_front() {
        let origin = std::fs::canonicalize(&obj.path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("/"));
        let exp = |v: &[String]| -> Vec<PathBuf> {
            v.iter()
                .flat_map(|e| expand(e, &origin, exe.is_64, exe.machine))
                .collect()
        };
        let mut dirs: Vec<PathBuf> = Vec::new();
        if obj.info.runpath.is_empty() {
            dirs.extend(exp(&obj.info.rpath));
            dirs.extend(exp(&exe_rpath));
        }
        dirs.extend(exp(&obj.info.runpath));
        dirs.extend(conf_dirs.iter().cloned());
        dirs.extend(default_dirs(exe.is_64, exe.machine));
        for name in &obj.info.needed {
            if !seen.insert(name.clone()) {
                continue;
            }
            let found = if name.contains('/') {
                Some(PathBuf::from(name)).filter(|p| p.exists())
            } else {
                dirs.iter()
                    .map(|d| d.join(name))
                    .find(|p| elf_kind(p) == Some((exe.is_64, exe.machine)))
            };
            let Some(path) = found else {
                bail!(
                    "library {name} needed by {} was not found (searched {}); install it on \
                     this host or list its directory in /etc/ld.so.conf.d",
                    obj.path.display(),
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            let info = read_elf(&path)?;
            if !out.contains(&path) {
                out.push(path.clone());
            }
            queue.push_back(Object { path, info });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_needs_libc_and_interpreter() {
        let deps = elf_dependencies(Path::new("/bin/sh")).unwrap();
        let names: Vec<String> = deps
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert!(names.iter().any(|n| n.starts_with("libc.so")), "{deps:?}");
        let interp = read_elf(Path::new("/bin/sh")).unwrap().interpreter.unwrap();
        assert_eq!(deps[0], PathBuf::from(&interp), "{deps:?}");
        assert!(deps.iter().all(|p| p.is_absolute() && p.exists()));
    }

    #[test]
    fn not_elf_is_an_error() {
        let err = elf_dependencies(Path::new("/etc/passwd")).unwrap_err();
        assert!(err.to_string().contains("not an ELF file"), "{err}");
    }

    #[test]
    fn conf_and_wildcards() {
        let dir = std::env::temp_dir().join(format!("weft-image-ldconf-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        std::fs::write(dir.join("ld.so.conf"), "# x\n/opt/a\ninclude d/*.conf\n").unwrap();
        std::fs::write(dir.join("d/1.conf"), "/opt/b:/opt/c\n").unwrap();
        std::fs::write(dir.join("d/2.txt"), "/opt/no\n").unwrap();
        assert_eq!(
            ld_so_conf_dirs(&dir.join("ld.so.conf")),
            vec![PathBuf::from("/opt/a"), "/opt/b".into(), "/opt/c".into()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(wildcard(&["a", "b"], "axxb"));
        assert!(!wildcard(&["a", "b"], "axxc"));
        assert!(wildcard(&[""], ""));
    }

    #[test]
    fn origin_expansion() {
        let v = expand(
            "$ORIGIN/../lib",
            Path::new("/opt/x/bin"),
            true,
            goblin::elf::header::EM_X86_64,
        );
        assert_eq!(v, vec![PathBuf::from("/opt/x/bin/../lib")]);
        let v = expand(
            "/usr/$LIB",
            Path::new("/"),
            true,
            goblin::elf::header::EM_X86_64,
        );
        assert_eq!(v[0], PathBuf::from("/usr/lib/x86_64-linux-gnu"));
    }
}
