//! Resolving `--user` (`uid[:gid]` or `name[:group]`) against the image's /etc/passwd and
//! /etc/group, as Docker does.

use std::path::{Path, PathBuf};

use crate::mounts::path::resolve_in_root;

/// A user resolved to numbers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (from /etc/group membership), without the primary one.
    pub additional_gids: Vec<u32>,
}

/// One line of /etc/passwd.
struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
}

/// One line of /etc/group.
struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The text of `file` (e.g. `etc/passwd`) in the topmost of `roots` that has it, each root
/// taken as the container's `/` (symlinks cannot lead outside it).
fn read_in_roots(roots: &[PathBuf], file: &str) -> Option<String> {
    roots.iter().find_map(|r| {
        let p = resolve_in_root(r, Path::new(file)).ok()?;
        std::fs::read_to_string(p).ok()
    })
}

fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Passwd {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Group {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Checks the syntax of a user spec without looking anything up; `Some` when it is fully
/// numeric (`uid` or `uid:gid`), so that no file is needed.
pub(crate) fn numeric(spec: &str) -> Result<Option<(u32, Option<u32>)>, String> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group.is_some_and(str::is_empty) {
        return Err(format!(
            "invalid user {spec:?}: use uid, uid:gid, name or name:group"
        ));
    }
    let num = |s: &str| -> Option<u32> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let uid = num(user);
    let gid = group.map(num);
    if user.bytes().all(|b| b.is_ascii_digit()) && uid.is_none() {
        return Err(format!("invalid user {spec:?}: uid out of range"));
    }
    Ok(match (uid, gid) {
        (Some(u), None) => Some((u, None)),
        (Some(u), Some(Some(g))) => Some((u, Some(g))),
        _ => None,
    })
}

/// Resolves `spec` with the /etc/passwd and /etc/group of the topmost of `roots` holding
/// them. A numeric uid not in passwd gets gid 0, as in Docker; a name must exist.
pub(crate) fn resolve(spec: &str, roots: &[PathBuf]) -> Result<ResolvedUser, String> {
    numeric(spec)?;
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = parse_passwd(&read_in_roots(roots, "/etc/passwd").unwrap_or_default());
    let groups = parse_group(&read_in_roots(roots, "/etc/group").unwrap_or_default());
    let is_num = |s: &str| s.bytes().all(|b| b.is_ascii_digit());

    let (uid, mut gid, name) = if is_num(user) {
        let uid: u32 = user
            .parse()
            .map_err(|_| format!("invalid user {spec:?}: uid out of range"))?;
        match passwd.iter().find(|p| p.uid == uid) {
            Some(p) => (uid, p.gid, Some(p.name.clone())),
            None => (uid, 0, None),
        }
    } else {
        let p = passwd.iter().find(|p| p.name == user).ok_or_else(|| {
            format!("unable to find user {user}: no matching entries in the image's /etc/passwd")
        })?;
        (p.uid, p.gid, Some(p.name.clone()))
    };
    if let Some(g) = group {
        gid =
            if is_num(g) {
                g.parse()
                    .map_err(|_| format!("invalid user {spec:?}: gid out of range"))?
            } else {
                groups.iter().find(|x| x.name == g).map(|x| x.gid).ok_or_else(|| {
                format!("unable to find group {g}: no matching entries in the image's /etc/group")
            })?
            };
    }
    let mut additional_gids: Vec<u32> = match &name {
        Some(n) => groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == n) && g.gid != gid)
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("tempdir");
        let etc = tmp.path().join("etc");
        std::fs::create_dir_all(&etc).expect("mkdir");
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:100::/:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(
            etc.join("group"),
            "root:x:0:\nusers:x:100:\nalice:x:1000:\nwheel:x:10:alice,bob\naudio:x:29:bob\n",
        )
        .expect("group");
        tmp
    }

    #[test]
    fn resolves_names_and_numbers() {
        let img = image();
        let roots = vec![img.path().to_path_buf()];
        let r = |s: &str| resolve(s, &roots);
        assert_eq!(
            r("alice").expect("alice"),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10]
            }
        );
        assert_eq!(r("bob").expect("bob").additional_gids, vec![10, 29]);
        assert_eq!(r("1000").expect("num").gid, 1000);
        assert_eq!(
            r("4242").expect("unknown num"),
            ResolvedUser::default_uid(4242)
        );
        assert_eq!(r("alice:wheel").expect("group").gid, 10);
        assert_eq!(r("5:7").expect("pair").gid, 7);
        let e = r("mallory").expect_err("unknown");
        assert!(e.contains("unable to find user mallory"), "{e}");
        assert!(r("alice:nogroup").is_err());
        assert!(r(":1").is_err());
        assert!(r("1:").is_err());
        assert!(r("99999999999").is_err());
    }

    #[test]
    fn numeric_needs_no_files() {
        assert_eq!(numeric("7").expect("7"), Some((7, None)));
        assert_eq!(numeric("7:8").expect("7:8"), Some((7, Some(8))));
        assert_eq!(numeric("alice").expect("name"), None);
        assert_eq!(resolve("7:8", &[]).expect("no files").uid, 7);
        assert!(resolve("alice", &[]).is_err());
    }

    impl ResolvedUser {
        fn default_uid(uid: u32) -> ResolvedUser {
            ResolvedUser {
                uid,
                ..ResolvedUser::default()
            }
        }
    }
}
