//! The pipes between the shim and the container's init, and between `create` and the shim.
//!
//! Init → shim frames: `R` (set up, waiting for start) or `E` + u32 length (LE) + message
//! (failed; the init exits 127). End of file after `R` means the exec succeeded (the write
//! end is close-on-exec). Shim → init: one byte `G` = go (exec now).

use std::io::{self, Read};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};

/// What the init said.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// Setup done; waiting for start.
    Ready,
    /// Setup or exec failed with this message.
    Error(String),
    /// The pipe was closed: after `Ready`, the exec succeeded; before it, the init died.
    Eof,
}

/// Writes a frame with one write(2) (atomic for messages under PIPE_BUF); errors ignored:
/// the reader being gone leaves nobody to tell.
pub(crate) fn write_frame(fd: RawFd, tag: u8, msg: &str) {
    let msg = &msg.as_bytes()[..msg.len().min(4000)];
    let mut buf = Vec::with_capacity(5 + msg.len());
    buf.push(tag);
    buf.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    buf.extend_from_slice(msg);
    // SAFETY: fd is a pipe end owned by the caller and stays open during the call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let _ = nix::unistd::write(fd, &buf);
}

/// Reads one frame.
pub(crate) fn read_frame(r: &mut impl Read) -> io::Result<Frame> {
    let mut tag = [0u8; 1];
    loop {
        match r.read(&mut tag) {
            Ok(0) => return Ok(Frame::Eof),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let mut msg = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut msg)?;
    match tag[0] {
        b'R' => Ok(Frame::Ready),
        b'E' => Ok(Frame::Error(String::from_utf8_lossy(&msg).into_owned())),
        t => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected frame tag {t:#x} from the container init"),
        )),
    }
}

/// The shim's report to `create`: `ok <pid>` or `error <message>`, one line.
pub(crate) struct Reporter(pub Option<OwnedFd>);

impl Reporter {
    fn send(&mut self, line: &str) {
        if let Some(fd) = self.0.take() {
            let line = format!("{}\n", line.replace('\n', "; "));
            let _ = nix::unistd::write(&fd, line.as_bytes());
        }
    }
    /// The container exists, blocked before exec.
    pub fn ok(&mut self, pid: i32) {
        self.send(&format!("ok {pid}"));
    }
    /// Creation failed.
    pub fn error(&mut self, msg: &str) {
        self.send(&format!("error {msg}"));
    }
}

/// Parses the shim's report: `Ok(pid)` or `Err(message)`.
pub(crate) fn parse_report(text: &str) -> Result<i32, String> {
    let line = text.lines().next().unwrap_or("").trim();
    if let Some(pid) = line.strip_prefix("ok ") {
        return pid
            .trim()
            .parse()
            .map_err(|_| format!("the shim reported a bad pid {pid:?}"));
    }
    if let Some(msg) = line.strip_prefix("error ") {
        return Err(msg.to_string());
    }
    Err(if line.is_empty() {
        "the shim exited without reporting".to_string()
    } else {
        format!("unexpected report from the shim: {line:?}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn frames_round_trip() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        write_frame(w.as_raw_fd(), b'R', "");
        write_frame(w.as_raw_fd(), b'E', "exec \"x\": No such file or directory");
        drop(w);
        let mut r = std::fs::File::from(r);
        assert_eq!(read_frame(&mut r).expect("ready"), Frame::Ready);
        assert_eq!(
            read_frame(&mut r).expect("error"),
            Frame::Error("exec \"x\": No such file or directory".into())
        );
        assert_eq!(read_frame(&mut r).expect("eof"), Frame::Eof);
    }

    #[test]
    fn reports() {
        assert_eq!(parse_report("ok 42\n"), Ok(42));
        assert_eq!(parse_report("error boom\n"), Err("boom".into()));
        assert!(parse_report("").is_err());
        assert!(parse_report("ok x").is_err());
    }
}
