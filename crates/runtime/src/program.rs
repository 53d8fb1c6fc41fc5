//! The container's program: found like execvp(3) and exec'd, but never the runtime's own
//! executable.
//!
//! CVE-2019-5736: a container whose program resolves to the runtime's binary (a symlink to
//! /proc/self/exe, or a script whose `#!` line names it) makes the runtime re-execute
//! itself inside the container. The container's processes can then open /proc/<pid>/exe
//! and, once no process runs the binary any more, write to the host's runtime. runc and
//! crun re-execute themselves from a sealed copy of their binary at every command, which
//! costs a process start each time. weft does so only where the container's processes run
//! alongside, and checks the program everywhere:
//! - [`ExecArgs::exec`] opens each candidate path (following symlinks and /proc's magic
//!   links) and compares it, by device and inode, with the runtime's executable; so are a
//!   script's interpreters (`#!`, as deep as the kernel follows them). A match is refused.
//! - The init and `exec`'s process are non-dumpable while they run weft's code, so the
//!   container's processes cannot open their /proc/<pid>/exe ([`make_non_dumpable`]).
//! - The kernel resolves the path again at execve(2): a process already running in the
//!   container could swap a checked file for a link to /proc/self/exe in between. Such
//!   processes exist only once the container runs, when the runtime enters it for `exec`
//!   alone, and `exec` (weft's and weft-runc's) first re-executes itself from a read-only
//!   bind mount of its binary ([`reexec_read_only`], about 0.8 ms): what a process that
//!   lost that race would expose cannot be written. Before `start` no other process is in
//!   the container, so the init's check has no race to lose.
//!
//! One corner is left: the check runs with the process's final user and capabilities, so a
//! script it may not read is not followed to its interpreter (the kernel reads it anyway).
//! For the init that matters only for root in a container without CAP_DAC_OVERRIDE and
//! CAP_DAC_READ_SEARCH and without a user namespace, running such a script as its program.

use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

use nix::errno::Errno;

/// `PATH` searched when the environment has none.
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The errno with which [`ExecArgs::exec`] reports that it refused the runtime's own
/// executable (execve(2) never returns this one).
pub(crate) const REFUSED: Errno = Errno::ENOTUNIQ;

/// How deep the kernel follows `#!` interpreters (binfmt_script's recursion limit).
const MAX_INTERPRETERS: usize = 4;

/// Device and inode of the runtime's executable, read once (so that the init can read it
/// before its root changes); `None` when /proc/self/exe cannot be read.
pub(crate) fn runtime_identity() -> Option<(u64, u64)> {
    static ID: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    *ID.get_or_init(|| {
        std::fs::metadata("/proc/self/exe")
            .ok()
            .map(|m| (m.dev(), m.ino()))
    })
}

/// Makes this process non-dumpable: other processes of its uid (the container's) may not
/// open its /proc/<pid>/exe, mem or fds. An execve of another program resets it.
pub(crate) fn make_non_dumpable() -> Result<(), Errno> {
    // SAFETY: prctl(2) with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Set across [`reexec_read_only`]'s execve, so that it cannot loop.
const SEALED_ENV: &str = "_WEFT_SEALED";

/// Re-executes this process (same pid, arguments and environment) from a read-only bind
/// mount of its own executable, in a private mount namespace, unless it already runs from
/// a read-only mount. For commands whose processes enter a running container (`exec`),
/// where the container's own processes run alongside: should one of them win the race
/// that [`ExecArgs::exec`]'s check leaves open and make such a process run the runtime's
/// binary, its /proc/<pid>/exe then leads to a read-only mount, through which the host's
/// binary cannot be written. Costs one more start of the binary (runc and crun pay that at
/// every command). A deleted executable (replaced since this process started) is left as
/// it is: writes to it reach no file.
pub fn reexec_read_only() -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    use std::os::unix::process::CommandExt;

    let exe_ro = nix::sys::statvfs::statvfs("/proc/self/exe")
        .map(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
    if exe_ro == Ok(true) {
        return Ok(());
    }
    if std::env::var_os(SEALED_ENV).is_some() {
        return Err(
            "re-executed from a read-only bind mount of the weft executable, yet it \
             does not run from a read-only mount"
                .into(),
        );
    }
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| format!("find the weft executable (/proc/self/exe): {e}"))?;
    if exe.to_string_lossy().ends_with(" (deleted)") {
        return Ok(());
    }
    let none: Option<&str> = None;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare the mount namespace: {e}"))?;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| format!("make / private: {e}"))?;
    mount(Some(&exe), &exe, none, MsFlags::MS_BIND, none)
        .map_err(|e| format!("bind {} onto itself: {e}", exe.display()))?;
    let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(none, &exe, none, ro, none)
        .map_err(|e| format!("remount {} read-only: {e}", exe.display()))?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into());
    let err = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env(SEALED_ENV, "1")
        .exec();
    Err(format!("re-execute {}: {err}", exe.display()))
}

