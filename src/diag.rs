//! shimlet's own diagnostics, after it has detached (its stdio is
//! /dev/null by then): lines appended to `--diag FILE`, and/or datagrams
//! to syslog's /dev/log with `--syslog`. Never blocking, never fatal: a
//! diagnostic that cannot be delivered is dropped.
//!
//! The sinks are opened once, by the launcher, before the daemon starts,
//! and only read afterwards: they are the one piece of process-wide state
//! every module may write to.

use core::ffi::CStr;
use core::ptr::addr_of;

use crate::buf::Buf;
use crate::sock;
use crate::sys::{self, AsRawFd, OFlags, OwnedFd, RawFd};
use crate::timefmt;

struct Sinks {
    file: Option<OwnedFd>,
    syslog: Option<OwnedFd>,
    id: Option<&'static CStr>,
}

static mut SINKS: Sinks = Sinks { file: None, syslog: None, id: None };

fn sinks() -> &'static Sinks {
    // SAFETY: written only by `open`, before the daemon's loop starts and
    // before any reader exists; the process has one thread.
    unsafe { &*addr_of!(SINKS) }
}

/// Open the sinks (before detaching, so a bad path is reported). Called
/// once.
pub fn open(file: Option<&CStr>, syslog: bool, id: Option<&'static CStr>) -> sys::Result<()> {
    let file = match file {
        Some(path) => Some(sys::open(path, OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE, 0o600)?),
        None => None,
    };
    let syslog = if syslog { sock::connect_dgram(c"/dev/log").ok() } else { None };
    if file.is_none() && syslog.is_none() {
        // Nothing to say it to: the page stays untouched.
        return Ok(());
    }
    // SAFETY: see `sinks`: this is the one write, made before any read.
    unsafe { *core::ptr::addr_of_mut!(SINKS) = Sinks { file, syslog, id } };
    Ok(())
}

/// Diagnostics to an already open descriptor (the containerd shim's log
/// FIFO). Called once, before the daemon's loop, instead of `open`.
pub fn use_fd(fd: OwnedFd, id: Option<&'static CStr>) {
    // SAFETY: see `sinks`: this is the one write, made before any read.
    unsafe { *core::ptr::addr_of_mut!(SINKS) = Sinks { file: Some(fd), syslog: None, id } };
}

/// The descriptors to keep when everything else is closed.
pub fn fds() -> [RawFd; 2] {
    let s = sinks();
    [s.file.as_ref().map_or(-1, |f| f.as_raw_fd()), s.syslog.as_ref().map_or(-1, |f| f.as_raw_fd())]
}

/// One diagnostic line, made of `parts`.
pub fn warn(parts: &[&[u8]]) {
    let s = sinks();
    if s.file.is_none() && s.syslog.is_none() {
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
    if let Some(f) = &s.file {
        let mut line: Buf<600> = Buf::new();
        line.push(&timefmt::now());
        line.push(b" shimlet[");
        line.push_u64(sys::getpid() as u64);
        line.push(b"]: ");
        line.push(msg.as_bytes());
        line.push(b"\n");
        let _ = sys::write(f, line.as_bytes());
    }
    if let Some(l) = &s.syslog {
        // daemon.warning
        let mut d: Buf<600> = Buf::new();
        d.push(b"<28>shimlet[");
        d.push_u64(sys::getpid() as u64);
        d.push(b"]: ");
        d.push(msg.as_bytes());
        let _ = sock::send(l, d.as_bytes());
    }
}

/// `warn` with an errno's text appended.
pub fn warn_errno(what: &[u8], e: sys::Errno) {
    warn(&[what, b": ", sys::text(e)]);
}

/// `shimlet: ` and the parts on stderr, then a newline (before detaching,
/// or in `--sync` mode, where stderr is the caller's).
pub fn say(parts: &[&[u8]]) {
    let mut m: Buf<1024> = Buf::new();
    m.push(b"shimlet: ");
    for p in parts {
        m.push(p);
    }
    m.push(b"\n");
    let _ = sys::write_all(sys::borrow(2), m.as_bytes());
}
