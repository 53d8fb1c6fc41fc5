//! What a container process may do: its user and groups, capabilities, no_new_privs and
//! seccomp filters. Prepared from the OCI spec before any fork or clone, applied by the
//! container's init (and by `exec`) with system calls only, right before exec.

pub(crate) mod caps;
pub(crate) mod seccomp;
pub(crate) mod user;

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Linux, Process};

pub(crate) use caps::CapSets;
use seccomp::Program;

/// The security settings of a process, ready to apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Security {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    /// `None`: capabilities are left as they are.
    pub caps: Option<CapSets>,
    /// Highest capability number of the running kernel.
    pub last_cap: u32,
    pub no_new_privs: bool,
    /// Programs to install, in order.
    pub seccomp: Vec<Program>,
    /// Signal to (re)arm as parent-death signal after the change of user (which clears it).
    pub pdeathsig: Option<i32>,
}

/// A step of [`Security::apply`], to name the one that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Step {
    Seccomp,
    Bounding,
    KeepCaps,
    Groups,
    Gid,
    Uid,
    Caps,
    Pdeathsig,
    NoNewPrivs,
}

impl Step {
    const ALL: [Step; 9] = [
        Step::Seccomp,
        Step::Bounding,
        Step::KeepCaps,
        Step::Groups,
        Step::Gid,
        Step::Uid,
        Step::Caps,
        Step::Pdeathsig,
        Step::NoNewPrivs,
    ];

    /// The step of a number sent through a pipe.
    pub fn from_u8(n: u8) -> Option<Step> {
        Step::ALL.get(n as usize).copied()
    }

    /// What the step does.
    pub fn describe(self) -> &'static str {
        match self {
            Step::Seccomp => "install the seccomp filter",
            Step::Bounding => "drop capabilities from the bounding set",
            Step::KeepCaps => "keep capabilities across the change of user",
            Step::Groups => "setgroups",
            Step::Gid => "setgid",
            Step::Uid => "setuid",
            Step::Caps => "set capabilities",
            Step::Pdeathsig => "set the parent-death signal",
            Step::NoNewPrivs => "set no_new_privs",
        }
    }
}

/// A capability set of the spec as a mask.
fn cap_mask(set: Option<&Capabilities>) -> Result<u64, String> {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        let name = c.to_string();
        let n = caps::number(&name)
            .ok_or_else(|| format!("capability {name} is not known to this runtime"))?;
        m |= 1u64 << n;
    }
    Ok(m)
}

impl Security {
    /// Prepares the settings of `process` (user, capabilities, no_new_privs) and of
    /// `linux.seccomp`.
    pub fn from_spec(process: &Process, linux: Option<&Linux>) -> Result<Security, String> {
        let user = process.user();
        let caps = match process.capabilities() {
            None => None,
            Some(c) => Some(CapSets {
                bounding: cap_mask(c.bounding().as_ref())?,
                effective: cap_mask(c.effective().as_ref())?,
                permitted: cap_mask(c.permitted().as_ref())?,
                inheritable: cap_mask(c.inheritable().as_ref())?,
                ambient: cap_mask(c.ambient().as_ref())?,
            }),
        };
        let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(s) => seccomp::compile(s)?,
            None => Vec::new(),
        };
        Ok(Security {
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            caps,
            last_cap: caps::last_cap(),
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            seccomp,
            pdeathsig: None,
        })
    }

    /// Applies everything to the calling single-threaded process, in the order that keeps
    /// each step permitted: seccomp first when there is no no_new_privs (installing a
    /// filter then needs CAP_SYS_ADMIN), the bounding set, the user (keeping the
    /// permitted capabilities across the change), the capability sets, the parent-death
    /// signal, no_new_privs, and seccomp last. Makes system calls only (usable after fork
    /// in a multi-threaded process). On failure, names the step.
    pub fn apply(&self) -> Result<(), (Step, Errno)> {
        if !self.no_new_privs {
            for p in &self.seccomp {
                seccomp::install(p).map_err(|e| (Step::Seccomp, e))?;
            }
        }
        if let Some(c) = &self.caps {
            caps::drop_bounding(c.bounding, self.last_cap).map_err(|e| (Step::Bounding, e))?;
            prctl(libc::PR_SET_KEEPCAPS, 1).map_err(|e| (Step::KeepCaps, e))?;
        }
        // SAFETY: raw system calls on this thread only, with valid pointers.
        unsafe {
            check(libc::syscall(
                libc::SYS_setgroups,
                self.groups.len(),
                self.groups.as_ptr(),
            ))
            .map_err(|e| (Step::Groups, e))?;
            check(libc::syscall(
                libc::SYS_setresgid,
                self.gid,
                self.gid,
                self.gid,
            ))
            .map_err(|e| (Step::Gid, e))?;
            check(libc::syscall(
                libc::SYS_setresuid,
                self.uid,
                self.uid,
                self.uid,
            ))
            .map_err(|e| (Step::Uid, e))?;
        }
        if let Some(c) = &self.caps {
            prctl(libc::PR_SET_KEEPCAPS, 0).map_err(|e| (Step::KeepCaps, e))?;
            caps::set(c, self.last_cap).map_err(|e| (Step::Caps, e))?;
        }
        if let Some(sig) = self.pdeathsig {
            prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong)
                .map_err(|e| (Step::Pdeathsig, e))?;
        }
        if self.no_new_privs {
            prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| (Step::NoNewPrivs, e))?;
            for p in &self.seccomp {
                seccomp::install(p).map_err(|e| (Step::Seccomp, e))?;
            }
        }
        Ok(())
    }
}

fn check(r: libc::c_long) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn prctl(op: libc::c_int, arg: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: prctl with integer arguments.
    check(unsafe { libc::prctl(op, arg, 0, 0, 0) } as libc::c_long)
}
