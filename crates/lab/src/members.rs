//! The lab's members (fabric, gw, ext, nodes) and running commands inside them.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{bail, Context, Result};
use weft_model::paths;
use weft_netlink::Netns;

pub use weft_model::lab::{EXT_ADDR, GW_ADDR, INTERNET_ADDR, UNDERLAY_PREFIX};

/// Name of a member's network namespace; errors when the lab has no such member.
pub fn member_netns(lab: &str, member: &str) -> Result<String> {
    let info = crate::load(lab)?.with_context(|| {
        format!("lab {lab:?} is not up; start it with `weft lab up --lab {lab}`")
    })?;
    let known = ["gw", "ext", "fabric"].contains(&member)
        || info.nodes.iter().any(|n| n.name == member)
        || (info.etcd.is_some() && member == crate::etcd::ETCD_MEMBER);
    if !known {
        let names: Vec<_> = info.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "lab {lab:?} has no member {member:?} (nodes: {}; also gw, ext, fabric)",
            names.join(", ")
        );
    }
    Ok(paths::lab_netns(lab, member))
}

/// Runs `cmd` inside a member's network namespace with this terminal; returns its exit code.
pub fn exec(lab: &str, member: &str, cmd: &[String]) -> Result<i32> {
    let Some((prog, args)) = cmd.split_first() else {
        bail!("lab exec {member}: give a command after --");
    };
    let ns = Netns::named(&member_netns(lab, member)?)?;
    let status = in_netns_command(&ns, member, prog)
        .args(args)
        .env("WEFT_LAB", lab)
        .env("WEFT_NODE", member)
        .status()
        .with_context(|| format!("run {prog} in {member} of lab {lab}"))?;
    Ok(exit_code(status))
}

/// A command whose child joins `ns` before exec, like `ip netns exec`: the network namespace,
/// plus a private mount namespace where /sys is mounted afresh so that it shows the links of
/// `ns` (the machine's own mounts are not changed), and a UTS namespace whose hostname is the
/// member's name.
pub(crate) fn in_netns_command(ns: &Netns, member: &str, prog: &str) -> Command {
    let fd = ns.fd().as_raw_fd();
    let hostname = member.as_bytes().to_vec();
    let mut c = Command::new(prog);
    // SAFETY: only async-signal-safe system calls with constant C strings run between fork and
    // exec; `fd` stays open in the parent until spawn returns.
    unsafe {
        c.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r != 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            check(libc::setns(fd, libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
            check(libc::sethostname(hostname.as_ptr().cast(), hostname.len()))?;
            let none = c"none".as_ptr();
            check(libc::mount(
                none,
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            ))?;
            // /sys may be absent or busy in odd setups: then keep the old view rather than fail.
            if libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH) == 0 {
                check(libc::mount(
                    c"sysfs".as_ptr(),
                    c"/sys".as_ptr(),
                    c"sysfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ))?;
            }
            Ok(())
        });
    }
    c
}

pub(crate) fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}
