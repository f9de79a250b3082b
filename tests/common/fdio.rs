//! Descriptors the tests make and read: pipes, socketpairs, bounded reads.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::attach_client::{errno, os_err};
use super::bytes::{contains, tail_str};

/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): (read end, write end).
pub fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just created and are owned here.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// pipe2(O_CLOEXEC): (read end, write end).
pub fn pipe_pair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(r, 0, "pipe2: {}", os_err());
    // SAFETY: both were just created and are owned here.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// Reads until a newline or end of file from `fd`, bounded by `limit`.
/// Returns the bytes read (with the newline when there was one).
pub fn read_line_fd(fd: RawFd, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        if out.ends_with(b"\n") {
            return Ok(out);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "no complete line after {}s (got {:?})",
                limit.as_secs(),
                String::from_utf8_lossy(&out)
            ));
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if r == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("read: {e}"));
        }
        if n == 0 {
            return Ok(out); // EOF
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
}

pub fn write_fd(fd: RawFd, data: &[u8]) {
    let mut off = 0;
    while off < data.len() {
        // SAFETY: writing from a valid buffer.
        let n = unsafe { libc::write(fd, data[off..].as_ptr().cast(), data.len() - off) };
        if n < 0 {
            assert_eq!(errno(), libc::EINTR, "write: {}", os_err());
            continue;
        }
        off += n as usize;
    }
}

/// Reads `fd` into `acc` until `acc` holds `needle` (bounded).
pub fn read_fd_until(fd: RawFd, acc: &mut Vec<u8>, needle: &[u8], limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while !contains(acc, needle) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            panic!(
                "{what}: no {:?} within {}s; got tail {:?}",
                String::from_utf8_lossy(needle),
                limit.as_secs(),
                tail_str(acc)
            );
        }
        if !read_fd_some(fd, acc, left.min(Duration::from_millis(200))) {
            panic!("{what}: end of file before {:?}; got tail {:?}", String::from_utf8_lossy(needle), tail_str(acc));
        }
    }
}

/// Reads what is there within `limit` into `acc`; false at end of file
/// (or EIO, a pty master whose slave is gone).
pub fn read_fd_some(fd: RawFd, acc: &mut Vec<u8>, limit: Duration) -> bool {
    let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut pfd, 1, limit.as_millis() as i32) };
    if r <= 0 {
        return true;
    }
    let mut buf = [0u8; 4096];
    // SAFETY: reading into a local buffer.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let e = errno();
        return e == libc::EAGAIN || e == libc::EINTR;
    }
    if n == 0 {
        return false;
    }
    acc.extend_from_slice(&buf[..n as usize]);
    true
}
