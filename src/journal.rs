//! The journald log driver: one datagram per record to journald's native
//! socket, with conmon 2.2's fields: CONTAINER_ID_FULL, CONTAINER_ID (12
//! chars), CONTAINER_TAG (--log-tag), CONTAINER_NAME (--name),
//! SYSLOG_IDENTIFIER (the tag, else the name, else the short id), the
//! `--log-label` fields, PRIORITY 6 (stdout) or 3 (stderr) unless the line
//! starts with `<N>` (N 0-7: that is its priority, and the prefix is cut),
//! and CONTAINER_PARTIAL_MESSAGE=true for a piece without its newline
//! (unless --no-container-partial-message). MESSAGE, and any value holding
//! a newline, use the protocol's binary form (`NAME\n` + 64-bit
//! little-endian length + bytes + `\n`), so any payload byte is safe.
//!
//! A piece of a line is sent as it is read, not held back until its end
//! (conmon holds up to 8 KiB): nothing is buffered, nothing is lost if the
//! shim dies. The rest of the line keeps the priority its start had.
//!
//! No journal (no socket, as on a host without systemd) is not an error,
//! as with conmon: the records are counted as lost, and the socket is
//! tried again, at most once per read, so a journald that starts later
//! gets the records from then on.

use core::ffi::CStr;

use crate::buf::Buf;
use crate::logfile::{for_each_record, Stream};
use crate::sock;
use crate::sys::{self, Errno, OwnedFd};

pub const SOCKET: &CStr = c"/run/systemd/journal/socket";

/// Room for the fixed fields of every record (ids, name, tag, labels).
pub const FIELDS_MAX: usize = 640;

/// The socket: journald's, or `$SHIMLET_JOURNAL_SOCKET` (for tests and
/// for hosts that put it elsewhere).
pub fn socket_path() -> &'static CStr {
    sys::getenv(c"SHIMLET_JOURNAL_SOCKET").unwrap_or(SOCKET)
}

pub struct Journal {
    /// None while there is no journal to talk to.
    fd: Option<OwnedFd>,
    /// The fields every record carries, ready to send.
    fields: Buf<FIELDS_MAX>,
    pub lost: u64,
    /// Mark pieces of lines with CONTAINER_PARTIAL_MESSAGE=true.
    mark_partial: bool,
    /// Per stream (stdout, stderr): the priority digit of the line being
    /// sent when its start has gone out already.
    mid_line: [Option<u8>; 2],
    /// The journal is unreachable and that was said.
    failing: bool,
}

/// `NAME=VALUE\n`, or the binary form when the value holds a newline.
fn field<const N: usize>(f: &mut Buf<N>, name: &[u8], value: &[u8]) -> bool {
    if value.contains(&b'\n') {
        f.push(name) && f.push(b"\n") && f.push(&(value.len() as u64).to_le_bytes()) && f.push(value) && f.push(b"\n")
    } else {
        f.push(name) && f.push(b"=") && f.push(value) && f.push(b"\n")
    }
}

/// A `--log-label` `NAME=VALUE` (checked already) as a field.
fn label<const N: usize>(f: &mut Buf<N>, l: &[u8]) -> bool {
    let eq = l.iter().position(|&b| b == b'=').unwrap_or(l.len());
    field(f, &l[..eq], l.get(eq + 1..).unwrap_or(b""))
}

/// A `<N>` priority prefix (N 0-7) at the start of a line.
fn prefix(line: &[u8]) -> Option<u8> {
    match line {
        [b'<', d @ b'0'..=b'7', b'>', ..] => Some(d - b'0'),
        _ => None,
    }
}

