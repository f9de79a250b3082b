//! The shim's ctl FIFO (`--ctl`): resize and reopen commands.

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use super::attach_client::{errno, os_err};
use super::wait::WAIT;

/// Writes `data` into the ctl FIFO. The open does not block: it fails at
/// once (ENXIO) when no reader (the shim) holds the FIFO; a full FIFO
/// makes the write wait, bounded by WAIT.
pub fn ctl_send(path: &Path, data: &[u8]) {
    let f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open ctl {}: {e}", path.display()));
    let deadline = Instant::now() + WAIT;
    let mut off = 0;
    while off < data.len() {
        match (&f).write(&data[off..]) {
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    panic!("write ctl {}: the FIFO stayed full for {}s", path.display(), WAIT.as_secs());
                }
                let mut pfd = libc::pollfd { fd: f.as_raw_fd(), events: libc::POLLOUT, revents: 0 };
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
                assert!(r >= 0 || errno() == libc::EINTR, "poll: {}", os_err());
            }
            Err(e) => panic!("write ctl {}: {e}", path.display()),
        }
    }
}

/// Waits (bounded) until the shim holds the ctl FIFO open for reading: it
/// makes the FIFO first and opens it a moment later.
pub fn wait_ctl_reader(path: &Path) {
    super::wait::wait_until(&format!("a reader on {}", path.display()), WAIT, || {
        fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path).ok().map(|_| ())
    });
}

/// Bytes waiting in a FIFO that someone reads; None when nobody holds it
/// open for reading (an open for writing fails with ENXIO).
pub fn fifo_pending_if_read(path: &Path) -> Option<usize> {
    let f = fs::OpenOptions::new().write(true).custom_flags(libc::O_NONBLOCK).open(path);
    match f {
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => None,
        _ => Some(fifo_pending(path)),
    }
}

/// Bytes waiting in a FIFO (FIONREAD through a descriptor of our own).
pub fn fifo_pending(path: &Path) -> usize {
    let f = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap_or_else(|e| panic!("open ctl {}: {e}", path.display()));
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD into an int.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: {}", os_err());
    n as usize
}
