//! Helpers of the attach tests (tests/attach.rs): attach-socket clients,
//! the ctl FIFO, ptys, and /proc figures of the shim.
//!
//! Everything that waits is bounded; nothing measures time.

#![allow(dead_code)]

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::common::*;

pub use super::common::attach_client::*;

// ---------------------------------------------------------------------------
// the ctl FIFO

/// Writes `line` into the ctl FIFO (which must have a reader: the shim).
pub fn ctl_write(path: &Path, line: &str) {
    let f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open ctl {}: {e}", path.display()));
    use std::io::Write;
    (&f).write_all(line.as_bytes()).unwrap_or_else(|e| panic!("write ctl: {e}"));
}

// ---------------------------------------------------------------------------
// ptys

pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

/// openpty(3): a fresh pty pair (both ends close-on-exec).
pub fn open_pty() -> Pty {
    let (mut m, mut s) = (-1, -1);
    // SAFETY: openpty with out-pointers for the descriptors only.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(r, 0, "openpty: {}", os_err());
    for fd in [m, s] {
        // SAFETY: fcntl on descriptors we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both were just opened and are owned here.
    unsafe { Pty { master: OwnedFd::from_raw_fd(m), slave: OwnedFd::from_raw_fd(s) } }
}

pub fn tcgetattr(fd: RawFd) -> libc::termios {
    // SAFETY: termios is plain data; tcgetattr fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::tcgetattr(fd, &mut t) };
    assert_eq!(r, 0, "tcgetattr: {}", os_err());
    t
}

pub fn set_winsize(fd: RawFd, rows: u16, cols: u16) {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ with a valid winsize.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", os_err());
}

pub fn get_winsize(fd: RawFd) -> (u16, u16) {
    // SAFETY: winsize is plain data.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) };
    assert_eq!(r, 0, "TIOCGWINSZ: {}", os_err());
    (ws.ws_row, ws.ws_col)
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

// ---------------------------------------------------------------------------
// /proc figures

// ---------------------------------------------------------------------------
// files

pub fn file_mode(p: &Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.mode() & libc::S_IFMT, m.mode() & 0o7777)
}
