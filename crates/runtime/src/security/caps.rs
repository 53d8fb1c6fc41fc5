//! Linux capabilities: names and numbers, the sets of a process, and the system calls that
//! set them (capset, the bounding set, the ambient set).

use nix::errno::Errno;

/// Every capability the runtime knows, by number (index = capability number).
pub(crate) const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's default capability set.
pub(crate) const DOCKER_DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// The number of a capability given as `NET_RAW`, `CAP_NET_RAW` or `cap_net_raw`.
pub(crate) fn number(name: &str) -> Option<u32> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    NAMES.iter().position(|n| *n == bare).map(|i| i as u32)
}

/// The canonical name (`NET_RAW`) of a capability given in any accepted spelling, or an
/// error naming the bad one.
pub(crate) fn canonical(name: &str) -> Result<&'static str, String> {
    number(name).map(|n| NAMES[n as usize]).ok_or_else(|| {
        format!(
            "unknown capability {name:?}; use a name such as NET_ADMIN or CAP_NET_ADMIN (see capabilities(7))"
        )
    })
}

/// A bit mask of the named capabilities.
#[cfg(test)]
pub(crate) fn mask<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<u64, String> {
    let mut m = 0u64;
    for n in names {
        m |= 1u64 << number(n).ok_or_else(|| format!("unknown capability {n:?}"))?;
    }
    Ok(m)
}

/// The highest capability number of the running kernel.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(NAMES.len() as u32 - 1)
}

/// The five capability sets of a process, as bit masks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// `_LINUX_CAPABILITY_VERSION_3`.
const CAP_V3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn check(r: libc::c_long) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Drops from the bounding set every capability up to `last` that is not in `keep`.
/// Async-signal-safe.
pub(crate) fn drop_bounding(keep: u64, last: u32) -> Result<(), Errno> {
    for c in 0..=last.min(63) {
        if keep & (1u64 << c) == 0 {
            // SAFETY: prctl with integer arguments.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, c as libc::c_ulong, 0, 0, 0) };
            // EINVAL: the kernel does not know this capability.
            if r < 0 && Errno::last() != Errno::EINVAL {
                return Err(Errno::last());
            }
        }
    }
    Ok(())
}

/// The permitted set of the calling thread. Async-signal-safe.
pub(crate) fn permitted() -> Result<u64, Errno> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget(2) with a version-3 header and room for two data structs.
    check(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    })?;
    Ok(u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32))
}

/// Sets the effective, permitted and inheritable sets of the calling thread, then the
/// ambient set. Capabilities the thread does not have (a runtime itself confined, a
/// kernel that does not know them) are left out rather than failing. Async-signal-safe.
pub(crate) fn set(sets: &CapSets, last: u32) -> Result<(), Errno> {
    let mut valid = if last >= 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    };
    valid &= permitted()?;
    let (e, p, i) = (
        sets.effective & valid,
        sets.permitted & valid,
        sets.inheritable & valid,
    );
    let ambient = sets.ambient & p & i;
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: e as u32,
            permitted: p as u32,
            inheritable: i as u32,
        },
        CapData {
            effective: (e >> 32) as u32,
            permitted: (p >> 32) as u32,
            inheritable: (i >> 32) as u32,
        },
    ];
    // SAFETY: capset(2) with a version-3 header and two data structs.
    check(unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) })?;
    // SAFETY: prctl with integer arguments.
    check(unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        ) as libc::c_long
    })?;
    for c in 0..=last.min(63) {
        if ambient & (1u64 << c) != 0 {
            // SAFETY: prctl with integer arguments.
            check(unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    c as libc::c_ulong,
                    0,
                    0,
                ) as libc::c_long
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(NAMES.len(), 41);
        assert_eq!(number("CHOWN"), Some(0));
        assert_eq!(number("cap_net_raw"), Some(13));
        assert_eq!(number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(number("CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("NOPE"), None);
        assert_eq!(canonical("cap_kill"), Ok("KILL"));
        assert!(canonical("FLY").expect_err("unknown").contains("FLY"));
    }

    #[test]
    fn docker_default_mask_matches_docker() {
        // `CapEff` of a root process in a default Docker container.
        let m = mask(DOCKER_DEFAULT.iter().copied()).expect("mask");
        assert_eq!(m, 0x0000_0000_a804_25fb);
    }
}
