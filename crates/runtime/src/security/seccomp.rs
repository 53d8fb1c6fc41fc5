//! Seccomp: the OCI `linux.seccomp` section compiled to BPF with `seccompiler`, and the
//! system call that installs a program.
//!
//! seccompiler gives every filter one match action, so the OCI rules are grouped by
//! action and each group becomes one filter; the kernel runs them all and keeps the most
//! restrictive verdict (on a tie, the filter installed last wins). Syscall names the
//! running architecture does not have are skipped, as runc does.

use std::collections::{BTreeMap, BTreeSet};

use nix::errno::Errno;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator};
use seccompiler::{sock_filter, TargetArch};
use serde_json::{json, Value};

/// One compiled BPF program.
pub(crate) type Program = Vec<sock_filter>;

/// The architecture filters are built for.
fn target_arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        format!(
            "seccomp filters are not supported on {}; run the container privileged or without a seccomp profile",
            std::env::consts::ARCH
        )
    })
}

/// The seccompiler JSON form of an action.
fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<Value, String> {
    let errno = errno.unwrap_or(libc::EPERM as u32);
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => json!("allow"),
        LinuxSeccompAction::ScmpActErrno => json!({ "errno": errno }),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            json!("kill_thread")
        }
        LinuxSeccompAction::ScmpActKillProcess => json!("kill_process"),
        LinuxSeccompAction::ScmpActTrap => json!("trap"),
        LinuxSeccompAction::ScmpActLog => json!("log"),
        LinuxSeccompAction::ScmpActTrace => json!({ "trace": errno }),
        LinuxSeccompAction::ScmpActNotify => {
            return Err("seccomp action SCMP_ACT_NOTIFY is not supported by this runtime".into())
        }
    })
}

/// Rules of one syscall within one action group.
#[derive(Default)]
struct SyscallRules {
    /// Matches whatever the arguments.
    any: bool,
    /// Alternatives, each a list of and-bound conditions.
    conditions: Vec<Vec<Value>>,
}

/// The syscall name seccompiler rejected, from its error message (`Invalid syscall
/// name: NAME for given arch: ...`).
fn rejected_name(err: &str) -> Option<String> {
    let rest = err.split("Invalid syscall name: ").nth(1)?;
    Some(rest.split(" for given arch").next()?.trim().to_string())
}

/// Whether the running architecture has a syscall of this name.
fn known(name: &str, arch: TargetArch) -> bool {
    let probe = json!({ "probe": {
        "mismatch_action": "allow",
        "match_action": "trap",
        "filter": [{ "syscall": name }],
    }});
    seccompiler::compile_from_json(probe.to_string().as_bytes(), arch).is_ok()
}

/// Compiles `profile` into the programs to install, in order (empty: nothing to install).
pub(crate) fn compile(profile: &LinuxSeccomp) -> Result<Vec<Program>, String> {
    let arch = target_arch()?;
    let default = action(profile.default_action(), profile.default_errno_ret())?;
    // action (as JSON text) -> syscall name -> rules
    let mut groups: BTreeMap<String, BTreeMap<String, SyscallRules>> = BTreeMap::new();
    for sc in profile.syscalls().iter().flatten() {
        let act = action(sc.action(), sc.errno_ret())?;
        if act == default {
            continue;
        }
        let mut conds = Vec::new();
        for a in sc.args().iter().flatten() {
            if a.index() > 5 {
                return Err(format!(
                    "seccomp rule for {:?} checks argument {}, but syscalls have 6 (0 to 5)",
                    sc.names(),
                    a.index()
                ));
            }
            let op = match a.op() {
                LinuxSeccompOperator::ScmpCmpEq => json!("eq"),
                LinuxSeccompOperator::ScmpCmpNe => json!("ne"),
                LinuxSeccompOperator::ScmpCmpLt => json!("lt"),
                LinuxSeccompOperator::ScmpCmpLe => json!("le"),
                LinuxSeccompOperator::ScmpCmpGt => json!("gt"),
                LinuxSeccompOperator::ScmpCmpGe => json!("ge"),
                LinuxSeccompOperator::ScmpCmpMaskedEq => json!({ "masked_eq": a.value() }),
            };
            // For MASKED_EQ, libseccomp compares (arg & value) with valueTwo.
            let val = match a.op() {
                LinuxSeccompOperator::ScmpCmpMaskedEq => a.value_two().unwrap_or(0),
                _ => a.value(),
            };
            conds.push(json!({ "index": a.index(), "type": "qword", "op": op, "val": val }));
        }
        let group = groups.entry(act.to_string()).or_default();
        for name in sc.names() {
            let r = group.entry(name.clone()).or_default();
            if conds.is_empty() {
                r.any = true;
            } else {
                r.conditions.push(conds.clone());
            }
        }
    }

    let allow = json!("allow").to_string();
    let mut filters: Vec<(String, Value)> = Vec::new();
    // The group whose verdict is "allow" carries the default action; every other group
    // falls through to "allow" and only adds its own verdict.
    let allow_rules = groups.remove(&allow);
    if default != json!("allow") {
        let rules = allow_rules.unwrap_or_default();
        filters.push(("0default".into(), filter(&default, &json!("allow"), &rules)));
    }
    for (i, (act, rules)) in groups.iter().enumerate() {
        if rules.is_empty() {
            continue;
        }
        let act: Value = serde_json::from_str(act).map_err(|e| e.to_string())?;
        filters.push((
            format!("{}group", i + 1),
            filter(&json!("allow"), &act, rules),
        ));
    }
    let mut programs = Vec::new();
    for (name, mut f) in filters {
        // Names the architecture lacks are dropped one by one as seccompiler names them.
        let mut dropped = BTreeSet::new();
        let map = loop {
            let doc = json!({ &name: &f });
            match seccompiler::compile_from_json(doc.to_string().as_bytes(), arch) {
                Ok(map) => break map,
                Err(e) => {
                    let msg = e.to_string();
                    let bad = match rejected_name(&msg) {
                        Some(n) if !dropped.contains(&n) => n,
                        // An unexpected message: find the unknown names the slow way.
                        _ => {
                            drop_unknown(&mut f, arch);
                            let doc = json!({ &name: &f });
                            break seccompiler::compile_from_json(doc.to_string().as_bytes(), arch)
                                .map_err(|e| format!("compile the seccomp profile: {e}"))?;
                        }
                    };
                    drop_name(&mut f, &bad);
                    dropped.insert(bad);
                }
            }
        };
        if let Some(p) = map.into_iter().find_map(|(k, v)| (k == name).then_some(v)) {
            programs.push(p);
        }
    }
    Ok(programs)
}

