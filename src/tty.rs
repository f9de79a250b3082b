//! Terminals: the console socket the runtime sends the pty master over,
//! and the master's settings (ONLCR, window size).

use core::ffi::c_int;

use crate::buf::Buf;
use crate::sys;

/// Console socket path: `$TMPDIR` (or /tmp) `/shimlet-console-PID`. It must
/// stay short: the runtime connects to it by name (108-byte limit).
pub fn console_path(out: &mut Buf<108>) -> bool {
    out.clear();
    let tmp = unsafe { libc::getenv(c"TMPDIR".as_ptr()) };
    let dir: &[u8] = if tmp.is_null() { b"/tmp" } else { unsafe { core::ffi::CStr::from_ptr(tmp) }.to_bytes() };
    let dir = if dir.is_empty() || dir.len() > 60 { &b"/tmp"[..] } else { dir };
    out.push(dir) && out.push(b"/shimlet-console-") && out.push_u64(sys::getpid() as u64) && out.room() > 0
}

/// Translate `\n` to `\r\n` on output, as a terminal user expects.
pub fn set_onlcr(fd: c_int) {
    unsafe {
        let mut t: libc::termios = core::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) == 0 {
            t.c_oflag |= libc::ONLCR | libc::OPOST;
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
    }
}

pub fn resize(fd: c_int, rows: u16, cols: u16) -> sys::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    if r < 0 { Err(sys::Errno::last()) } else { Ok(()) }
}