/// An argv, an envp and the paths to try, prepared so that [`ExecArgs::exec`] only makes
/// system calls (usable after fork in a multi-threaded process).
pub(crate) struct ExecArgs {
    arg0: String,
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp_ptrs: Vec<*const c_char>,
    candidates: Vec<CString>,
    /// [`runtime_identity`], read before the fork.
    runtime: Option<(u64, u64)>,
}

impl ExecArgs {
    /// Prepares `args` (looked up in the `PATH` of `env` unless `args[0]` has a '/').
    pub fn new(args: &[String], env: &[String]) -> Result<ExecArgs, String> {
        let cstr = |s: &String| {
            CString::new(s.as_bytes()).map_err(|_| format!("{s:?} contains a NUL byte"))
        };
        let argv: Vec<CString> = args.iter().map(cstr).collect::<Result<_, _>>()?;
        let envp: Vec<CString> = env.iter().map(cstr).collect::<Result<_, _>>()?;
        let arg0 = args.first().cloned().unwrap_or_default();
        if arg0.is_empty() {
            return Err("no command to exec".into());
        }
        let candidates = exec_candidates(&arg0, env)
            .iter()
            .map(cstr)
            .collect::<Result<_, _>>()?;
        let ptrs = |v: &Vec<CString>| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Ok(ExecArgs {
            arg0,
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            _argv: argv,
            _envp: envp,
            candidates,
            runtime: runtime_identity(),
        })
    }

    /// Tries each candidate path like execvp(3); returns only on failure, with the errno to
    /// report (EACCES if some candidate was not executable, else the last other error).
    /// Async-signal-safe: no allocation.
    pub fn exec(&self) -> Errno {
        let mut err = Errno::ENOENT;
        let mut seen_eacces = false;
        for c in &self.candidates {
            let e = match self.check(c) {
                Ok(()) => {
                    // SAFETY: all pointers come from CStrings owned by self, arrays
                    // NULL-terminated.
                    unsafe {
                        libc::execve(c.as_ptr(), self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr())
                    };
                    Errno::last()
                }
                Err(e) => e,
            };
            match e {
                Errno::ENOENT | Errno::ENOTDIR => {}
                Errno::EACCES => seen_eacces = true,
                e => {
                    err = e;
                    break;
                }
            }
        }
        if seen_eacces && err == Errno::ENOENT {
            Errno::EACCES
        } else {
            err
        }
    }