/// Removes the rules of syscall `name` from a JSON filter.
fn drop_name(f: &mut Value, name: &str) {
    if let Some(list) = f.get_mut("filter").and_then(Value::as_array_mut) {
        list.retain(|r| r["syscall"] != name);
    }
}

/// Removes the rules of every syscall the architecture does not have.
fn drop_unknown(f: &mut Value, arch: TargetArch) {
    if let Some(list) = f.get_mut("filter").and_then(Value::as_array_mut) {
        list.retain(|r| r["syscall"].as_str().is_some_and(|n| known(n, arch)));
    }
}

/// One seccompiler filter in JSON form.
fn filter(mismatch: &Value, matched: &Value, rules: &BTreeMap<String, SyscallRules>) -> Value {
    let mut list = Vec::new();
    for (name, r) in rules {
        if r.any {
            list.push(json!({ "syscall": name }));
        } else {
            let mut seen = BTreeSet::new();
            for c in &r.conditions {
                if seen.insert(Value::Array(c.clone()).to_string()) {
                    list.push(json!({ "syscall": name, "args": c }));
                }
            }
        }
    }
    json!({ "mismatch_action": mismatch, "match_action": matched, "filter": list })
}

/// Installs one program on the calling thread with seccomp(2). Needs no_new_privs or
/// CAP_SYS_ADMIN. Async-signal-safe.
pub(crate) fn install(p: &Program) -> Result<(), Errno> {
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const sock_filter,
    }
    let prog = SockFprog {
        len: p.len() as libc::c_ushort,
        filter: p.as_ptr(),
    };
    // SAFETY: seccomp(2) SET_MODE_FILTER with a valid program that outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const SockFprog,
        )
    };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompArgBuilder, LinuxSeccompBuilder, LinuxSyscallBuilder};

    fn syscall(names: &[&str], act: LinuxSeccompAction) -> oci_spec::runtime::LinuxSyscall {
        LinuxSyscallBuilder::default()
            .names(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .action(act)
            .build()
            .expect("syscall")
    }

    #[test]
    fn deny_list_compiles_and_skips_unknown_names() {
        let p = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActAllow)
            .syscalls(vec![
                syscall(
                    &["unshare", "mount", "no_such_syscall_x"],
                    LinuxSeccompAction::ScmpActErrno,
                ),
                syscall(&["getpid"], LinuxSeccompAction::ScmpActAllow),
            ])
            .build()
            .expect("profile");
        let progs = compile(&p).expect("compile");
        assert_eq!(progs.len(), 1);
        assert!(progs[0].len() > 5);
    }

    #[test]
    fn allow_list_and_conditions() {
        let arg = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(0x1000_0000u64)
            .value_two(0x1000_0000u64)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .expect("arg");
        let mut cond = syscall(&["clone"], LinuxSeccompAction::ScmpActErrno);
        cond.set_args(Some(vec![arg]));
        let p = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .syscalls(vec![
                syscall(&["read", "write", "exit"], LinuxSeccompAction::ScmpActAllow),
                cond,
            ])
            .build()
            .expect("profile");
        // default errno: the allow list carries it; the errno group equals the default
        assert_eq!(compile(&p).expect("compile").len(), 1);
    }

    #[test]
    fn unknown_names_are_read_from_seccompilers_error() {
        let arch = target_arch().expect("arch");
        let probe = json!({ "f": {
            "mismatch_action": "allow",
            "match_action": "trap",
            "filter": [{ "syscall": "no_such_call" }],
        }});
        let e = seccompiler::compile_from_json(probe.to_string().as_bytes(), arch)
            .expect_err("unknown name");
        assert_eq!(
            rejected_name(&e.to_string()).as_deref(),
            Some("no_such_call")
        );
        assert!(known("getpid", arch) && !known("no_such_call", arch));
    }

    #[test]
    fn notify_is_rejected() {
        let p = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActNotify)
            .build()
            .expect("profile");
        assert!(compile(&p).expect_err("notify").contains("NOTIFY"));
    }
}
