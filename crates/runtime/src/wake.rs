//! Waiting for a container's shim (or init) to exit instead of sleeping a fixed time: a pidfd
//! becomes readable when its process exits. The shim records the container's final state and
//! then exits, so its exit is the moment a waiting `logs -f`, `stop` or `delete` can go on.
//! Without pidfds (kernels before 5.3) this is a plain sleep; callers always loop on what
//! they really wait for and use this only to sleep less.
//!
//! (An inotify watch on the state directory was tried first: closing it waits for an SRCU
//! grace period, up to 8 ms measured, more than the polling it saved.)

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Sleeps until process `pid` exits, or `max`. The caller must have checked that `pid` is
/// still the process it means after this returns (a pid may be reused); a pid that no
/// longer exists returns at once, and no pid (0) sleeps `max`.
pub(crate) fn wait_exit(pid: i32, max: Duration) {
    if pid <= 0 {
        std::thread::sleep(max);
        return;
    }
    // SAFETY: pidfd_open(2) returns a new fd or -1; it takes no pointers.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        if Errno::last() != Errno::ESRCH {
            std::thread::sleep(max);
        }
        return;
    }
    // SAFETY: a fresh fd from pidfd_open that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let ms = u16::try_from(max.as_millis()).unwrap_or(u16::MAX);
    // Readable once the process has exited; a signal or the timeout ends the wait too.
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(_) => std::thread::sleep(max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_running_process_keeps_the_wait_until_the_timeout() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let start = Instant::now();
        wait_exit(child.id() as i32, Duration::from_millis(100));
        let waited = start.elapsed();
        let _ = child.kill();
        child.wait().unwrap();
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
    }

    #[test]
    fn the_exit_of_a_process_wakes_the_wait() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.05")
            .spawn()
            .unwrap();
        let start = Instant::now();
        wait_exit(child.id() as i32, Duration::from_secs(20));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        child.wait().unwrap();
    }
}
