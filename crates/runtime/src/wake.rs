//! Waiting for a container's shim (or init) to exit instead of sleeping a fixed time: a pidfd
//! becomes readable when its process exits. The shim records the container's final state and
//! then exits, so its exit is the moment a waiting `logs -f`, `stop` or `delete` can go on.
//! Without pidfds (kernels before 5.3) this is a plain sleep; callers always loop on what
//! they really wait for and use this only to sleep less.
//!
//! (An inotify watch on the state directory was tried first for these short waits: closing
//! it waits for an SRCU grace period, up to 8 ms measured, more than the polling it saved.
//! `logs -f` keeps one [`Modified`] watch for its whole life, where that cost is paid once.)

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// Sleeps until process `pid` exits, or `max`. The caller must have checked that `pid` is
/// still the process it means after this returns (a pid may be reused); a pid that no
/// longer exists returns at once, and no pid (0) sleeps `max`.
pub(crate) fn wait_exit(pid: i32, max: Duration) {
    wait_exit_or(pid, None, max)
}

/// [`wait_exit`], also woken when `also` becomes readable (e.g. a [`Modified`] watch).
pub(crate) fn wait_exit_or(pid: i32, also: Option<BorrowedFd<'_>>, max: Duration) {
    let pidfd = if pid > 0 {
        // SAFETY: pidfd_open(2) returns a new fd or -1; it takes no pointers.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 && Errno::last() == Errno::ESRCH {
            return; // already gone
        }
        // SAFETY: a fresh fd from pidfd_open that nothing else owns.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
    } else {
        None
    };
    let mut fds: Vec<PollFd<'_>> = pidfd
        .iter()
        .map(|f| f.as_fd())
        .chain(also)
        .map(|f| PollFd::new(f, PollFlags::POLLIN))
        .collect();
    if fds.is_empty() {
        std::thread::sleep(max);
        return;
    }
    let ms = u16::try_from(max.as_millis()).unwrap_or(u16::MAX);
    // A pidfd is readable once its process has exited; a signal or the timeout ends the
    // wait too.
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(_) => std::thread::sleep(max),
    }
}

/// An inotify watch for writes to one file: its fd becomes readable when the file was
/// written to since the last [`Modified::clear`].
pub(crate) struct Modified(Inotify);

impl Modified {
    /// Watches `path`; `None` where it cannot (no such file, no inotify).
    pub fn new(path: &Path) -> Option<Modified> {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        ino.add_watch(path, AddWatchFlags::IN_MODIFY).ok()?;
        Some(Modified(ino))
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }

    /// Forgets the writes seen so far.
    pub fn clear(&self) {
        while matches!(self.0.read_events(), Ok(ev) if !ev.is_empty()) {}
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
    fn a_write_wakes_the_wait_on_a_modified_watch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "a").unwrap();
        let m = Modified::new(&path).expect("watch");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let writer = std::thread::spawn({
            let path = path.clone();
            move || {
                std::thread::sleep(Duration::from_millis(50));
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .unwrap();
                std::io::Write::write_all(&mut f, b"b").unwrap();
            }
        });
        // Neither the process's exit nor the timeout ends this wait: the write does.
        let start = Instant::now();
        wait_exit_or(child.id() as i32, Some(m.fd()), Duration::from_secs(20));
        let waited = start.elapsed();
        writer.join().unwrap();
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "ab");
        // Once cleared, a wait without new writes lasts until its timeout.
        m.clear();
        let start = Instant::now();
        wait_exit_or(child.id() as i32, Some(m.fd()), Duration::from_millis(100));
        assert!(start.elapsed() >= Duration::from_millis(90));
        let _ = child.kill();
        child.wait().unwrap();
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