impl Journal {
    /// The fields, and a connection if there is a journal. Err only when
    /// the fields do not fit (`FIELDS_MAX`).
    pub fn open<'a>(
        id: &CStr,
        name: Option<&CStr>,
        tag: Option<&CStr>,
        labels: impl Iterator<Item = &'a CStr>,
        mark_partial: bool,
    ) -> sys::Result<Journal> {
        let mut f: Buf<FIELDS_MAX> = Buf::new();
        let id = id.to_bytes();
        let short = &id[..id.len().min(12)];
        let mut ok = field(&mut f, b"CONTAINER_ID_FULL", id) && field(&mut f, b"CONTAINER_ID", short);
        if let Some(t) = tag {
            ok &= field(&mut f, b"CONTAINER_TAG", t.to_bytes());
        }
        if let Some(n) = name {
            ok &= field(&mut f, b"CONTAINER_NAME", n.to_bytes());
        }
        let ident = tag.or(name).map_or(short, |s| s.to_bytes());
        ok &= field(&mut f, b"SYSLOG_IDENTIFIER", ident);
        for l in labels {
            ok &= label(&mut f, l.to_bytes());
        }
        if !ok {
            return Err(Errno::TOOBIG);
        }
        let mut j = Journal { fd: None, fields: f, lost: 0, mark_partial, mid_line: [None; 2], failing: false };
        j.connect();
        Ok(j)
    }

    /// Whether a journal answered.
    pub fn connected(&self) -> bool {
        self.fd.is_some()
    }

    fn connect(&mut self) -> Option<Errno> {
        let path = socket_path();
        match sock::connect_dgram(path) {
            Ok(fd) => {
                self.fd = Some(fd);
                None
            }
            Err(e) => Some(e),
        }
    }

    /// One read's worth of output: a datagram per line or piece.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let mut err = if self.fd.is_none() { self.connect() } else { None };
        let s = if stream == Stream::Stdout { 0 } else { 1 };
        let default = if stream == Stream::Stdout { 6 } else { 3 };
        for_each_record(data, |full, seg| {
            let mut msg = if full { &seg[..seg.len() - 1] } else { seg };
            let prio = match self.mid_line[s] {
                Some(p) => p,
                None => match prefix(msg) {
                    Some(p) => {
                        msg = &msg[3..];
                        p
                    }
                    None => default,
                },
            };
            self.mid_line[s] = if full { None } else { Some(prio) };
            let Some(fd) = &self.fd else {
                self.lost += msg.len() as u64;
                return;
            };
            let p = [b'P', b'R', b'I', b'O', b'R', b'I', b'T', b'Y', b'=', b'0' + prio, b'\n'];
            let partial: &[u8] = if !full && self.mark_partial { b"CONTAINER_PARTIAL_MESSAGE=true\n" } else { b"" };
            let len = (msg.len() as u64).to_le_bytes();
            let parts = [self.fields.as_bytes(), &p, partial, b"MESSAGE\n", &len, msg, b"\n"];
            match sock::send_parts(fd, &parts) {
                Ok(_) => {}
                Err(e) => {
                    self.lost += msg.len() as u64;
                    // The journal went away (restarted: a new socket):
                    // connect again on the next read.
                    if matches!(e, Errno::CONNREFUSED | Errno::NOENT | Errno::NOTCONN) {
                        self.fd = None;
                    }
                    err = Some(e);
                }
            }
        });
        self.say(err);
    }

    /// Failing is said once, and once when it works again.
    fn say(&mut self, err: Option<Errno>) {
        match err {
            Some(e) if !self.failing => {
                self.failing = true;
                crate::diag::warn_errno(b"journald: cannot send, container output is not in the journal", e);
            }
            None if self.failing => {
                self.failing = false;
                crate::diag::warn(&[b"journald: sending again"]);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_in_both_forms() {
        let mut f: Buf<128> = Buf::new();
        assert!(field(&mut f, b"A", b"x y"));
        assert!(label(&mut f, b"B=two\nlines"));
        assert!(label(&mut f, b"C="));
        let mut want = b"A=x y\nB\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\nC=\n");
        assert_eq!(f.as_bytes(), &want[..]);
    }

    #[test]
    fn priority_prefixes() {
        assert_eq!(prefix(b"<0>x"), Some(0));
        assert_eq!(prefix(b"<7>"), Some(7));
        assert_eq!(prefix(b"<8>x"), None);
        assert_eq!(prefix(b"<3"), None);
        assert_eq!(prefix(b" <3>x"), None);
        assert_eq!(prefix(b"<3]x"), None);
    }
}
