//! `process.rlimits`: resource limits the container's process starts with, set by the init
//! (or by `exec`) just before it drops its capabilities and execs.
//!
//! A hard limit above the runtime's own, which only a process with CAP_SYS_RESOURCE may set,
//! is lowered to the runtime's own hard limit when the kernel refuses it (and the soft limit
//! with it), where runc and crun fail the container. Engines ask for limits from their own
//! configuration (podman asks for 1048576 open files whatever the host allows), and a
//! runtime without that capability (a sandbox, a user namespace) would otherwise run nothing.

use nix::errno::Errno;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

/// One limit: the resource (`RLIMIT_*`), its soft and hard values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub resource: libc::__rlimit_resource_t,
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}

fn resource(t: PosixRlimitType) -> (libc::__rlimit_resource_t, &'static str) {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// Reads and checks `process.rlimits`: each type at most once, soft at most hard.
pub(crate) fn from_spec(r: Option<&Vec<PosixRlimit>>) -> Result<Vec<Rlimit>, String> {
    let mut out: Vec<Rlimit> = Vec::new();
    for l in r.into_iter().flatten() {
        let (resource, name) = resource(l.typ());
        if out.iter().any(|x| x.resource == resource) {
            return Err(format!("process.rlimits: {name} is given twice"));
        }
        if l.soft() > l.hard() {
            return Err(format!(
                "process.rlimits: {name} soft limit {} is above its hard limit {}",
                l.soft(),
                l.hard()
            ));
        }
        out.push(Rlimit {
            resource,
            name,
            soft: l.soft(),
            hard: l.hard(),
        });
    }
    Ok(out)
}

fn set(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), Errno> {
    let l = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit(2) with a valid struct.
    Errno::result(unsafe { libc::setrlimit(resource, &l) }).map(drop)
}

fn get(resource: libc::__rlimit_resource_t) -> Result<libc::rlimit, Errno> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) into a valid struct.
    Errno::result(unsafe { libc::getrlimit(resource, &mut l) }).map(|_| l)
}

/// Sets `limits` on the calling process (see the module's doc for a hard limit above ours).
pub(crate) fn apply(limits: &[Rlimit]) -> Result<(), String> {
    for l in limits {
        let fail = |e: Errno| format!("set {} to {}:{}: {}", l.name, l.soft, l.hard, e.desc());
        match set(l.resource, l.soft, l.hard) {
            Ok(()) => {}
            Err(Errno::EPERM) => {
                let own = get(l.resource).map_err(fail)?;
                if l.hard <= own.rlim_max {
                    return Err(fail(Errno::EPERM));
                }
                set(l.resource, l.soft.min(own.rlim_max), own.rlim_max).map_err(fail)?;
            }
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::PosixRlimitBuilder;

    fn limit(t: PosixRlimitType, soft: u64, hard: u64) -> PosixRlimit {
        PosixRlimitBuilder::default()
            .typ(t)
            .soft(soft)
            .hard(hard)
            .build()
            .unwrap()
    }

    #[test]
    fn reads_the_spec_and_refuses_bad_limits() {
        let v = vec![
            limit(PosixRlimitType::RlimitNofile, 100, 200),
            limit(PosixRlimitType::RlimitCore, 0, 0),
        ];
        let r = from_spec(Some(&v)).unwrap();
        assert_eq!(r[0].resource, libc::RLIMIT_NOFILE);
        assert_eq!((r[0].soft, r[0].hard), (100, 200));
        assert_eq!(r[1].name, "RLIMIT_CORE");
        assert!(from_spec(None).unwrap().is_empty());

        let e = from_spec(Some(&vec![limit(PosixRlimitType::RlimitNofile, 300, 200)])).unwrap_err();
        assert!(
            e.contains("RLIMIT_NOFILE soft limit 300 is above its hard limit 200"),
            "{e}"
        );
        let twice = vec![
            limit(PosixRlimitType::RlimitNproc, 1, 2),
            limit(PosixRlimitType::RlimitNproc, 1, 2),
        ];
        assert!(from_spec(Some(&twice)).unwrap_err().contains("twice"));
    }

    /// In a forked child: lowering works; a hard limit above ours without the capability to
    /// raise it is lowered to ours.
    #[test]
    fn applies_and_lowers_a_hard_limit_it_may_not_raise() {
        // SAFETY: the child only makes system calls and exits.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                let own = get(libc::RLIMIT_NOFILE).unwrap();
                let code = (|| {
                    let lower = own.rlim_max.min(4096) - 1;
                    let l = Rlimit {
                        resource: libc::RLIMIT_NOFILE,
                        name: "RLIMIT_NOFILE",
                        soft: lower - 1,
                        hard: lower,
                    };
                    apply(&[l]).map_err(|_| 1)?;
                    let now = get(libc::RLIMIT_NOFILE).map_err(|_| 2)?;
                    if (now.rlim_cur, now.rlim_max) != (lower - 1, lower) {
                        return Err(3);
                    }
                    // Without CAP_SYS_RESOURCE a hard limit cannot be raised: ask for more
                    // than we have.
                    if !caps_without_sys_resource() {
                        return Ok(()); // could not drop it: nothing more to check
                    }
                    let l = Rlimit {
                        resource: libc::RLIMIT_NOFILE,
                        name: "RLIMIT_NOFILE",
                        soft: lower + 100,
                        hard: lower + 1000,
                    };
                    apply(&[l]).map_err(|_| 4)?;
                    let now = get(libc::RLIMIT_NOFILE).map_err(|_| 5)?;
                    if (now.rlim_cur, now.rlim_max) != (lower, lower) {
                        return Err(6);
                    }
                    Ok(())
                })();
                unsafe { libc::_exit(code.err().unwrap_or(0)) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }

    /// Drops CAP_SYS_RESOURCE from the effective set of this (forked, single-threaded)
    /// process; false when that is not possible.
    fn caps_without_sys_resource() -> bool {
        let mut hdr = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this process
        let mut data = [0u32; 6];
        // SAFETY: capget/capset with the v3 header and two data structs.
        unsafe {
            if libc::syscall(libc::SYS_capget, hdr.as_mut_ptr(), data.as_mut_ptr()) != 0 {
                return false;
            }
            data[0] &= !(1 << 24); // CAP_SYS_RESOURCE, in the effective set's low word
            libc::syscall(libc::SYS_capset, hdr.as_mut_ptr(), data.as_ptr()) == 0
        }
    }
}
