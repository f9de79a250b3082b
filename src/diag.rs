//! shimlet's own diagnostics, after it has detached (its stdio is
//! /dev/null by then): lines appended to `--diag FILE`, and/or datagrams
//! to syslog's /dev/log with `--syslog`. Never blocking, never fatal: a
//! diagnostic that cannot be delivered is dropped.

use core::ffi::{c_int, CStr};
use core::ptr::addr_of_mut;

use crate::buf::Buf;
use crate::sys;
use crate::timefmt;

struct Sinks {
    file: c_int,
    syslog: c_int,
    id: Option<&'static CStr>,
}

static mut SINKS: Sinks = Sinks { file: -1, syslog: -1, id: None };

fn sinks() -> &'static mut Sinks {
    unsafe { &mut *addr_of_mut!(SINKS) }
}

/// Open the sinks (before detaching, so a bad path is reported).
pub fn open(file: Option<&CStr>, syslog: bool, id: Option<&'static CStr>) -> sys::Result<()> {
    let s = sinks();
    s.id = id;
    if let Some(path) = file {
        s.file = sys::open(path, libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, 0o600)?;
    }
    if syslog {
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        if fd >= 0 {
            let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
            a.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (d, s) in a.sun_path.iter_mut().zip(b"/dev/log") {
                *d = *s as libc::c_char;
            }
            let len = (core::mem::size_of::<libc::sa_family_t>() + 9) as libc::socklen_t;
            if unsafe { libc::connect(fd, &a as *const _ as *const libc::sockaddr, len) } == 0 {
                s.syslog = fd;
            } else {
                sys::close(fd);
            }
        }
    }
    Ok(())
}

/// The descriptors to keep when everything else is closed.
pub fn fds() -> [c_int; 2] {
    let s = sinks();
    [s.file, s.syslog]
}

/// One diagnostic line, made of `parts`.
pub fn warn(parts: &[&[u8]]) {
    let s = sinks();
    if s.file < 0 && s.syslog < 0 {
        return;
    }
    let mut msg: Buf<512> = Buf::new();
    if let Some(id) = s.id {
        msg.push(id.to_bytes());
        msg.push(b": ");
    }
    for p in parts {
        msg.push(p);
    }
    if s.file >= 0 {
        let mut line: Buf<600> = Buf::new();
        line.push(&timefmt::now());
        line.push(b" shimlet[");
        line.push_u64(sys::getpid() as u64);
        line.push(b"]: ");
        line.push(msg.as_bytes());
        line.push(b"\n");
        let _ = sys::write(s.file, line.as_bytes());
    }
    if s.syslog >= 0 {
        // daemon.warning
        let mut d: Buf<600> = Buf::new();
        d.push(b"<28>shimlet[");
        d.push_u64(sys::getpid() as u64);
        d.push(b"]: ");
        d.push(msg.as_bytes());
        unsafe { libc::send(s.syslog, d.as_bytes().as_ptr() as *const _, d.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    }
}

/// `warn` with an errno's text appended.
pub fn warn_errno(what: &[u8], e: sys::Errno) {
    warn(&[what, b": ", e.text()]);
}