    /// Checks that `path` and its `#!` interpreters are not the runtime's executable:
    /// [`REFUSED`] if one is, the error of opening `path` if it cannot be opened (as
    /// execve would report it). Async-signal-safe: system calls on stack buffers only.
    fn check(&self, path: &CStr) -> Result<(), Errno> {
        let Some(runtime) = self.runtime else {
            return Ok(());
        };
        let mut buf = [0u8; 256];
        // `path`, then each interpreter, which `buf` holds NUL-terminated once read.
        let mut next: *const c_char = path.as_ptr();
        for depth in 0..=MAX_INTERPRETERS {
            // SAFETY (whole block): `next` is NUL-terminated (a CStr, or ended in buf below);
            // fstat and pread into buffers of this frame, on fds closed here.
            unsafe {
                // O_PATH: opens whatever it is (a fifo would block a plain open, a device
                // may act on one) without reading it.
                let fd = libc::open(next, libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 {
                    // The program must open; a missing interpreter is execve's to report.
                    return if depth == 0 {
                        Err(Errno::last())
                    } else {
                        Ok(())
                    };
                }
                let mut st: libc::stat = std::mem::zeroed();
                let stat_ok = libc::fstat(fd, &mut st) == 0;
                libc::close(fd);
                if !stat_ok {
                    return Ok(());
                }
                if (st.st_dev as u64, st.st_ino as u64) == runtime {
                    return Err(REFUSED);
                }
                if st.st_mode & libc::S_IFMT != libc::S_IFREG {
                    return Ok(()); // not executable: execve says so
                }
                // A script? (An unreadable file is not checked further: see the module.)
                let fd = libc::open(next, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC);
                if fd < 0 {
                    return Ok(());
                }
                let n = libc::pread(fd, buf.as_mut_ptr().cast(), buf.len() - 1, 0);
                libc::close(fd);
                match interpreter(&mut buf[..n.max(0) as usize + 1]) {
                    Some(p) => next = p,
                    None => return Ok(()),
                }
            }
        }
        Ok(())
    }

    /// `exec "foo": No such file or directory`.
    pub fn error_message(&self, err: Errno) -> String {
        if err == REFUSED {
            return format!(
                "exec {:?}: refused: it is (or its #! interpreter is) the container runtime's \
                 own executable, which a container must not run (CVE-2019-5736)",
                self.arg0
            );
        }
        format!("exec {:?}: {}", self.arg0, err.desc())
    }
}

/// The interpreter of a script whose first bytes are `head` (its last byte is free for a
/// NUL): the path after `#!` and optional blanks, NUL-terminated in place, as
/// binfmt_script reads it. `None` when `head` is not a script's.
fn interpreter(head: &mut [u8]) -> Option<*const c_char> {
    let len = head.len().checked_sub(1)?;
    if len < 2 || &head[..2] != b"#!" {
        return None;
    }
    let start = 2 + head[2..len]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    let end = start
        + head[start..len]
            .iter()
            .take_while(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\0'))
            .count();
    if end == start {
        return None;
    }
    head[end] = 0;
    Some(head[start..].as_ptr().cast())
}

/// The paths `arg0` may be executed from: itself when it contains '/', else each
/// directory of `PATH` (from `env`, or a default).
pub(crate) fn exec_candidates(arg0: &str, env: &[String]) -> Vec<String> {
    if arg0.contains('/') {
        return vec![arg0.to_string()];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(FALLBACK_PATH);
    path.split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| format!("{}/{arg0}", d.trim_end_matches('/')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates() {
        let env = vec!["A=1".to_string(), "PATH=/bin:/usr/bin/".to_string()];
        assert_eq!(exec_candidates("sh", &env), ["/bin/sh", "/usr/bin/sh"]);
        assert_eq!(exec_candidates("./x", &env), ["./x"]);
        assert_eq!(exec_candidates("/bin/sh", &[]), ["/bin/sh"]);
        assert_eq!(exec_candidates("ls", &[]).len(), 6);
    }

    #[test]
    fn exec_of_missing_command_reports_enoent() {
        let e = ExecArgs::new(
            &["weft-no-such-cmd".into()],
            &["PATH=/nonexistent:/also/not".into()],
        )
        .expect("args");
        let err = e.exec();
        assert_eq!(err, Errno::ENOENT);
        assert_eq!(
            e.error_message(err),
            "exec \"weft-no-such-cmd\": No such file or directory"
        );
    }

    #[test]
    fn exec_of_non_executable_reports_eacces() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("f"), "x").expect("write");
        let env = vec![format!("PATH={}", tmp.path().display())];
        let e = ExecArgs::new(&["f".into()], &env).expect("args");
        assert_eq!(e.exec(), Errno::EACCES);
    }

    /// A program that resolves to the runtime's own executable (here the test binary, which
    /// is /proc/self/exe of this process) is refused, directly, through a symlink, as the
    /// `#!` interpreter of a script, or of a script's interpreter.
    #[test]
    fn the_runtimes_own_executable_is_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path();
        std::os::unix::fs::symlink("/proc/self/exe", d.join("link")).expect("symlink");
        let script = |name: &str, text: &str| {
            std::fs::write(d.join(name), text).expect("write");
            std::fs::set_permissions(
                d.join(name),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .expect("chmod");
        };
        script("evil.sh", "#!/proc/self/exe\necho\n");
        script("spaced.sh", "#! \t/proc/self/exe -x\n");
        script("outer.sh", &format!("#!{}/evil.sh\n", d.display()));
        let env = vec![format!("PATH={}", d.display())];
        for prog in ["/proc/self/exe", "link", "evil.sh", "spaced.sh", "outer.sh"] {
            let e = ExecArgs::new(&[prog.into()], &env).expect("args");
            assert_eq!(e.exec(), REFUSED, "{prog}");
            assert!(e.error_message(REFUSED).contains("CVE-2019-5736"));
        }
        // Other scripts and missing interpreters are execve's business, as before: a script
        // whose interpreter does not exist fails with ENOENT from execve.
        script("other.sh", "#!/nonexistent/weft-interp\n");
        let e = ExecArgs::new(&["other.sh".into()], &env).expect("args");
        assert_eq!(e.exec(), Errno::ENOENT);
    }

    /// The check only looks: a fifo on the way (whose plain open would wait for a writer)
    /// is left to execve, which refuses it.
    #[test]
    fn a_fifo_is_not_opened_for_reading() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o755))
            .expect("mkfifo");
        let env = vec![format!("PATH={}", tmp.path().display())];
        let e = ExecArgs::new(&["fifo".into()], &env).expect("args");
        assert_eq!(e.exec(), Errno::EACCES);
    }

    #[test]
    fn interpreter_lines() {
        let mut b = *b"#!/bin/sh -e\n\0";
        let p = interpreter(&mut b).expect("script");
        // SAFETY: interpreter returns a pointer into b, NUL-terminated.
        assert_eq!(unsafe { CStr::from_ptr(p) }, c"/bin/sh");
        let mut b = *b"#!  /usr/bin/env\0";
        let p = interpreter(&mut b).expect("script");
        assert_eq!(unsafe { CStr::from_ptr(p) }, c"/usr/bin/env");
        for head in [&b"\x7fELF\0"[..], b"#!\n\0", b"#\0", b"\0"] {
            assert!(interpreter(&mut head.to_vec()).is_none(), "{head:?}");
        }
    }

    #[test]
    fn nul_bytes_are_rejected() {
        assert!(ExecArgs::new(&["a\0b".into()], &[]).is_err());
    }
}
