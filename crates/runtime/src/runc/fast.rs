//! The command lines engines send at every container (`create`, `start`, `state`, `kill`,
//! `delete`), read without building clap's command tree: clap takes about 0.2 ms of each
//! start of weft-runc here, which starts three times per container (bench/README.md,
//! "runtime").
//!
//! Only plain forms are read: the known flags as `--flag value`, `--flag=value` or `-b
//! value`, values and ids that do not start with `-`, each flag at most once. Anything else
//! (help, version, another command, an unknown or repeated flag, `--`, a cluster of short
//! flags) gives `None` and goes to clap, which stays the reference for the grammar, its
//! errors and its help; a test checks that both read every plain form alike.

use std::path::PathBuf;

use super::cli::{Cli, Command, CreateArgs, LogFormat, DEFAULT_ROOT};

/// A flag: long name, short name, whether it takes a value.
type FlagSpec = (&'static str, Option<char>, bool);

/// Flags (global or of the command) as they are read: name → value (`None`: a switch).
struct Flags {
    seen: Vec<(&'static str, Option<String>)>,
}

impl Flags {
    /// Records `name`; a second time is not a plain form.
    fn put(&mut self, name: &'static str, value: Option<String>) -> Option<()> {
        if self.seen.iter().any(|(n, _)| *n == name) {
            return None;
        }
        self.seen.push((name, value));
        Some(())
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.seen
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, name: &str) -> bool {
        self.seen.iter().any(|(n, _)| *n == name)
    }
}

/// The flags each command takes.
fn command_flags(cmd: &str) -> Option<&'static [FlagSpec]> {
    Some(match cmd {
        "create" => &[
            ("bundle", Some('b'), true),
            ("pid-file", None, true),
            ("console-socket", None, true),
            ("no-pivot", None, false),
            ("no-new-keyring", None, false),
            ("preserve-fds", None, true),
        ],
        "start" | "state" => &[],
        "kill" => &[("all", Some('a'), false)],
        "delete" => &[("force", Some('f'), false)],
        _ => return None,
    })
}

/// The global flags.
const GLOBAL: &[FlagSpec] = &[
    ("root", None, true),
    ("log", None, true),
    ("log-format", None, true),
    ("debug", None, false),
    ("systemd-cgroup", None, false),
    ("rootless", None, true),
];

/// `args` (with the program name first) read as clap would, or `None` when it is not one of
/// the plain forms this reads.
pub(crate) fn parse(args: &[String]) -> Option<Cli> {
    let mut flags = Flags { seen: vec![] };
    let mut cmd: Option<&str> = None;
    let mut positional: Vec<String> = vec![];
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let plain_value = |v: &String| (!v.is_empty() && !v.starts_with('-')).then(|| v.clone());
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let (n, _, takes) = GLOBAL
                .iter()
                .chain(cmd.and_then(command_flags).unwrap_or(&[]))
                .copied()
                .find(|(n, _, _)| *n == name)?;
            let value = match (takes, inline) {
                (true, Some(v)) if !v.is_empty() => Some(v),
                (true, None) => Some(plain_value(it.next()?)?),
                (false, None) => None,
                _ => return None,
            };
            flags.put(n, value)?;
        } else if let Some(short) = a.strip_prefix('-') {
            let mut chars = short.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return None;
            };
            let (n, _, takes) = cmd
                .and_then(command_flags)?
                .iter()
                .copied()
                .find(|(_, s, _)| *s == Some(c))?;
            let value = if takes {
                Some(plain_value(it.next()?)?)
            } else {
                None
            };
            flags.put(n, value)?;
        } else if cmd.is_none() {
            command_flags(a)?;
            cmd = Some(a.as_str());
        } else {
            positional.push(a.clone());
        }
    }
    let log_format = match flags.value("log-format") {
        None => LogFormat::Text,
        Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(_) => return None,
    };
    let one_id = |p: &[String]| match p {
        [id] => Some(id.clone()),
        _ => None,
    };
    let command = match cmd? {
        "create" => Command::Create(CreateArgs {
            bundle: PathBuf::from(flags.value("bundle").unwrap_or(".")),
            pid_file: flags.value("pid-file").map(PathBuf::from),
            console_socket: flags.value("console-socket").map(PathBuf::from),
            no_pivot: flags.has("no-pivot"),
            no_new_keyring: flags.has("no-new-keyring"),
            preserve_fds: match flags.value("preserve-fds") {
                None => 0,
                Some(v) => v.parse().ok()?,
            },
            id: one_id(&positional)?,
        }),
        "start" => Command::Start {
            id: one_id(&positional)?,
        },
        "state" => Command::State {
            id: one_id(&positional)?,
        },
        "kill" => match positional.as_slice() {
            [id] => Command::Kill {
                all: flags.has("all"),
                id: id.clone(),
                signal: None,
            },
            [id, sig] => Command::Kill {
                all: flags.has("all"),
                id: id.clone(),
                signal: Some(sig.clone()),
            },
            _ => return None,
        },
        "delete" if !positional.is_empty() => Command::Delete {
            force: flags.has("force"),
            ids: positional,
        },
        _ => return None,
    };
    Some(Cli {
        root: PathBuf::from(flags.value("root").unwrap_or(DEFAULT_ROOT)),
        log: flags.value("log").map(PathBuf::from),
        log_format,
        debug: flags.has("debug"),
        systemd_cgroup: flags.has("systemd-cgroup"),
        rootless: flags.value("rootless").map(String::from),
        command,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn argv(s: &str) -> Vec<String> {
        std::iter::once("weft-runc")
            .chain(s.split_whitespace())
            .map(String::from)
            .collect()
    }

    /// What clap reads, as text (`Cli` has no PartialEq).
    fn clap(s: &str) -> Option<String> {
        Cli::try_parse_from(argv(s)).ok().map(|c| format!("{c:?}"))
    }

    #[test]
    fn the_plain_forms_read_as_clap_reads_them() {
        for s in [
            "create bench",
            "--root /r create --bundle /b bench",
            "--root=/r --log /l --log-format json create --bundle=/b --pid-file /p --console-socket /s --no-pivot c1",
            "--systemd-cgroup --rootless true create -b /b --no-new-keyring --preserve-fds 0 c1",
            "create c1 --bundle /b",
            "create --root /r --bundle /b c1",
            "--debug start c1",
            "start c1 --root /r",
            "--root /r state c1",
            "kill c1",
            "kill c1 KILL",
            "kill -a c1 9",
            "--log-format text kill --all c1 SIGTERM",
            "delete c1",
            "delete -f c1",
            "--root /r delete --force c1 c2",
        ] {
            let fast = parse(&argv(s)).map(|c| format!("{c:?}"));
            assert!(fast.is_some(), "the fast path reads {s:?}");
            assert_eq!(fast, clap(s), "{s:?}");
        }
    }

    #[test]
    fn anything_else_goes_to_clap() {
        for s in [
            "",
            "--help",
            "--version",
            "create --help",
            "list",
            "exec c1 sh",
            "features",
            "create",
            "create c1 c2",
            "create --bundle c1",
            "create --bundle -x c1",
            "create --bundle= c1",
            "create --pid-file /a --pid-file /b c1",
            "create -bx c1",
            "create --preserve-fds two c1",
            "--log-format xml start c1",
            "start",
            "start c1 c2",
            "start -- c1",
            "kill",
            "kill c1 KILL extra",
            "kill -af c1",
            "delete",
            "delete --force",
            "start --bundle /b c1",
            "--debug=yes start c1",
        ] {
            assert!(parse(&argv(s)).is_none(), "{s:?} is left to clap");
        }
    }
}
