//! Pseudo-terminals: allocating one in a container's devpts, passing its master over a
//! unix socket, raw mode for the caller's terminal, and the copy loop of `exec -t`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// A pty: master, slave, and the slave's number (`/dev/pts/<n>`).
pub(crate) struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub number: u32,
}

/// Allocates a pty from the `ptmx` device at `ptmx` (e.g. `/dev/pts/ptmx` inside a
/// container, or `/proc/<pid>/root/dev/pts/ptmx` from outside it). The slave is opened
/// through the master (TIOCGPTPEER), so no path lookup can be misled.
pub(crate) fn open_pty(ptmx: &Path) -> Result<Pty, Errno> {
    let master = nix::fcntl::open(
        ptmx,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let m = master.as_raw_fd();
    let unlock: libc::c_int = 0;
    let mut number: libc::c_uint = 0;
    // SAFETY: ioctls on the pty master with pointers to live integers.
    unsafe {
        if libc::ioctl(m, libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(Errno::last());
        }
        if libc::ioctl(m, libc::TIOCGPTN, &mut number) < 0 {
            return Err(Errno::last());
        }
    }
    // SAFETY: TIOCGPTPEER returns a new fd for the slave.
    let s = unsafe {
        libc::ioctl(
            m,
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if s < 0 {
        return Err(Errno::last());
    }
    Ok(Pty {
        master,
        // SAFETY: a new fd from the ioctl above.
        slave: unsafe { OwnedFd::from_raw_fd(s) },
        number,
    })
}

/// Sends `fd` over the unix socket `sock` with SCM_RIGHTS; the data is `name` (as runc
/// sends a console: the terminal's path), or one byte when it is empty.
pub(crate) fn send_fd(sock: RawFd, fd: RawFd, name: &[u8]) -> Result<(), Errno> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(if name.is_empty() { b"F" } else { name })];
    sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::empty(), None).map(drop)
}

/// Receives an fd sent with [`send_fd`]; `None` when the peer closed without sending.
pub(crate) fn recv_fd(sock: RawFd) -> Result<Option<OwnedFd>, Errno> {
    let mut buf = [0u8; 256]; // the name sent with the fd, if any
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = loop {
        match recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(Errno::EINTR) => continue,
            r => break r?,
        }
    };
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel installed this fd for us.
                return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
    }
    Ok(None)
}

/// Makes the calling process's controlling terminal `slave` and its stdin, stdout and
/// stderr. Needs a new session (setsid) first. Async-signal-safe.
pub(crate) fn make_controlling(slave: RawFd) -> Result<(), Errno> {
    // SAFETY: ioctl and dup2 on fds the caller owns.
    unsafe {
        if libc::ioctl(slave, libc::TIOCSCTTY, 0) < 0 {
            return Err(Errno::last());
        }
        for to in 0..3 {
            if libc::dup2(slave, to) < 0 {
                return Err(Errno::last());
            }
        }
    }
    Ok(())
}

/// Copies the window size of terminal `from` to terminal `to` (best effort).
pub(crate) fn copy_winsize(from: RawFd, to: RawFd) {
    let mut ws: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ with a pointer to a live winsize.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 && ws.ws_row > 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Puts a terminal in raw mode; restores it when dropped.
pub(crate) struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// Raw mode for `fd` if it is a terminal, else `None`.
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: borrowing an fd the caller keeps open for the guard's life.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = termios::tcgetattr(b).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(b, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd outlives the guard (see `enter`).
        let b = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(b, SetArg::TCSANOW, &self.saved);
    }
}

/// Whether `fd` is a terminal.
pub(crate) fn is_tty(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the fd.
    unsafe { libc::isatty(fd) == 1 }
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: borrowing an open fd for fcntl.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    if let Ok(fl) = fcntl(b, FcntlArg::F_GETFL) {
        let _ = fcntl(
            b,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
        );
    }
}

fn write_all(fd: RawFd, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: write(2) from a live buffer.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return;
        }
        data = &data[n as usize..];
    }
}

