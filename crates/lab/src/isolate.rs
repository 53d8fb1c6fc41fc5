//! An agent that shares nothing with the other nodes but the network and etcd, as on separate
//! hosts: in its own mount namespace (see `in_netns_command`) the lab's directory is replaced
//! by an empty tmpfs holding only the node's own directory, so the agent sees neither the
//! lab's record nor the other nodes' state (and a lab on etcd has no store file to share).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

/// Makes `cmd`'s child (already in a private mount namespace whose mounts do not propagate
/// back) see only `node_dir` of everything under `lab_dir`.
pub(crate) fn only_own_node_dir(cmd: &mut Command, lab_dir: &Path, node_dir: &Path) -> Result<()> {
    let rel = node_dir
        .strip_prefix(lab_dir)
        .context("the node's directory is not inside the lab's")?;
    let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).context("path with a NUL byte");
    let lab_c = cstr(lab_dir)?;
    let node_c = cstr(node_dir)?;
    // Each directory from the lab's down to the node's, to recreate on the tmpfs.
    let mut dirs = Vec::new();
    let mut acc = lab_dir.to_path_buf();
    for part in rel.components() {
        acc.push(part);
        dirs.push(cstr(&acc)?);
    }
    // SAFETY: only async-signal-safe system calls on C strings prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(r)
                }
            };
            // Keep a handle on the node's directory before the tmpfs hides it.
            let fd = check(libc::open(
                node_c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            ))?;
            check(libc::mount(
                c"tmpfs".as_ptr(),
                lab_c.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"mode=0755".as_ptr().cast(),
            ))?;
            for d in &dirs {
                check(libc::mkdir(d.as_ptr(), 0o755))?;
            }
            // Bind the kept directory back through /proc/self/fd (no allocation: a fixed
            // buffer with the fd number written by hand).
            let mut path = *b"/proc/self/fd/\0\0\0\0\0\0\0\0\0\0\0";
            let mut digits = [0u8; 10];
            let (mut n, mut len) = (fd as u32, 0);
            loop {
                digits[len] = b'0' + (n % 10) as u8;
                len += 1;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for i in 0..len {
                path[14 + i] = digits[len - 1 - i];
            }
            check(libc::mount(
                path.as_ptr().cast(),
                node_c.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
            libc::close(fd);
            Ok(())
        });
    }
    Ok(())
}
