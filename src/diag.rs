//! shimlet's own diagnostics, after it has detached (its stdio is
//! /dev/null by then): lines appended to `--diag FILE`, and/or datagrams
//! to syslog's /dev/log with `--syslog`. Never blocking, never fatal: a
//! diagnostic that cannot be delivered is dropped.
//!
//! The sinks are opened once, by the launcher, before the daemon starts,
//! and only read afterwards: they are the one piece of process-wide state
//! every module may write to.
//!
//! `--log-level` filters what is said, as conmon's levels do: `error`
//! says nothing here (errors before detaching go to stderr whatever the
//! level), `warn` (the default) the warnings, `info`, `debug` and `trace`
//! more (the container's pid and end, the runtime's command line).

use core::ffi::CStr;
use core::ptr::addr_of;

use crate::buf::Buf;
use crate::sock;
use crate::sys::{self, AsRawFd, OFlags, OwnedFd, RawFd};
use crate::timefmt;

/// Diagnostic levels, as `--log-level` names them.
pub mod level {
    pub const ERROR: u8 = 0;
    pub const WARN: u8 = 1;
    pub const INFO: u8 = 2;
    pub const DEBUG: u8 = 3;
    pub const TRACE: u8 = 4;
}

struct Sinks {
    file: Option<OwnedFd>,
    syslog: Option<OwnedFd>,
    id: Option<&'static CStr>,
    /// The most detailed level said (`level::*`).
    level: u8,
}

static mut SINKS: Sinks = Sinks { file: None, syslog: None, id: None, level: level::WARN };

fn sinks() -> &'static Sinks {
    // SAFETY: written only by `open`, before the daemon's loop starts and
    // before any reader exists; the process has one thread.
    unsafe { &*addr_of!(SINKS) }
}

/// Open the sinks (before detaching, so a bad path is reported). Called
/// once.
pub fn open(file: Option<&CStr>, syslog: bool, id: Option<&'static CStr>, level: u8) -> sys::Result<()> {
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
    unsafe { *core::ptr::addr_of_mut!(SINKS) = Sinks { file, syslog, id, level } };
    Ok(())
}

/// Diagnostics to an already open descriptor (the containerd shim's log
/// FIFO). Called once, before the daemon's loop, instead of `open`.
pub fn use_fd(fd: OwnedFd, id: Option<&'static CStr>) {
    // SAFETY: see `sinks`: this is the one write, made before any read.
    unsafe { *core::ptr::addr_of_mut!(SINKS) = Sinks { file: Some(fd), syslog: None, id, level: level::WARN } };
}

/// The descriptors to keep when everything else is closed.
pub fn fds() -> [RawFd; 2] {
    let s = sinks();
    [s.file.as_ref().map_or(-1, |f| f.as_raw_fd()), s.syslog.as_ref().map_or(-1, |f| f.as_raw_fd())]
}

/// Whether something of `lvl` would be said (to skip building it).
pub fn wants(lvl: u8) -> bool {
    let s = sinks();
    (s.file.is_some() || s.syslog.is_some()) && s.level >= lvl
}

/// One warning, made of `parts`.
pub fn warn(parts: &[&[u8]]) {
    note(level::WARN, parts)
}

/// One diagnostic line of level `lvl`, made of `parts`.
pub fn note(lvl: u8, parts: &[&[u8]]) {
    let s = sinks();
    if !wants(lvl) {
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
        // daemon.warning, daemon.info, daemon.debug
        let mut d: Buf<600> = Buf::new();
        d.push(match lvl {
            level::WARN | level::ERROR => b"<28>",
            level::INFO => b"<30>",
            _ => b"<31>",
        });
        d.push(b"shimlet[");
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

/// A warning on stderr (before detaching), unless `--log-level` is
/// `error`.
pub fn say_warning(lvl: u8, parts: &[&[u8]]) {
    if lvl >= level::WARN {
        let mut m: Buf<1024> = Buf::new();
        for p in parts {
            m.push(p);
        }
        say(&[b"warning: ", m.as_bytes()]);
    }
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
