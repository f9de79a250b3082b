//! `--sdnotify-socket PATH`: the container's sd_notify messages, relayed
//! to PATH (systemd's socket, as podman passes it with
//! `--sdnotify=container`, the default under a `Type=notify` unit), as
//! conmon 2.2 relays them.
//!
//! The shim binds `BUNDLE/notify/notify.sock` (mode 0777; podman makes
//! the directory, mounts it at /run/notify in the container and sets
//! NOTIFY_SOCKET there; the runtime is told nothing). Each datagram is cut
//! into lines at `\n` and `\r` (and ends at a NUL); the lines that are
//! exactly READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1 or
//! WATCHDOG=trigger, or start with STATUS=, ERRNO=, BUSERROR= or
//! MONOTONIC_USEC=, go on to PATH as one datagram joined by `\n`;
//! anything else (MAINPID= among them: podman itself tells systemd the
//! shim's pid) is dropped, and nothing is sent when nothing passed.
//!
//! Unlike conmon, an empty datagram is just nothing (conmon takes it for
//! the end and stops relaying for good), and a datagram the host socket
//! cannot take at once is dropped with a warning (conmon keeps it until
//! the socket can). Datagrams longer than the shim's 8 KiB read buffer are
//! cut (conmon's is 32 KiB).

use core::ffi::CStr;

use crate::diag;
use crate::sock::{self, Place};
use crate::sys::{self, AsFd, BorrowedFd, OFlags, OwnedFd};

/// Datagrams relayed per wake-up, at most (the loop comes back for more).
const PER_TURN: usize = 16;

pub struct Notify<'a> {
    /// The container's socket.
    pub sock: OwnedFd,
    /// Where it is (removed at the end).
    place: Place<'a>,
    /// The sending socket, and where to.
    out: OwnedFd,
    host: &'a CStr,
    /// A failure to send was said (said again once it works).
    failing: bool,
}

impl<'a> Notify<'a> {
    /// Bind the container's socket in `BUNDLE/notify`.
    pub fn open(bundle: BorrowedFd<'_>, host: &'a CStr) -> sys::Result<Notify<'a>> {
        let dir = sys::openat(bundle, c"notify", OFlags::PATH | OFlags::DIRECTORY, 0)?;
        let place = Place { dir, name: c"notify.sock" };
        let sock = sock::bind_dgram_at(place.dir.as_fd(), place.name, 0o777)?;
        let out = sock::dgram()?;
        Ok(Notify { sock, place, out, host, failing: false })
    }

    /// Relay what has arrived (a bounded number of datagrams); `buf` is
    /// where each is read and filtered.
    pub fn relay(&mut self, buf: &mut [u8]) {
        for _ in 0..PER_TURN {
            let n = match sock::recv(&self.sock, buf) {
                Ok(n) => n,
                Err(_) => return,
            };
            let n = filter(&mut buf[..n]);
            if n == 0 {
                continue;
            }
            match sock::send_to(&self.out, self.host, &buf[..n]) {
                Ok(_) if self.failing => {
                    self.failing = false;
                    diag::warn(&[b"sd-notify: relaying to the host socket again"]);
                }
                Ok(_) => {}
                Err(e) if !self.failing => {
                    self.failing = true;
                    diag::warn(&[b"sd-notify: cannot relay to ", self.host.to_bytes(), b": ", sys::text(e)]);
                }
                Err(_) => {}
            }
        }
    }

    /// Remove the container's socket.
    pub fn remove(&self) {
        self.place.remove();
    }
}

/// The lines conmon 2.2 passes on.
fn passes(line: &[u8]) -> bool {
    const LINES: [&[u8]; 5] = [b"READY=1", b"RELOADING=1", b"STOPPING=1", b"WATCHDOG=1", b"WATCHDOG=trigger"];
    const PREFIXES: [&[u8]; 4] = [b"STATUS=", b"ERRNO=", b"BUSERROR=", b"MONOTONIC_USEC="];
    LINES.contains(&line) || PREFIXES.iter().any(|p| line.starts_with(p))
}

/// Keep, in place, the lines that pass, joined by `\n`; their length.
pub fn filter(msg: &mut [u8]) -> usize {
    let end = msg.iter().position(|&b| b == 0).unwrap_or(msg.len());
    let mut out = 0;
    let mut i = 0;
    while i <= end {
        let j = msg[i..end].iter().position(|&b| b == b'\n' || b == b'\r').map_or(end, |k| i + k);
        if j > i && passes(&msg[i..j]) {
            // Every byte written was read already: `out` stays at or before `i`.
            if out > 0 {
                msg[out] = b'\n';
                out += 1;
            }
            msg.copy_within(i..j, out);
            out += j - i;
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::filter;

    fn f(s: &[u8]) -> Vec<u8> {
        let mut v = s.to_vec();
        let n = filter(&mut v);
        v.truncate(n);
        v
    }

    #[test]
    fn conmons_lines_pass() {
        assert_eq!(f(b"READY=1"), b"READY=1");
        assert_eq!(f(b"STATUS=hello world\nFOO=bar\nERRNO=5"), b"STATUS=hello world\nERRNO=5");
        assert_eq!(f(b"READY=1\r\nSTOPPING=1\n"), b"READY=1\nSTOPPING=1");
        assert_eq!(f(b"MAINPID=4242\nREADY=1"), b"READY=1");
        assert_eq!(f(b"xREADY=1x"), b"");
        assert_eq!(f(b"READY=10"), b"");
        assert_eq!(
            f(b"WATCHDOG=trigger\nBUSERROR=x\nMONOTONIC_USEC=1\nRELOADING=1"),
            b"WATCHDOG=trigger\nBUSERROR=x\nMONOTONIC_USEC=1\nRELOADING=1"
        );
        assert_eq!(f(b"READY=1\0STATUS=after a nul"), b"READY=1");
        assert_eq!(f(b""), b"");
        assert_eq!(f(b"\n\n\r"), b"");
        assert_eq!(f(b"FDSTORE=1\nBARRIER=1\nEXTEND_TIMEOUT_USEC=5"), b"");
    }
}
