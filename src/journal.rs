//! The journald log driver: one datagram per record to journald's native
//! socket, as conmon sends them. MESSAGE uses the protocol's binary form
//! (`MESSAGE\n` + 64-bit little-endian length + bytes + `\n`), so any
//! payload byte is safe. Fields: CONTAINER_ID_FULL, CONTAINER_ID (12
//! chars), CONTAINER_NAME, CONTAINER_TAG and SYSLOG_IDENTIFIER (with
//! --log-tag), PRIORITY 6 (stdout) or 3 (stderr), and
//! CONTAINER_PARTIAL_MESSAGE=true for a piece without its newline.

use core::ffi::CStr;

use crate::buf::Buf;
use crate::logfile::{for_each_record, Stream};
use crate::sock;
use crate::sys::{self, Errno, OwnedFd};

pub const SOCKET: &CStr = c"/run/systemd/journal/socket";

/// The socket: journald's, or `$SHIMLET_JOURNAL_SOCKET` (for tests and
/// for hosts that put it elsewhere).
pub fn socket_path() -> &'static CStr {
    sys::getenv(c"SHIMLET_JOURNAL_SOCKET").unwrap_or(SOCKET)
}

pub struct Journal {
    fd: OwnedFd,
    /// The fields every record carries, ready to send.
    fields: Buf<640>,
    pub lost: u64,
}

impl Journal {
    pub fn open(id: &CStr, name: Option<&CStr>, tag: Option<&CStr>) -> sys::Result<Journal> {
        let path = socket_path();
        if path.to_bytes().len() >= 108 {
            return Err(Errno::NAMETOOLONG);
        }
        let fd = sock::connect_dgram(path)?;
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
            let parts = [self.fields.as_bytes(), prio, partial, b"MESSAGE\n", &len, msg, b"\n"];
            if sock::send_parts(&self.fd, &parts).is_err() {
                self.lost += msg.len() as u64;
            }
        });
    }
}
