//! The journald log driver: one datagram per record to journald's native
//! socket, as conmon sends them. MESSAGE uses the protocol's binary form
//! (`MESSAGE\n` + 64-bit little-endian length + bytes + `\n`), so any
//! payload byte is safe. Fields: CONTAINER_ID_FULL, CONTAINER_ID (12
//! chars), CONTAINER_NAME, CONTAINER_TAG and SYSLOG_IDENTIFIER (with
//! --log-tag), PRIORITY 6 (stdout) or 3 (stderr), and
//! CONTAINER_PARTIAL_MESSAGE=true for a piece without its newline.

use core::ffi::{c_int, CStr};

use crate::buf::Buf;
use crate::logfile::{for_each_record, Stream};
use crate::sys::{self, Errno};

pub const SOCKET: &CStr = c"/run/systemd/journal/socket";

/// The socket: journald's, or `$SHIMLET_JOURNAL_SOCKET` (for tests and
/// for hosts that put it elsewhere).
pub fn socket_path() -> &'static CStr {
    let p = unsafe { libc::getenv(c"SHIMLET_JOURNAL_SOCKET".as_ptr()) };
    if p.is_null() { SOCKET } else { unsafe { CStr::from_ptr(p) } }
}

pub struct Journal {
    fd: c_int,
    /// The fields every record carries, ready to send.
    fields: Buf<640>,
    pub lost: u64,
}

impl Journal {
    pub fn open(id: &CStr, name: Option<&CStr>, tag: Option<&CStr>) -> sys::Result<Journal> {
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0) };
        if fd < 0 {
            return Err(Errno::last());
        }
        let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let path = socket_path().to_bytes();
        if path.len() >= a.sun_path.len() {
            sys::close(fd);
            return Err(Errno(libc::ENAMETOOLONG));
        }
        for (d, s) in a.sun_path.iter_mut().zip(path) {
            *d = *s as libc::c_char;
        }
        let len = (core::mem::size_of::<libc::sa_family_t>() + path.len() + 1) as libc::socklen_t;
        if unsafe { libc::connect(fd, &a as *const _ as *const libc::sockaddr, len) } < 0 {
            let e = Errno::last();
            sys::close(fd);
            return Err(e);
        }
        let mut f: Buf<640> = Buf::new();
        let id = id.to_bytes();
        f.push(b"CONTAINER_ID_FULL=");
        f.push(id);
        f.push(b"\nCONTAINER_ID=");
        f.push(&id[..id.len().min(12)]);
        f.push(b"\n");
        if let Some(n) = name {
            f.push(b"CONTAINER_NAME=");
            f.push(n.to_bytes());
            f.push(b"\n");
        }
        if let Some(t) = tag {
            f.push(b"CONTAINER_TAG=");
            f.push(t.to_bytes());
            f.push(b"\nSYSLOG_IDENTIFIER=");
            f.push(t.to_bytes());
            f.push(b"\n");
        }
        Ok(Journal { fd, fields: f, lost: 0 })
    }

    /// One read's worth of output: a datagram per line or piece.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let prio: &[u8] = if stream == Stream::Stdout { b"PRIORITY=6\n" } else { b"PRIORITY=3\n" };
        for_each_record(data, |full, seg| {
            let msg = if full { &seg[..seg.len() - 1] } else { seg };
            let partial: &[u8] = if full { b"" } else { b"CONTAINER_PARTIAL_MESSAGE=true\n" };
            let len = (msg.len() as u64).to_le_bytes();
            let io = |s: &[u8]| libc::iovec { iov_base: s.as_ptr() as *mut _, iov_len: s.len() };
            let mut iov = [io(self.fields.as_bytes()), io(prio), io(partial), io(b"MESSAGE\n"), io(&len), io(msg), io(b"\n")];
            let mut m: libc::msghdr = unsafe { core::mem::zeroed() };
            m.msg_iov = iov.as_mut_ptr();
            m.msg_iovlen = iov.len() as _;
            if unsafe { libc::sendmsg(self.fd, &m, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) } < 0 {
                self.lost += msg.len() as u64;
            }
        });
    }
}