/// `exec -t`: copies `input` to the pty `master` and the master's output to `output`
/// until process `child` exits, then returns its exit code (128+signal if killed). When
/// `input` ends (not a terminal, e.g. /dev/null or a closed pipe), an end-of-file
/// character is sent once so that a shell reading it exits instead of waiting forever.
pub(crate) fn proxy(
    master: &OwnedFd,
    input: RawFd,
    output: RawFd,
    child: Pid,
) -> Result<i32, Errno> {
    let m = master.as_raw_fd();
    set_nonblocking(m);
    let input_is_tty = is_tty(input);
    let mut input_open = true;
    let mut master_open = true;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if let Some(code) = exited(child, false)? {
            drain(m, output, &mut buf);
            return Ok(code);
        }
        if !master_open {
            let code = exited(child, true)?.unwrap_or(0);
            return Ok(code);
        }
        // SAFETY: both fds stay open during the poll.
        let (bi, bm) = unsafe { (BorrowedFd::borrow_raw(input), BorrowedFd::borrow_raw(m)) };
        let mut mflags = PollFlags::POLLIN;
        if !pending.is_empty() {
            mflags |= PollFlags::POLLOUT;
        }
        let mut fds = vec![PollFd::new(bm, mflags)];
        let watch_input = input_open && pending.is_empty();
        if watch_input {
            fds.push(PollFd::new(bi, PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
        let rev = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .unwrap_or(PollFlags::empty())
        };
        let (mrev, irev) = (
            rev(0),
            if watch_input {
                rev(1)
            } else {
                PollFlags::empty()
            },
        );
        drop(fds);
        if mrev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(bm, &mut buf) {
                Ok(0) | Err(Errno::EIO) => master_open = false,
                Ok(n) => write_all(output, &buf[..n]),
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => master_open = false,
            }
        }
        if mrev.contains(PollFlags::POLLOUT) && !pending.is_empty() {
            match nix::unistd::write(bm, &pending) {
                Ok(n) => {
                    pending.drain(..n);
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => pending.clear(),
            }
        }
        if irev.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match nix::unistd::read(bi, &mut buf) {
                Ok(0) | Err(Errno::EIO) | Err(Errno::EBADF) => {
                    input_open = false;
                    if !input_is_tty {
                        pending.push(4); // VEOF (^D)
                    }
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => input_open = false,
            }
        }
    }
}

/// Reads what the master still holds, without blocking.
fn drain(m: RawFd, output: RawFd, buf: &mut [u8]) {
    // SAFETY: the master stays open during the call.
    let bm = unsafe { BorrowedFd::borrow_raw(m) };
    for _ in 0..1024 {
        let mut pfd = [PollFd::new(bm.as_fd(), PollFlags::POLLIN)];
        if !matches!(nix::poll::poll(&mut pfd, PollTimeout::from(20u16)), Ok(n) if n > 0) {
            return;
        }
        match nix::unistd::read(bm, buf) {
            Ok(n) if n > 0 => write_all(output, &buf[..n]),
            _ => return,
        }
    }
}

/// The exit code of `child` once it has exited (`block`: wait for it).
fn exited(child: Pid, block: bool) -> Result<Option<i32>, Errno> {
    let flags = (!block).then_some(WaitPidFlag::WNOHANG);
    loop {
        match waitpid(child, flags) {
            Ok(WaitStatus::Exited(_, c)) => return Ok(Some(c)),
            Ok(WaitStatus::Signaled(_, s, _)) => return Ok(Some(128 + s as i32)),
            Ok(WaitStatus::StillAlive) => return Ok(None),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    #[test]
    fn pty_and_fd_passing() {
        let Ok(pty) = open_pty(Path::new("/dev/ptmx")) else {
            eprintln!("skipping: no /dev/ptmx here");
            return;
        };
        assert!(is_tty(pty.slave.as_raw_fd()));
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .expect("socketpair");
        send_fd(a.as_raw_fd(), pty.master.as_raw_fd(), b"/dev/pts/0").expect("send");
        let got = recv_fd(b.as_raw_fd()).expect("recv").expect("an fd");
        // the received master is the same pty: what the slave writes, it reads
        write_all(pty.slave.as_raw_fd(), b"x");
        let mut buf = [0u8; 8];
        let n = nix::unistd::read(got.as_fd(), &mut buf).expect("read");
        assert_eq!(&buf[..n], b"x");
        drop(a);
        assert!(recv_fd(b.as_raw_fd()).expect("eof").is_none());
    }
}
